"""GRU and LSTM baselines: ``torch.nn.GRU`` / ``torch.nn.LSTM`` behind the mru unit interface (DESIGN §4).

Deviations from torch, on purpose, so every unit has one state tensor:
- ``batch_first=True`` by default.
- The LSTM's state is one tensor [h | c] of shape (num_layers, batch, 2 * hidden_size) instead of the
  tuple (h, c); ``split_state`` recovers the tuple.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import RecurrentUnit, _check_bool, _check_positive_int


class _TorchRNN(RecurrentUnit):
    rnn_class: type[nn.RNNBase] = nn.GRU
    state_factor = 1

    def __init__(self, input_size, hidden_size, num_layers=1, batch_first=True, dropout=0.0):
        nn.Module.__init__(self)
        self.input_size = _check_positive_int("input_size", input_size)
        self.hidden_size = _check_positive_int("hidden_size", hidden_size)
        self.num_layers = _check_positive_int("num_layers", num_layers)
        if not (isinstance(dropout, (int, float)) and 0.0 <= dropout < 1.0):
            raise ValueError(f"dropout must be a probability in [0, 1), got {dropout!r}")
        self.batch_first, self.dropout = _check_bool("batch_first", batch_first), float(dropout)
        self.rnn = self.rnn_class(input_size, hidden_size, num_layers, batch_first=True, dropout=dropout)

    @property
    def state_size(self) -> int:
        return self.state_factor * self.hidden_size

    @property
    def state_dtype(self) -> torch.dtype:
        return self.rnn.weight_ih_l0.dtype

    def _reference(self):
        return self.rnn.weight_ih_l0

    def initial_state(self, batch: int | None = None) -> torch.Tensor:
        b = 1 if batch is None else _check_positive_int("batch", batch)
        p = self.rnn.weight_ih_l0
        h = p.new_zeros(self.num_layers, b, self.state_size)
        return h[:, 0] if batch is None else h

    def _to_torch(self, h):
        return h.contiguous()

    def _from_torch(self, h):
        return h

    def _run(self, x, h):
        y, h_n = self.rnn(x, self._to_torch(h.to(self.state_dtype)))
        return y, self._from_torch(h_n)

    def forward(self, x, h0=None):
        layout = "(batch, time, {n})" if self.batch_first else "(time, batch, {n})"
        self._check_input(x, (2, 3), f"{layout} or unbatched (time, {{n}})")
        unbatched = x.dim() == 2
        x = x.unsqueeze(0) if unbatched else (x if self.batch_first else x.transpose(0, 1))
        if x.shape[1] == 0:
            raise ValueError(f"{type(self).__name__}: input has an empty time axis")
        self._check_batch(x.shape[0])
        if h0 is None:
            h0 = self.initial_state(x.shape[0])
        else:
            self._check_state(h0, x.shape[0], unbatched)
            h0 = h0.unsqueeze(1) if unbatched else h0
        y, h_n = self._run(x, h0)
        if unbatched:
            return y[0], h_n[:, 0]
        return (y if self.batch_first else y.transpose(0, 1)), h_n

    def step(self, x_t, state=None):
        self._check_input(x_t, (1, 2), "(batch, {n}) or unbatched ({n},)")
        unbatched = x_t.dim() == 1
        x_t = x_t.unsqueeze(0) if unbatched else x_t
        self._check_batch(x_t.shape[0])
        if state is None:
            state = self.initial_state(x_t.shape[0])
        else:
            self._check_state(state, x_t.shape[0], unbatched)
            state = state.unsqueeze(1) if unbatched else state
        y, h = self._run(x_t.unsqueeze(1), state)
        return (y[0, 0], h[:, 0]) if unbatched else (y[:, 0], h)


class GRU(_TorchRNN):
    """``torch.nn.GRU`` with the mru unit interface (``batch_first=True`` by default, ``step``)."""

    rnn_class = nn.GRU


class LSTM(_TorchRNN):
    """``torch.nn.LSTM`` with the mru unit interface; the state is one tensor [h | c] (num_layers, B, 2H)."""

    rnn_class = nn.LSTM
    state_factor = 2

    def split_state(self, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(h, c) from the [h | c] state tensor."""
        return state[..., : self.hidden_size], state[..., self.hidden_size:]

    def _to_torch(self, h):
        hh, cc = self.split_state(h)
        return hh.contiguous(), cc.contiguous()

    def _from_torch(self, h):
        return torch.cat(h, dim=-1)
