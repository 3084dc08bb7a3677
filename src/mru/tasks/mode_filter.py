"""Mode-switched filtering (DESIGN §7, this project's hybrid test; DESIGN §6 on hybrid SSM ‖ MRU mixers).

Two input channels ``(signal, mode)``:

- ``signal`` x_t ~ N(0, 1) at every step;
- ``mode`` is a sparse pulse: ±1 at step 0 and, after that, at each step with probability ``mode_prob``
  (sign drawn uniformly, so a pulse may repeat the current mode); 0 elsewhere.

Let m_t ∈ {−1, +1} be the sign of the last pulse at or before t (persistent: held indefinitely), and f_t the
unit-variance exponential filter of the signal (transient: forgets at rate λ = ``decay``)

    f_t = λ f_{t−1} + √(1 − λ²) x_t,   f_{−1} = 0,

then the per-step target is y_t = m_t · f_t. A fading memory alone cannot know m_t once the last pulse is
far behind; a persistent memory alone cannot form f_t; a hybrid needs both. Per-step regression on every
step (``mask`` is None), target ``(N, T, 1)``, metric MSE.

Since E[y_t²] = 1 − λ^{2(t+1)} and y has mean 0, the trivial baseline (predict 0) has MSE
1 − λ² (1 − λ^{2T}) / (T (1 − λ²)) ≈ 1; it is also the best a model ignorant of the mode can do.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .base import GeneratedTask, TaskData, last_index

__all__ = ["ModeFilterTask"]


class ModeFilterTask(GeneratedTask):
    name = "mode_filter"
    description = "output ±(exponential filter of the input), the sign set by sparse mode pulses (per-step MSE)"
    input_kind = "float"
    input_size = 2
    output_size = 1
    target = "regression"
    readout = "per_step"
    metric_name = "mse"
    higher_is_better = False
    default_length = 200
    default_sizes = {"train": 2000, "val": 500, "test": 500}
    option_defaults = {"decay": 0.9, "mode_prob": 0.01}

    def _configure(self) -> None:
        self.decay = self._float_option("decay", 0.0, 1.0, max_inclusive=False)
        self.mode_prob = self._float_option("mode_prob", 0.0, 1.0, min_inclusive=False)

    def _generate(self, rng: np.random.Generator, n: int, length: int) -> TaskData:
        signal = rng.standard_normal((n, length), dtype=np.float32)
        pulse = rng.random((n, length)) < self.mode_prob
        pulse[:, 0] = True
        sign = (2 * rng.integers(0, 2, (n, length), dtype=np.int8) - 1).astype(np.float32)
        mode_input = np.where(pulse, sign, np.float32(0.0))
        mode = np.take_along_axis(sign, last_index(pulse), axis=1)
        lam, gain = self.decay, math.sqrt(1.0 - self.decay**2)
        drive = gain * signal.astype(np.float64)
        f = np.empty((n, length), dtype=np.float64)
        state = np.zeros(n, dtype=np.float64)
        for t in range(length):  # a linear recurrence: a loop over time, vectorised over sequences
            state = lam * state + drive[:, t]
            f[:, t] = state
        x = np.stack([signal, mode_input], axis=-1)
        y = (mode * f).astype(np.float32)[:, :, None]
        return TaskData(torch.from_numpy(x), torch.from_numpy(y))

    def baseline_metric(self, length: int | None = None) -> float:
        """Mean target variance over the steps of a ``length``-step sequence (default: the task's length)."""
        t = self.length if length is None else length
        lam2 = self.decay**2
        return 1.0 - lam2 * (1.0 - lam2**t) / (t * (1.0 - lam2))
