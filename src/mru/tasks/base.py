"""The task contract shared by every benchmark of DESIGN §7: :class:`TaskData` (one split, CPU tensors)
and :class:`Task` (metadata, a deterministic ``dataset`` per split, and the matching ``loss`` / ``metric``).

Two families build on :class:`Task`:

- :class:`GeneratedTask` — synthetic tasks. Data are drawn in whole blocks of :func:`block_size` sequences
  (the last one cut to ``n``), block ``b`` of split ``s`` from ``numpy.random.SeedSequence([task key, seed,
  split id, length, b])``, so a dataset depends only on (task, options, seed, split, length); the splits use
  disjoint seeds; and the first ``k`` sequences of ``dataset(split, n)`` are the same for every ``n ≥ k``.
- real-data tasks (digits, MNIST, character LM) subclass :class:`Task` directly; their splits are fixed and
  do not depend on the seed.

Conventions every task follows (the trainer relies on them):

- ``x``: ``(N, T, input_size)`` float32, or ``(N, T)`` int64 token ids when ``input_kind == "tokens"``.
- ``y``: regression targets are ``(N, output_size)`` (readout ``"last"``) or ``(N, T, output_size)``
  (readout ``"per_step"``), float32; class targets are ``(N,)`` or ``(N, T)`` int64.
- ``mask``: ``(N, T)`` bool marking the scored steps of a per-step task, or ``None`` (all steps scored).
  Unscored steps still hold a valid target (usually 0) so an unmasked loss never sees an invalid index.
- predictions: ``(N, output_size)`` for ``"last"``, ``(N, T, output_size)`` for ``"per_step"`` — logits for
  classification.
"""

from __future__ import annotations

import difflib
import math
import numbers
import os
import zlib
from dataclasses import dataclass
from typing import Any, ClassVar, Iterator

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "BLOCK_SIZE",
    "BLOCK_STEPS",
    "SPLITS",
    "DataNotFoundError",
    "GeneratedTask",
    "Task",
    "TaskData",
    "block_size",
    "closest_names",
    "last_index",
    "sorted_positions",
]

SPLITS = ("train", "val", "test")
_SPLIT_IDS = {"train": 0, "val": 1, "test": 2}

#: generated tasks draw their sequences in independent blocks of at most this many (see the module docstring)
BLOCK_SIZE = 256
#: ... and of at most this many time steps in all (at least one sequence), to bound memory at long lengths
BLOCK_STEPS = 1 << 21

_TARGETS = ("regression", "classification")
_READOUTS = ("last", "per_step")
_METRICS = {"mse": False, "accuracy": True, "bpc": False}  # metric -> higher_is_better


class DataNotFoundError(FileNotFoundError):
    """A real-data task's files are absent. The message says which files are expected and where they come
    from; mru never downloads anything. Callers may catch it to skip such a task."""


def closest_names(name: str, candidates) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``candidates`` to ``name``, or an empty string."""
    close = difflib.get_close_matches(str(name), list(candidates), n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


# ----------------------------------------------------------------------------------------------------------
# TaskData
# ----------------------------------------------------------------------------------------------------------


@dataclass
class TaskData:
    """One split of a task: inputs ``x``, targets ``y`` and the scored-steps ``mask`` (see module docstring).

    Indexing (``data[3:10]``, ``data[index_tensor]``) selects sequences and returns a ``TaskData``; an int
    index keeps a batch of one.
    """

    x: torch.Tensor
    y: torch.Tensor
    mask: torch.Tensor | None = None

    def __post_init__(self) -> None:
        for name in ("x", "y", "mask"):
            value = getattr(self, name)
            if not isinstance(value, torch.Tensor) and not (name == "mask" and value is None):
                raise TypeError(f"TaskData.{name} must be a torch.Tensor, got {type(value).__name__}")
        if self.x.dim() not in (2, 3):
            raise ValueError(
                f"TaskData.x must be (N, T, features) floats or (N, T) tokens, got shape {tuple(self.x.shape)}"
            )
        n = self.x.shape[0]
        if self.y.dim() == 0 or self.y.shape[0] != n:
            raise ValueError(
                f"TaskData.y must have one row per sequence ({n}), got shape {tuple(self.y.shape)}"
            )
        if self.mask is not None:
            if self.mask.dtype != torch.bool or tuple(self.mask.shape) != tuple(self.x.shape[:2]):
                raise ValueError(
                    f"TaskData.mask must be a bool tensor of shape (N, T) = {tuple(self.x.shape[:2])}, "
                    f"got {self.mask.dtype} of shape {tuple(self.mask.shape)}"
                )

    def __len__(self) -> int:
        return self.x.shape[0]

    @property
    def length(self) -> int:
        """Number of time steps T."""
        return self.x.shape[1]

    def __getitem__(self, index) -> "TaskData":
        if isinstance(index, numbers.Integral):
            i = int(index) + (len(self) if index < 0 else 0)
            if not 0 <= i < len(self):  # the sequence protocol: iteration stops here
                raise IndexError(f"TaskData index {index} out of range for {len(self)} sequences")
            index = slice(i, i + 1)
        return TaskData(self.x[index], self.y[index], None if self.mask is None else self.mask[index])

    def to(self, device: torch.device | str) -> "TaskData":
        """The same data on ``device`` (tensors moved, not copied when already there)."""
        return TaskData(
            self.x.to(device), self.y.to(device), None if self.mask is None else self.mask.to(device)
        )

    def batches(
        self, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None
    ) -> Iterator["TaskData"]:
        """Minibatches of ``batch_size`` sequences (the last, partial batch is kept); in a random order drawn
        from ``generator`` when ``shuffle``."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        n = len(self)
        if shuffle:
            order = torch.randperm(n, generator=generator)
            for start in range(0, n, batch_size):
                yield self[order[start : start + batch_size]]
        else:
            for start in range(0, n, batch_size):
                yield self[start : start + batch_size]


