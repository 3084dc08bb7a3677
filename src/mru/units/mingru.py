"""minGRU (Feng et al. 2024, arXiv 2410.01201), DESIGN §4.

    z_t  = sigmoid(W_z x_t + b_z)
    h~_t = W_h x_t + b_h
    h_t  = (1 - z_t) h_{t-1} + z_t h~_t

A linear scan with a_t = 1 - z_t, b_t = z_t h~_t (:func:`mru.scan.linear_scan`); no log-space trick is
needed with a proper linear scan.
"""

from __future__ import annotations

import torch
from torch import nn

from ..scan import linear_scan
from .base import RecurrentLayer, RecurrentUnit


class MinGRULayer(RecurrentLayer):
    def __init__(self, input_size: int, hidden_size: int, backend: str = "auto"):
        super().__init__()
        self.input_size, self.hidden_size, self.state_size = input_size, hidden_size, hidden_size
        self.gate = nn.Linear(input_size, hidden_size)         # W_z, b_z
        self.candidate = nn.Linear(input_size, hidden_size)    # W_h, b_h
        self.backend = backend

    def forward(self, x, state):
        z = torch.sigmoid(self.gate(x))
        h = linear_scan(1 - z, z * self.candidate(x), state, backend=self.backend)
        return h, h[:, -1]

    def step(self, x, state):
        z = torch.sigmoid(self.gate(x))
        h = (1 - z) * state + z * self.candidate(x)
        return h, h


class MinGRU(RecurrentUnit):
    """minGRU (DESIGN §4): a gated linear recurrence, trained by a parallel scan.

    Same arguments as ``nn.GRU`` (``batch_first=True`` by default); ``h0=None`` means zeros.
    """

    def __init__(self, input_size, hidden_size, num_layers=1, batch_first=True, dropout=0.0, *,
                 backend: str = "auto"):
        super().__init__(input_size, hidden_size, num_layers, batch_first, dropout, backend=backend)

    def make_layer(self, input_size, hidden_size, **kwargs):
        return MinGRULayer(input_size, hidden_size, **kwargs)
