"""Flip-flop / latch (DESIGN §7; Sussillo & Barak 2013; Liu et al. 2023, "Exposing attention glitches with
flip-flop language modeling", arXiv 2306.00946).

Three input channels ``(write, read, value)``. Each step is independently a *write* (probability
``write_prob``), a *read* (``read_prob``) or a *distractor* (the rest); step 0 is always a write and the last
step always a read, so every sequence has a defined answer and at least one scored step.

- write:      ``write = 1``, ``value`` = ±1, the bit written (+1 ↔ 1, −1 ↔ 0);
- distractor: ``write = read = 0``, ``value`` = a random ±1 that must be ignored;
- read:       ``read = 1``, ``value = 0``; the answer is the bit of the last write before it.

The target ``y[t]`` is the latch state at every step t — the bit of the last write at or before t — so it is
defined everywhere; ``mask`` scores the read steps (``scored="reads"``, default; Liu et al.) or every step
(``scored="all"``; Sussillo & Barak's continuous output). Per-step classification over {0, 1}, metric
accuracy, chance 0.5.

Writes are sparse (default 2 % of steps): the time since the last write is geometric with mean 50 steps,
often longer than a fading memory holds, while reads (10 %) come often. The task is trained at length T and
evaluated with ``dataset(split, length=10*T)`` or ``100*T`` (same probabilities, so longer sequences hold
more and longer gaps): the direct test of persistent memory. Generation is vectorised (a running
maximum gives the last write): 500 sequences of 100 × 100 steps take about half a second.
"""

from __future__ import annotations

import numpy as np
import torch

from .base import GeneratedTask, TaskData, last_index

__all__ = ["LatchTask"]


class LatchTask(GeneratedTask):
    name = "latch"
    description = "flip-flop: answer each read with the bit of the last sparse write (per-step accuracy at reads)"
    input_kind = "float"
    input_size = 3
    output_size = 2
    target = "classification"
    readout = "per_step"
    metric_name = "accuracy"
    higher_is_better = True
    default_length = 100
    default_sizes = {"train": 2000, "val": 500, "test": 500}
    option_defaults = {"write_prob": 0.02, "read_prob": 0.1, "scored": "reads"}

    def _configure(self) -> None:
        self.write_prob = self._float_option("write_prob", 0.0, 1.0, min_inclusive=False)
        self.read_prob = self._float_option("read_prob", 0.0, 1.0, min_inclusive=False)
        if self.write_prob + self.read_prob > 1.0:
            raise ValueError(
                f"{self.name}: write_prob + read_prob must be at most 1, got "
                f"{self.write_prob:g} + {self.read_prob:g} = {self.write_prob + self.read_prob:g}"
            )
        self.scored = self._choice_option("scored", ("reads", "all"))

    def _validate_length(self, length: int) -> None:
        if length < 2:
            raise ValueError(f"{self.name}: length must be at least 2 (a first write and a final read), got {length}")

    def _generate(self, rng: np.random.Generator, n: int, length: int) -> TaskData:
        u = rng.random((n, length), dtype=np.float32)
        write = u < self.write_prob
        read = (u >= self.write_prob) & (u < self.write_prob + self.read_prob)
        write[:, 0], read[:, 0] = True, False
        write[:, -1], read[:, -1] = False, True
        bits = rng.integers(0, 2, (n, length), dtype=np.int8)
        x = np.empty((n, length, 3), dtype=np.float32)
        x[:, :, 0] = write
        x[:, :, 1] = read
        x[:, :, 2] = np.where(read, 0, 2 * bits - 1)
        y = np.take_along_axis(bits, last_index(write), axis=1).astype(np.int64)
        mask = read if self.scored == "reads" else np.ones((n, length), dtype=bool)
        return TaskData(torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(mask))

    def baseline_metric(self, length: int | None = None) -> float:
        return 0.5
