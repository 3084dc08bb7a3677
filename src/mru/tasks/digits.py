"""Sequential and permuted 8×8 digits (DESIGN §7): scikit-learn's bundled handwritten digits
(``sklearn.datasets.load_digits``: 1,797 images, 10 classes; no download) read one pixel per step.

- ``digits``: pixels in row-major order, a 64-step sequence with 1 feature, scaled from 0 … 16 to [0, 1];
- ``digits_permuted``: the same pixels in a fixed order, ``numpy.random.default_rng(permutation_seed)
  .permutation(64)`` (``permutation_seed`` 0 by default; step t shows pixel ``permutation[t]``), which
  destroys the locality of the image so that the network must hold information for longer.

Option ``position`` (default false) adds two input channels, the row and column (each scaled to [0, 1]) of
the pixel shown at each step. A network of overwriting binary units (BMRU) cannot count steps, so without
them it cannot tell which row a pixel belongs to; with them the task tests memory rather than counting.
Results with and without it are different benchmarks and are reported apart.

Splits are fixed (independent of the task seed, so results compare across runs): stratified per class,
20 % test, 10 % val (rounded per class), the rest train (1,259 / 179 / 359 images), each split in a fixed
shuffled order, so ``dataset(split, n)`` is the first ``n`` of that order. Classification over 10 classes
from the last step; metric accuracy, chance 0.1. Sequences always have 64 steps: ``length`` cannot be overridden.

scikit-learn is an optional dependency: ``pip install mru[train]``.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from .base import Task, TaskData

__all__ = ["DigitsTask", "PermutedDigitsTask", "load_digit_arrays"]

_SPLIT_FRACTIONS = {"test": 0.2, "val": 0.1}
_SPLIT_SEED = 0


@functools.lru_cache(maxsize=1)
def load_digit_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as ``(images (1797, 64) uint8 in 0…16, labels (1797,) int64)``."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise ImportError(
            "the digits tasks need scikit-learn (it bundles the 8x8 digits): pip install scikit-learn "
            "(or mru[train])"
        ) from e
    data = load_digits()
    return data.data.astype(np.uint8), data.target.astype(np.int64)


@functools.lru_cache(maxsize=1)
def _split_indices() -> dict[str, np.ndarray]:
    """Fixed stratified split of the 1,797 images into train / val / test index arrays."""
    _, labels = load_digit_arrays()
    rng = np.random.default_rng(_SPLIT_SEED)
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test = round(_SPLIT_FRACTIONS["test"] * len(idx))
        n_val = round(_SPLIT_FRACTIONS["val"] * len(idx))
        parts["test"].append(idx[:n_test])
        parts["val"].append(idx[n_test : n_test + n_val])
        parts["train"].append(idx[n_test + n_val :])
    return {split: rng.permutation(np.concatenate(chunks)) for split, chunks in parts.items()}


class DigitsTask(Task):
    name = "digits"
    description = "sklearn's 8x8 digits read pixel by pixel (64 steps), classify at the end (accuracy)"
    input_kind = "float"
    input_size = 1
    output_size = 10
    target = "classification"
    readout = "last"
    metric_name = "accuracy"
    higher_is_better = True
    default_length = 64
    supports_length_override = False
    generated = False
    permuted = False

    option_defaults = {"position": False}

    def _configure(self) -> None:
        #: step t shows pixel ``permutation[t]``; None for row-major order
        self.permutation: np.ndarray | None = None
        self.position = self._bool_option("position")
        self.input_size = 3 if self.position else 1

    @property
    def default_sizes(self) -> dict[str, int]:  # type: ignore[override]
        return {split: len(idx) for split, idx in _split_indices().items()}

    def _load(self, split: str, n: int | None, length: int) -> TaskData:
        idx = _split_indices()[split]
        if n is not None:
            if n > len(idx):
                raise ValueError(f"{self.name}: the {split} split has {len(idx)} images, asked for n={n}")
            idx = idx[:n]
        images, labels = load_digit_arrays()
        pixels = images[idx]
        if self.permutation is not None:
            pixels = pixels[:, self.permutation]
        x = torch.from_numpy(pixels.astype(np.float32) / 16.0).unsqueeze(-1)
        if self.position:
            shown = torch.from_numpy(self.permutation if self.permutation is not None else np.arange(64))
            where = torch.stack([shown // 8, shown % 8], dim=-1).float() / 7.0     # (64, 2): row, column
            x = torch.cat([x, where.expand(len(x), -1, -1)], dim=-1)
        return TaskData(x, torch.from_numpy(labels[idx].copy()))

    def baseline_metric(self, length: int | None = None) -> float:
        return 0.1


class PermutedDigitsTask(DigitsTask):
    name = "digits_permuted"
    description = "8x8 digits with a fixed pixel permutation (64 steps), classify at the end (accuracy)"
    permuted = True
    option_defaults = {"permutation_seed": 0, "position": False}

    def _configure(self) -> None:
        super()._configure()
        self.permutation = np.random.default_rng(self._int_option("permutation_seed", minimum=0)).permutation(64)
