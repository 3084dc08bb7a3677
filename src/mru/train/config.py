"""``TrainConfig`` — everything that defines one training run, as plain data (nanoGPT's one config object).

A config comes from keyword arguments, a TOML or JSON file, or both (file first, then overrides):

    cfg = TrainConfig(task="latch", model="bmru", steps=500)
    cfg = TrainConfig.from_file("latch.toml", steps=2000)       # file values, then overrides

Every field is validated on construction; an unknown key gets an error naming the closest known one.
The ε schedule implements the BMRU recipe of DESIGN §3 (train at ε = 1, anneal linearly to 0, keep the best
checkpoint only once ε has reached its final value); γ is the surrogate-gradient slope of DESIGN §2.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import json
import math
import numbers
import os
from dataclasses import dataclass, field
from pathlib import Path

DEVICES = ("auto", "cpu", "cuda")
#: readouts of sequence-level tasks (mru.nets.ModelConfig heads)
HEADS = ("last", "mean")
WRITE_RATE_NORMS = ("l1", "l2")

#: steps of a run when neither ``steps`` nor ``epochs`` is given. The defaults (300 steps, d_model 32, 2 blocks)
#: are sized for the latch task on a 2-core CPU: `mru train --task latch --model bmru` reaches test accuracy
#: >= 0.999 at 1x, 10x and 100x the training length (seeds 0, 1, 2) in about a minute
DEFAULT_STEPS = 300


@dataclass
class TrainConfig:
    """One training run. ``None`` means "derived" (see each field); everything round-trips through JSON."""

    # -- what to learn --------------------------------------------------------------------------------
    task: str = "latch"
    task_options: dict = field(default_factory=dict)  # the task's own options, e.g. {"write_prob": 0.05}
    length: int | None = None                          # training sequence length (None: the task's default)
    n_train: int | None = None                         # sequences per split (None: the task's default_sizes)
    n_val: int | None = None
    n_test: int | None = None

    # -- model (mru.nets.ModelConfig) -------------------------------------------------------------------
    model: str = "bmru"                                # a name of mru.registry.MODELS or units joined by "+"
    d_model: int = 32
    n_layers: int = 2
    combine: str = "sum"
    mlp_ratio: float = 2.0
    dropout: float = 0.0
    norm: str = "layer"
    head: str | None = None                            # readout of a sequence-level task: "last" or "mean"
                                                       # (None: "last"); per-step tasks always read every step
    unit_options: dict = field(default_factory=dict)  # per unit type, e.g. {"lru": {"r_min": 0.9}}; applied
                                                       # to the units of that type the model has

    # -- optimisation -----------------------------------------------------------------------------------
    lr: float = 3e-3
    min_lr: float = 3e-4                               # the cosine decays from lr to min_lr
    weight_decay: float = 0.01
    batch_size: int = 64
    steps: int | None = None                           # optimiser steps (None: from epochs, else DEFAULT_STEPS)
    epochs: int | None = None                          # alternatively, passes over the training set
    warmup: int = 50                                   # linear warm-up steps
    grad_clip: float = 1.0                             # max global gradient norm (0 disables)

    # -- eps (DESIGN §3) and gamma (DESIGN §2) schedules --------------------------------------------------
    eps_start: float | None = None                     # None: 1.0 for models with a BMRU (the recipe), else off
    eps_end: float = 0.0
    eps_hold: int | None = None                        # steps at eps_start before annealing (None: 20 % of steps)
    eps_anneal_steps: int | None = None                # length of the linear anneal (None: 50 % of steps)
    gamma_start: float = 1.0                           # surrogate slope; None gamma_end keeps it constant
    gamma_end: float | None = None                     # reached at the last step (geometric interpolation)

    # -- write-rate penalty (DESIGN §2) -----------------------------------------------------------------
    write_rate_penalty: float = 0.0                    # coefficient; 0 disables
    write_rate_norm: str = "l1"                        # "l1": coef * rate, "l2": coef * rate**2

    # -- run ----------------------------------------------------------------------------------------------
    seed: int = 0                                      # model init, data order, and the task's data seed
    device: str = "auto"                               # "auto" (cuda when available), "cpu", "cuda"
    bf16: bool = True                                  # bf16 autocast, on cuda only
    eval_every: int = 50                               # steps between evaluations (and checkpoints)
    eval_batch_size: int = 256
    target_metric: float | None = None                 # stop early once the validation metric reaches it
    out_dir: str | None = None                         # run folder (None: runs/<task>-<model>-seed<seed>)

    def __post_init__(self) -> None:
        self._validate()

    # -- derived values ---------------------------------------------------------------------------------
    @property
    def run_dir(self) -> Path:
        if self.out_dir is not None:
            return Path(self.out_dir)
        return Path("runs") / f"{self.task}-{self.model.replace('+', '_')}-seed{self.seed}"

    def total_steps(self, n_train: int) -> int:
        """Optimiser steps of the run for a training set of ``n_train`` sequences."""
        if self.steps is not None:
            return self.steps
        if self.epochs is not None:
            return self.epochs * steps_per_epoch(n_train, self.batch_size)
        return DEFAULT_STEPS

    # -- (de)serialisation ------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict, **overrides) -> TrainConfig:
        """A config from a dict (e.g. a parsed file) updated with ``overrides``; unknown keys are errors."""
        if not isinstance(d, dict):
            raise ValueError(f"a training config must be a table of key = value pairs, got {type(d).__name__}")
        merged = {**d, **overrides}
        check_keys(merged)
        return cls(**merged)

    @classmethod
    def from_file(cls, path: str | os.PathLike, **overrides) -> TrainConfig:
        """Load a ``.toml`` (Python 3.11+) or ``.json`` file, then apply ``overrides``."""
        return cls.from_dict(read_config_file(path), **overrides)

    # -- validation ---------------------------------------------------------------------------------------
    def _validate(self) -> None:
        from ..registry import UNITS, model_units, unknown_name_error

        if isinstance(self.model, (list, tuple)):
            self.model = "+".join(str(u) for u in self.model)
        if not isinstance(self.model, str) or not self.model:
            raise ValueError(f"model must be a model name such as 'bmru' or 'bmru+lru', got {self.model!r}")
        self.model = self.model.strip().lower()
        model_units(self.model)  # unknown names raise, suggesting the closest
        if not isinstance(self.task, str) or not self.task:
            raise ValueError(f"task must be a task name such as 'latch', got {self.task!r}")
        self.task = _check_task_name(self.task)
        for name in ("task_options", "unit_options"):
            if not isinstance(getattr(self, name), dict):
                raise ValueError(f"{name} must be a table (dict), got {getattr(self, name)!r}")
        for unit, opts in self.unit_options.items():
            if unit not in UNITS:
                raise unknown_name_error("unit", unit, UNITS)
            if not isinstance(opts, dict):
                raise ValueError(f"unit_options[{unit!r}] must be a table of options, got {opts!r}")
            allowed = unit_option_names(unit)
            for key in opts:
                if key not in allowed:
                    close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.5)
                    hint = f" Did you mean {close[0]!r}?" if close else ""
                    raise ValueError(f"unit {unit!r} has no option {key!r}.{hint} "
                                     f"Its options: {', '.join(allowed) or 'none'}")

        _positive_int(self, "d_model", "n_layers", "batch_size", "eval_every", "eval_batch_size")
        _positive_int(self, "length", "n_train", "n_val", "n_test", "steps", "epochs", optional=True)
        _non_negative_int(self, "warmup", "seed")
        _non_negative_int(self, "eps_hold", "eps_anneal_steps", optional=True)
        if self.steps is not None and self.epochs is not None:
            raise ValueError(f"give steps or epochs, not both (got steps={self.steps}, epochs={self.epochs})")
        _number(self, "lr", low=0.0, low_open=True)
        _number(self, "min_lr", low=0.0)
        if self.min_lr > self.lr:
            raise ValueError(f"min_lr must not exceed lr, got min_lr={self.min_lr:g} > lr={self.lr:g}")
        _number(self, "weight_decay", low=0.0)
        _number(self, "grad_clip", low=0.0)
        _number(self, "mlp_ratio", low=0.0)
        _number(self, "dropout", low=0.0, high=1.0, high_open=True)
        _number(self, "eps_start", low=0.0, high=1.0, optional=True)
        _number(self, "eps_end", low=0.0, high=1.0)
        _number(self, "gamma_start", low=0.0, low_open=True)
        _number(self, "gamma_end", low=0.0, low_open=True, optional=True)
        _number(self, "write_rate_penalty", low=0.0)
        _number(self, "target_metric", optional=True)
        _choice(self, "write_rate_norm", WRITE_RATE_NORMS)
        _choice(self, "device", DEVICES)
        _choice(self, "combine", ("sum", "concat"))
        _choice(self, "norm", ("layer", "rms"))
        if self.head is not None:
            _choice(self, "head", HEADS)
        if not isinstance(self.bf16, bool):
            raise ValueError(f"bf16 must be true or false, got {self.bf16!r}")
        if self.out_dir is not None:
            if not isinstance(self.out_dir, (str, os.PathLike)) or not os.fspath(self.out_dir).strip():
                raise ValueError(f"out_dir must be a folder path, got {self.out_dir!r}")
            self.out_dir = os.fspath(self.out_dir)


def unit_option_names(unit: str) -> list[str]:
    """The constructor options of a unit that a config may set (sizes and layout are set by the model)."""
    from ..registry import unit_class

    fixed = {"self", "input_size", "hidden_size", "batch_first"}
    params = inspect.signature(unit_class(unit).__init__).parameters.values()
    return [p.name for p in params if p.name not in fixed and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Minibatches per pass over the training set; the last partial batch is dropped (at least one batch)."""
    return max(1, n_train // batch_size)


def config_fields() -> list[str]:
    return [f.name for f in dataclasses.fields(TrainConfig)]


def check_keys(d: dict) -> None:
    """Raise ``ValueError`` for the first key of ``d`` that is not a TrainConfig field, naming the closest."""
    known = config_fields()
    for key in d:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.5)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"unknown training config key {key!r}.{hint} Known keys: {', '.join(known)}")


