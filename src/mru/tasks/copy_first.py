"""Copy-first-input (DESIGN §7; Vecoven, Ernst & Drion 2021, arXiv 2006.05252).

x_1 ~ N(0, 1), then x_t ~ N(0, noise_std²) for t = 2 … T; the target, read out at the last step, is x_1.
Nothing marks the first step other than its being first, so the network must store x_1 at t = 1 and hold
it, unchanged, through T − 1 steps of noise: a pure test of persistent memory. Lengths 5 … 10,000.

Input ``(N, T, 1)`` float32, target ``(N, 1)``; metric MSE, whose trivial baseline (always predict 0) is
Var(x_1) = 1.
"""

from __future__ import annotations

import numpy as np
import torch

from .base import GeneratedTask, TaskData

__all__ = ["CopyFirstTask"]


class CopyFirstTask(GeneratedTask):
    name = "copy_first"
    description = "remember x_1 ~ N(0,1) through T-1 noise steps, output it at the end (MSE)"
    input_kind = "float"
    input_size = 1
    output_size = 1
    target = "regression"
    readout = "last"
    metric_name = "mse"
    higher_is_better = False
    default_length = 100
    default_sizes = {"train": 2000, "val": 500, "test": 500}
    option_defaults = {"noise_std": 1.0}

    def _configure(self) -> None:
        self.noise_std = self._float_option("noise_std", minimum=0.0)

    def _validate_length(self, length: int) -> None:
        if length < 2:
            raise ValueError(
                f"{self.name}: length must be at least 2 (the first input and one noise step), got {length}"
            )

    def _generate(self, rng: np.random.Generator, n: int, length: int) -> TaskData:
        x = rng.standard_normal((n, length, 1), dtype=np.float32)
        x[:, 1:] *= np.float32(self.noise_std)
        y = x[:, 0].copy()
        return TaskData(torch.from_numpy(x), torch.from_numpy(y))

    def baseline_metric(self, length: int | None = None) -> float:
        return 1.0
