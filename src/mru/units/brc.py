"""BRC and nBRC — bistable recurrent cells (Vecoven, Ernst, Drion 2021, arXiv 2006.05252), DESIGN §4.

    a_t = 1 + tanh(U_a x_t + w_a * h_{t-1})          BRC: w_a, w_c vectors (cellular feedback)
    c_t = sigmoid(U_c x_t + w_c * h_{t-1})           nBRC: W_a h_{t-1}, W_c h_{t-1} full matrices
    h_t = c_t * h_{t-1} + (1 - c_t) * tanh(U x_t + a_t * h_{t-1})

Nonlinear in h, so sequential by nature: the input projections run in parallel over the sequence, the
recurrence is a loop over time differentiated by autograd. These are baselines; the BMRU is their
parallelisable successor.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import RecurrentLayer, RecurrentUnit


class BRCLayer(RecurrentLayer):
    def __init__(self, input_size: int, hidden_size: int, neuromodulated: bool = False):
        super().__init__()
        self.input_size, self.hidden_size, self.state_size = input_size, hidden_size, hidden_size
        self.inputs = nn.Linear(input_size, 3 * hidden_size)   # [U_a; U_c; U] x + biases
        self.neuromodulated = neuromodulated
        if neuromodulated:
            self.feedback = nn.Linear(hidden_size, 2 * hidden_size, bias=False)  # [W_a; W_c]
        else:
            self.w = nn.Parameter(torch.rand(2, hidden_size))  # [w_a; w_c], w_a in [0, 1) as in the paper

    def reference_parameter(self):
        return self.inputs.weight

    def _cell(self, p, h):
        pa, pc, px = p.chunk(3, dim=-1)
        if self.neuromodulated:
            fa, fc = self.feedback(h).chunk(2, dim=-1)
        else:
            fa, fc = self.w[0] * h, self.w[1] * h
        a = 1 + torch.tanh(pa + fa)
        c = torch.sigmoid(pc + fc)
        return c * h + (1 - c) * torch.tanh(px + a * h)

    def forward(self, x, state):
        p = self.inputs(x)
        h, out = state, []
        for t in range(x.shape[1]):
            h = self._cell(p[:, t], h)
            out.append(h)
        return torch.stack(out, dim=1), h

    def step(self, x, state):
        h = self._cell(self.inputs(x), state)
        return h, h


class BRC(RecurrentUnit):
    """Bistable recurrent cell (DESIGN §4): cellular (diagonal) feedback, sequential recurrence."""

    neuromodulated = False

    def __init__(self, input_size, hidden_size, num_layers=1, batch_first=True, dropout=0.0):
        super().__init__(input_size, hidden_size, num_layers, batch_first, dropout,
                         neuromodulated=self.neuromodulated)

    def make_layer(self, input_size, hidden_size, **kwargs):
        return BRCLayer(input_size, hidden_size, **kwargs)


class NBRC(BRC):
    """Neuromodulated bistable recurrent cell (DESIGN §4): full feedback matrices W_a, W_c."""

    neuromodulated = True
