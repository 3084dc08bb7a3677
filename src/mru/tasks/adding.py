"""The adding problem (DESIGN §7; Hochreiter & Schmidhuber 1997; Arjovsky et al. 2016).

Two input channels ``(value, mark)``: ``value`` ~ U[0, 1) at every step; ``mark = 1`` at exactly two
steps, one drawn uniformly in the first half [0, ⌊T/2⌋) and one in the second half [⌊T/2⌋, T). The target,
read out at the last step, is the sum of the two marked values.

Input ``(N, T, 2)`` float32, target ``(N, 1)``; metric MSE. Trivial baseline (always predict 1):
Var(U₁ + U₂) = 2/12 = 1/6.
"""

from __future__ import annotations

import numpy as np
import torch

from .base import GeneratedTask, TaskData

__all__ = ["AddingTask"]


class AddingTask(GeneratedTask):
    name = "adding"
    description = "output the sum of the two marked U[0,1) values of a long sequence (MSE)"
    input_kind = "float"
    input_size = 2
    output_size = 1
    target = "regression"
    readout = "last"
    metric_name = "mse"
    higher_is_better = False
    default_length = 100
    default_sizes = {"train": 2000, "val": 500, "test": 500}

    def _validate_length(self, length: int) -> None:
        if length < 2:
            raise ValueError(f"{self.name}: length must be at least 2 (one mark in each half), got {length}")

    def _generate(self, rng: np.random.Generator, n: int, length: int) -> TaskData:
        half = length // 2
        values = rng.random((n, length), dtype=np.float32)
        first = rng.integers(0, half, n)
        second = rng.integers(half, length, n)
        rows = np.arange(n)
        x = np.zeros((n, length, 2), dtype=np.float32)
        x[:, :, 0] = values
        x[rows, first, 1] = 1.0
        x[rows, second, 1] = 1.0
        y = (values[rows, first] + values[rows, second])[:, None]
        return TaskData(torch.from_numpy(x), torch.from_numpy(np.ascontiguousarray(y)))

    def baseline_metric(self, length: int | None = None) -> float:
        return 1.0 / 6.0
