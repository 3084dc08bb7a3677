"""Selective copying (DESIGN §7; Gu & Dao 2023, "Mamba", arXiv 2312.00752, §3.1).

Token sequences of T steps over the vocabulary ``{0: blank, 1: recall, 2 … S+1: symbols 0 … S−1}``
(S = ``n_symbols``, K = ``n_tokens``):

- steps 0 … P−1, P = T − K: blank (token 0) except at K distinct uniformly drawn positions, which hold
  uniformly drawn symbols (tokens 2 … S+1, repeats allowed);
- steps P … T−1: the recall token 1; the target at recall step P+k is the k-th symbol, in order.

The spacing between symbols is random, so the network must select what to store by content, not by
position. Classification over the S symbols (target class s for token s + 2), per-step readout with
``mask`` True exactly on the K recall steps; targets are 0 elsewhere. Metric accuracy; chance 1/S.
"""

from __future__ import annotations

import numpy as np
import torch

from .base import GeneratedTask, TaskData, sorted_positions

__all__ = ["SelectiveCopyTask", "BLANK", "RECALL"]

BLANK = 0
RECALL = 1


class SelectiveCopyTask(GeneratedTask):
    name = "selective_copy"
    description = "copy 8 symbols scattered among blanks, in order, after the sequence (per-step accuracy)"
    input_kind = "tokens"
    output_size = 8
    input_size = output_size + 2
    target = "classification"
    readout = "per_step"
    metric_name = "accuracy"
    higher_is_better = True
    default_length = 128
    default_sizes = {"train": 2000, "val": 500, "test": 500}
    option_defaults = {"n_tokens": 8, "n_symbols": 8}

    def _configure(self) -> None:
        self.n_tokens = self._int_option("n_tokens", minimum=1)
        self.n_symbols = self._int_option("n_symbols", minimum=2)
        self.output_size = self.n_symbols
        self.input_size = self.n_symbols + 2

    def _validate_length(self, length: int) -> None:
        if length < 2 * self.n_tokens:
            raise ValueError(
                f"{self.name}: length {length} is too short for n_tokens={self.n_tokens}; it must be at "
                f"least 2*n_tokens = {2 * self.n_tokens} (the symbols' positions, then the recall steps)"
            )

    def _generate(self, rng: np.random.Generator, n: int, length: int) -> TaskData:
        k = self.n_tokens
        p = length - k
        pos = sorted_positions(rng, n, p, k)
        symbols = rng.integers(0, self.n_symbols, (n, k))
        rows = np.arange(n)[:, None]
        x = np.full((n, length), BLANK, dtype=np.int64)
        x[rows, pos] = symbols + 2
        x[:, p:] = RECALL
        y = np.zeros((n, length), dtype=np.int64)
        y[:, p:] = symbols
        mask = np.zeros((n, length), dtype=bool)
        mask[:, p:] = True
        return TaskData(torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(mask))

    def baseline_metric(self, length: int | None = None) -> float:
        return 1.0 / self.n_symbols