# ----------------------------------------------------------------------------------------------------------
# Task
# ----------------------------------------------------------------------------------------------------------


class Task:
    """A benchmark task: metadata, deterministic datasets, and the loss / metric that go with them.

    ``Task(length=None, seed=0, **options)``: ``length`` defaults to :attr:`default_length`; ``options`` are
    the task's own settings (:attr:`option_defaults` lists them with their defaults). Option values may be
    given as strings (as a command line would) and are converted; anything unknown or out of range raises
    a ``ValueError`` that says what was expected.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    input_kind: ClassVar[str] = "float"  # "float" or "tokens"
    input_size: int = 1
    output_size: int = 1
    target: ClassVar[str] = "regression"
    readout: ClassVar[str] = "last"
    metric_name: ClassVar[str] = "mse"
    higher_is_better: ClassVar[bool] = False
    default_length: ClassVar[int] = 100
    default_sizes: dict = {"train": 2000, "val": 500, "test": 500}
    #: whether ``dataset(length=...)`` may differ from the construction length
    supports_length_override: ClassVar[bool] = True
    #: True for synthetic tasks; False for real data (fixed splits, the seed has no effect)
    generated: ClassVar[bool] = True
    #: the task's options and their defaults
    option_defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, length: int | None = None, seed: int = 0, **options: Any) -> None:
        self.seed = _to_int(seed, f"{self.name}: seed", minimum=0)
        unknown = [k for k in options if k not in self.option_defaults]
        if unknown:
            accepted = ", ".join(self.option_defaults) if self.option_defaults else "none"
            raise ValueError(
                f"{self.name}: unknown option '{unknown[0]}'{closest_names(unknown[0], self.option_defaults)}; "
                f"options of {self.name}: {accepted}"
            )
        self.options: dict[str, Any] = {**self.option_defaults, **options}
        self._configure()
        self.length = self._check_length(self.default_length if length is None else length)

    # ---- hooks for subclasses -------------------------------------------------------------------------

    def _configure(self) -> None:
        """Validate ``self.options`` and set the task's attributes from them (called by ``__init__``)."""

    def _validate_length(self, length: int) -> None:
        """Raise ``ValueError`` if the task cannot build sequences of ``length`` steps."""

    def _load(self, split: str, n: int | None, length: int) -> TaskData:
        raise NotImplementedError

    # ---- option helpers ---------------------------------------------------------------------------------

    def _int_option(self, key: str, minimum: int | None = None, maximum: int | None = None) -> int:
        value = _to_int(self.options[key], f"{self.name}: option {key}", minimum, maximum)
        self.options[key] = value
        return value

    def _float_option(
        self,
        key: str,
        minimum: float | None = None,
        maximum: float | None = None,
        min_inclusive: bool = True,
        max_inclusive: bool = True,
    ) -> float:
        value = self.options[key]
        what = f"{self.name}: option {key}"
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise ValueError(f"{what} must be a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ValueError(f"{what} must be a number, got {value!r}")
        value = float(value)
        low_ok = minimum is None or (value >= minimum if min_inclusive else value > minimum)
        high_ok = maximum is None or (value <= maximum if max_inclusive else value < maximum)
        if not (math.isfinite(value) and low_ok and high_ok):
            lo = "-inf" if minimum is None else f"{minimum:g}"
            hi = "inf" if maximum is None else f"{maximum:g}"
            interval = f"{'[' if min_inclusive else '('}{lo}, {hi}{']' if max_inclusive else ')'}"
            raise ValueError(f"{what} must be in {interval}, got {value!r}")
        self.options[key] = value
        return value

    def _bool_option(self, key: str) -> bool:
        value = self.options[key]
        if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
            value = value.strip().lower() in ("true", "1", "yes")
        elif isinstance(value, numbers.Integral) and not isinstance(value, bool) and value in (0, 1):
            value = bool(value)
        if not isinstance(value, bool):
            raise ValueError(f"{self.name}: option {key} must be true or false, got {value!r}")
        self.options[key] = value
        return value

    def _choice_option(self, key: str, choices: tuple[str, ...]) -> str:
        value = self.options[key]
        if value not in choices:
            raise ValueError(
                f"{self.name}: option {key} must be one of {', '.join(map(repr, choices))}, got {value!r}"
                + closest_names(value, choices)
            )
        return value

    # ---- datasets ---------------------------------------------------------------------------------------

    def _check_length(self, length: Any) -> int:
        length = _to_int(length, f"{self.name}: length", minimum=1)
        if not self.supports_length_override and length != self.default_length:
            raise ValueError(
                f"{self.name}: sequences have a fixed length of {self.default_length}; "
                f"length={length} is not supported (leave length unset)"
            )
        self._validate_length(length)
        return length

    def dataset(self, split: str, n: int | None = None, length: int | None = None) -> TaskData:
        """Split ``split`` ("train", "val" or "test") of ``n`` sequences (default: ``default_sizes[split]``)
        of ``length`` steps (default: the task's length; other lengths evaluate length generalisation).
        Deterministic per (seed, split, length)."""
        if split not in SPLITS:
            raise ValueError(
                f"{self.name}: unknown split {split!r}{closest_names(split, SPLITS)}; expected one of {SPLITS}"
            )
        if n is not None:
            n = _to_int(n, f"{self.name}: n", minimum=1)
        length = self.length if length is None else self._check_length(length)
        return self._load(split, n, length)

    # ---- loss and metric --------------------------------------------------------------------------------

    def _scored(self, pred: torch.Tensor, data: TaskData) -> tuple[torch.Tensor, torch.Tensor]:
        """The scored predictions and targets, flattened: ``(M, out)`` and ``(M, out)`` (regression) or
        ``(M,)`` (classification), with the targets on ``pred``'s device."""
        if not isinstance(pred, torch.Tensor) or not pred.is_floating_point():
            got = pred.dtype if isinstance(pred, torch.Tensor) else type(pred).__name__
            raise TypeError(f"{self.name}: predictions must be a real floating-point torch.Tensor, got {got}")
        if not isinstance(data, TaskData):
            raise TypeError(f"{self.name}: data must be a TaskData (from task.dataset), got {type(data).__name__}")
        n = len(data)
        if self.readout == "last":
            expected = (n, self.output_size)
            layout = "(batch, output_size)"
        else:
            expected = (n, data.length, self.output_size)
            layout = "(batch, time, output_size)"
        if tuple(pred.shape) != expected:
            raise ValueError(
                f"{self.name}: expected predictions of shape {layout} = {expected} for readout "
                f"'{self.readout}', got {tuple(pred.shape)}"
            )
        pred = pred.float()
        y = data.y.to(pred.device)
        if self.readout == "per_step":
            if data.mask is not None:
                mask = data.mask.to(pred.device)
                return pred[mask], y[mask]
            return pred.reshape(-1, self.output_size), y.reshape(-1, *y.shape[2:])
        return pred, y

    def loss(self, pred: torch.Tensor, data: TaskData) -> torch.Tensor:
        """Training loss over the scored steps: MSE (regression) or cross-entropy in nats (classification),
        averaged over scored elements. Zero (with a graph) when nothing is scored."""
        p, y = self._scored(pred, data)
        if p.shape[0] == 0:
            return pred.sum() * 0.0
        if self.target == "regression":
            return F.mse_loss(p, y.float())
        return F.cross_entropy(p, y)

    def loss_parts(self, pred: torch.Tensor, data: TaskData) -> tuple[torch.Tensor, int]:
        """``(sum, count)`` with ``loss == sum / count`` (up to rounding): the per-element losses summed, and
        how many there are. Data-parallel training divides each rank's sum by the global batch's count."""
        p, y = self._scored(pred, data)
        if p.shape[0] == 0:
            return pred.sum() * 0.0, 0
        if self.target == "regression":
            return F.mse_loss(p, y.float(), reduction="sum"), p.numel()
        return F.cross_entropy(p, y, reduction="sum"), p.shape[0]

    def loss_count(self, data: TaskData) -> int:
        """The ``count`` of :meth:`loss_parts` for ``data``, from its shape and mask alone (no predictions)."""
        width = self.output_size if self.target == "regression" else 1
        if self.readout == "last":
            return len(data) * width
        if data.mask is not None:
            return int(data.mask.sum()) * width
        return len(data) * data.length * width

    @torch.no_grad()
    def metric_parts(self, pred: torch.Tensor, data: TaskData) -> tuple[float, int]:
        """``(total, count)`` with ``metric == total / count``, so results over several batches combine
        exactly: sum the totals and the counts."""
        p, y = self._scored(pred, data)
        if self.metric_name == "mse":
            return float(((p - y.float()) ** 2).sum()), p.numel()
        if self.metric_name == "accuracy":
            return float((p.argmax(-1) == y).sum()), p.shape[0]
        if p.shape[0] == 0:
            return 0.0, 0
        nats = F.cross_entropy(p, y, reduction="sum")
        return float(nats) / math.log(2.0), p.shape[0]

    def metric(self, pred: torch.Tensor, data: TaskData) -> float:
        """The task's metric (:attr:`metric_name`): MSE, accuracy in [0, 1], or bits per character."""
        total, count = self.metric_parts(pred, data)
        return total / count if count else float("nan")

    def baseline_metric(self, length: int | None = None) -> float | None:
        """The metric of a trivial predictor (e.g. the target's variance for MSE tasks, chance accuracy),
        to state results relative to it, for sequences of ``length`` steps (default: the task's length; most
        baselines do not depend on it); None when there is no meaningful one."""
        return None

    # ---- description ------------------------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        """Everything needed to rebuild this task (validated values; paths as strings):
        ``get_task(**task.config())`` builds the same task."""
        options = {k: os.fspath(v) if isinstance(v, os.PathLike) else v for k, v in self.options.items()}
        return {"name": self.name, "length": self.length, "seed": self.seed, **options}

    def __repr__(self) -> str:
        opts = "".join(f", {k}={v!r}" for k, v in self.options.items())
        return f"{type(self).__name__}(length={self.length}, seed={self.seed}{opts})"


class GeneratedTask(Task):
    """A synthetic task: subclasses implement :meth:`_generate` for one block of sequences."""

    def _generate(self, rng: np.random.Generator, n: int, length: int) -> TaskData:
        """``n`` sequences of ``length`` steps drawn from ``rng``."""
        raise NotImplementedError

    def _load(self, split: str, n: int | None, length: int) -> TaskData:
        n = self.default_sizes[split] if n is None else n
        key = zlib.crc32(self.name.encode())
        size = block_size(length)
        blocks = []
        for b, start in enumerate(range(0, n, size)):
            rng = np.random.default_rng(np.random.SeedSequence([key, self.seed, _SPLIT_IDS[split], length, b]))
            block = self._generate(rng, size, length)  # always whole: the draws must not depend on n
            keep = min(size, n - start)
            if keep < size:
                mask = None if block.mask is None else block.mask[:keep].clone()
                block = TaskData(block.x[:keep].clone(), block.y[:keep].clone(), mask)
            blocks.append(block)
        if len(blocks) == 1:
            return blocks[0]
        masks = [blk.mask for blk in blocks]
        return TaskData(
            torch.cat([blk.x for blk in blocks]),
            torch.cat([blk.y for blk in blocks]),
            None if masks[0] is None else torch.cat(masks),
        )


def block_size(length: int) -> int:
    """Sequences per generation block at ``length`` steps: :data:`BLOCK_SIZE`, fewer for long sequences so
    that a block holds at most :data:`BLOCK_STEPS` steps."""
    return max(1, min(BLOCK_SIZE, BLOCK_STEPS // length))


def _to_int(value: Any, what: str, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as an int (ints, integral floats such as 1e3, and digit strings accepted), range-checked."""
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise ValueError(f"{what} must be an integer, got {value!r}") from None
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, numbers.Integral)):
        if float(value).is_integer():
            value = int(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{what} must be an integer, got {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{what} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{what} must be at most {maximum}, got {value}")
    return value


def last_index(flags: np.ndarray) -> np.ndarray:
    """For each row of a ``(n, T)`` bool array, the index of the last True at or before each step (0 where
    there is none yet): a running "last write" pointer, as in the BMRU's last-write-wins state (DESIGN §2)."""
    steps = np.arange(flags.shape[1])
    return np.maximum.accumulate(np.where(flags, steps, 0), axis=1)


def sorted_positions(rng: np.random.Generator, n: int, span: int, k: int) -> np.ndarray:
    """``(n, k)`` distinct positions in ``[0, span)`` per row, increasing, uniform over all k-subsets."""
    keys = rng.random((n, span))
    if k < span:
        picked = np.argpartition(keys, k, axis=1)[:, :k]
    else:
        picked = np.broadcast_to(np.arange(span), (n, span)).copy()
    return np.sort(picked, axis=1)
