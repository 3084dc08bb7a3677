"""Denoising (DESIGN §7; Jing et al. 2019, "Gated orthogonal recurrent units"; Vecoven, Ernst & Drion 2021,
arXiv 2006.05252).

A sequence of T steps with three input channels ``(value, mark, end)``, K = ``n_marks`` (default 5):

- steps 0 … P−1, P = T − K − 1 (presentation): ``value`` ~ N(0, 1) at every step; exactly K of these steps
  carry ``mark = 1``, at distinct uniformly drawn positions in [0, P − dead_tail) — the last ``dead_tail``
  steps before the end marker never hold a mark (Vecoven et al.'s forbidden zone, default 0);
- step P: ``end = 1`` (value 0, mark 0);
- steps P+1 … T−1 (recall): all inputs 0; the target at recall step P+1+k is the k-th marked value, in order.

Regression (the values are continuous; MSE), per-step readout with ``mask`` True exactly on the K recall
steps. Target ``(N, T, 1)``, 0 at unscored steps. Trivial baseline: Var(value) = 1.
"""

from __future__ import annotations

import numpy as np
import torch

from .base import GeneratedTask, TaskData, sorted_positions

__all__ = ["DenoisingTask"]


class DenoisingTask(GeneratedTask):
    name = "denoising"
    description = "recall 5 marked N(0,1) values in order after an end marker (per-step MSE on the recall steps)"
    input_kind = "float"
    input_size = 3
    output_size = 1
    target = "regression"
    readout = "per_step"
    metric_name = "mse"
    higher_is_better = False
    default_length = 200
    default_sizes = {"train": 2000, "val": 500, "test": 500}
    option_defaults = {"n_marks": 5, "dead_tail": 0}

    def _configure(self) -> None:
        self.n_marks = self._int_option("n_marks", minimum=1)
        self.dead_tail = self._int_option("dead_tail", minimum=0)

    def _validate_length(self, length: int) -> None:
        need = 2 * self.n_marks + self.dead_tail + 1
        if length < need:
            raise ValueError(
                f"{self.name}: length {length} is too short for n_marks={self.n_marks} and "
                f"dead_tail={self.dead_tail}; it must be at least 2*n_marks + dead_tail + 1 = {need} "
                f"(mark positions, dead tail, end marker, recall steps)"
            )

    def _generate(self, rng: np.random.Generator, n: int, length: int) -> TaskData:
        k = self.n_marks
        p = length - k - 1  # presentation steps; the end marker is at step p
        values = rng.standard_normal((n, p), dtype=np.float32)
        pos = sorted_positions(rng, n, p - self.dead_tail, k)
        rows = np.arange(n)[:, None]
        x = np.zeros((n, length, 3), dtype=np.float32)
        x[:, :p, 0] = values
        x[rows, pos, 1] = 1.0
        x[:, p, 2] = 1.0
        y = np.zeros((n, length, 1), dtype=np.float32)
        y[:, p + 1 :, 0] = values[rows, pos]
        mask = np.zeros((n, length), dtype=bool)
        mask[:, p + 1 :] = True
        return TaskData(torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(mask))

    def baseline_metric(self, length: int | None = None) -> float:
        return 1.0