def read_config_file(path: str | os.PathLike) -> dict:
    """The table in a ``.toml`` or ``.json`` config file. A ``[train]`` table in TOML is also accepted."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"config file {str(path)!r} is a folder, not a file")
    if not path.is_file():
        raise FileNotFoundError(f"config file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    if suffix in (".json", ".toml"):
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"config file {str(path)!r} is not UTF-8 text: {e}") from None
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"config file {str(path)!r} is not valid JSON: {e}") from None
    elif suffix == ".toml":
        try:
            import tomllib
        except ImportError:  # Python 3.10
            raise ValueError(f"reading TOML ({str(path)!r}) needs Python 3.11+; use a .json config file") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"config file {str(path)!r} is not valid TOML: {e}") from None
    else:
        raise ValueError(f"config file {str(path)!r} must end in .toml or .json")
    if isinstance(data, dict) and set(data) == {"train"} and isinstance(data["train"], dict):
        data = data["train"]
    if not isinstance(data, dict):
        raise ValueError(f"config file {str(path)!r} must hold a table of key = value pairs")
    return data


# -- field checks ------------------------------------------------------------------------------------------


def _check_task_name(name: str) -> str:
    """The registry key of task ``name`` (dashes and case ignored); unknown names raise with a suggestion."""
    from ..registry import unknown_name_error
    from ..tasks import TASKS

    key = name.strip().lower().replace("-", "_")
    if key not in TASKS:
        raise unknown_name_error("task", name, TASKS)
    return key


def _int_at_least(cfg, low: int, *names, optional=False) -> None:
    """Check and normalise the integer fields ``names`` of ``cfg`` to be >= ``low`` (None allowed if optional)."""
    kind = "positive" if low == 1 else "non-negative"
    for name in names:
        v = getattr(cfg, name)
        if v is None and optional:
            continue
        v = _as_int(name, v)
        if v < low:
            raise ValueError(f"{name} must be a {kind} integer, got {v}")
        setattr(cfg, name, v)


def _positive_int(cfg, *names, optional=False) -> None:
    _int_at_least(cfg, 1, *names, optional=optional)


def _non_negative_int(cfg, *names, optional=False) -> None:
    _int_at_least(cfg, 0, *names, optional=optional)


def _as_int(name, v) -> int:
    if isinstance(v, numbers.Real) and not isinstance(v, (bool, numbers.Integral)) and float(v).is_integer():
        v = int(v)  # 1e3 from a file
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {v!r}")
    return int(v)


def _number(cfg, name, low=None, high=None, low_open=False, high_open=False, optional=False) -> None:
    v = getattr(cfg, name)
    if v is None and optional:
        return
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number, got {v!r}")
    v = float(v)
    too_low = low is not None and (v < low or (low_open and v == low))
    too_high = high is not None and (v > high or (high_open and v == high))
    if too_low or too_high:
        if high is None:
            want = f"{'>' if low_open else '>='} {low:g}"
        elif low is None:
            want = f"{'<' if high_open else '<='} {high:g}"
        else:
            want = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"{name} must be {want}, got {v:g}")
    setattr(cfg, name, v)


def _choice(cfg, name, choices) -> None:
    v = getattr(cfg, name)
    if v not in choices:
        close = difflib.get_close_matches(str(v), choices, n=1, cutoff=0.5)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {v!r}.{hint}")
