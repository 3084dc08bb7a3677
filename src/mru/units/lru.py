"""LRU — linear recurrent unit (Orvieto et al. 2023, arXiv 2303.06349), DESIGN §4.

    x_k = Lambda * x_{k-1} + gamma * (B u_k)        complex diagonal recurrence, state size N
    y_k = Re(C x_k) + D u_k
    Lambda = exp(-exp(nu) + i exp(theta))           stable by construction: |Lambda| = exp(-exp(nu)) < 1

Ring initialisation: |Lambda| uniform by area on [r_min, r_max],
nu = log(-1/2 log(U (r_max^2 - r_min^2) + r_min^2)), theta = log(U max_phase);
gamma = sqrt(1 - |Lambda|^2), learned in log space. B, C complex Glorot-like.
The recurrence is :func:`mru.scan.linear_scan` on complex tensors. D u is element-wise when
input_size == hidden_size, a real matrix otherwise (a deliberate generalisation).
The LRU's memory is *fading*: any input's effect decays like |Lambda|^t.
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import nn

from ..scan import linear_scan
from .base import RecurrentLayer, RecurrentUnit

_TINY = 1e-7


class LRULayer(RecurrentLayer):
    def __init__(self, input_size: int, hidden_size: int, state_size: int | None = None, r_min: float = 0.0,
                 r_max: float = 1.0, max_phase: float = 2 * math.pi, backend: str = "auto"):
        super().__init__()
        N = state_size or hidden_size
        self.input_size, self.hidden_size, self.state_size = input_size, hidden_size, N
        self.backend = backend
        u1, u2 = torch.rand(N), torch.rand(N)
        r2 = (u1 * (r_max**2 - r_min**2) + r_min**2).clamp(_TINY, 1 - _TINY)
        self.nu_log = nn.Parameter(torch.log(-0.5 * torch.log(r2)))
        self.theta_log = nn.Parameter(torch.log((u2 * max_phase).clamp_min(_TINY)))
        self.gamma_log = nn.Parameter(0.5 * torch.log(1 - r2))          # log sqrt(1 - |Lambda|^2)
        self.B_re = nn.Parameter(torch.randn(N, input_size) / math.sqrt(2 * input_size))
        self.B_im = nn.Parameter(torch.randn(N, input_size) / math.sqrt(2 * input_size))
        self.C_re = nn.Parameter(torch.randn(hidden_size, N) / math.sqrt(N))
        self.C_im = nn.Parameter(torch.randn(hidden_size, N) / math.sqrt(N))
        self.elementwise_D = input_size == hidden_size
        self.D = nn.Parameter(torch.randn(hidden_size) if self.elementwise_D
                              else torch.randn(hidden_size, input_size) / math.sqrt(input_size))

    def reference_parameter(self):
        return self.nu_log

    def state_dtype(self):
        return torch.complex128 if self.nu_log.dtype == torch.float64 else torch.complex64

    def eigenvalues(self) -> torch.Tensor:
        """Lambda = exp(-exp(nu) + i exp(theta)), shape (state_size,), complex."""
        return torch.exp(torch.complex(-torch.exp(self.nu_log), torch.exp(self.theta_log)))

    def _input(self, u):
        """gamma * (B u) as a complex tensor."""
        g = torch.exp(self.gamma_log)
        return torch.complex(u @ (self.B_re * g[:, None]).T, u @ (self.B_im * g[:, None]).T)

    def _output(self, x, u):
        y = x.real @ self.C_re.T - x.imag @ self.C_im.T
        return y + (self.D * u if self.elementwise_D else u @ self.D.T)

    def forward(self, u, state):
        bu = self._input(u)
        lam = self.eigenvalues().expand_as(bu)
        x = linear_scan(lam, bu, state, backend=self.backend)
        return self._output(x, u), x[:, -1]

    def step(self, u, state):
        x = self.eigenvalues() * state + self._input(u)
        return self._output(x, u), x


class LRU(RecurrentUnit):
    """Linear recurrent unit (DESIGN §4): complex diagonal linear recurrence, ring-initialised.

    Args:
        input_size, hidden_size, num_layers, batch_first, dropout: as ``nn.GRU`` (``batch_first=True`` default).
        state_size: size N of the complex state (default: hidden_size).
        r_min, r_max: ring of the eigenvalue moduli at init (DESIGN §4 defaults 0 and 1; long-memory tasks use
            about 0.9 and 0.999).
        max_phase: eigenvalue phases drawn uniformly in [0, max_phase], 0 < max_phase <= 2π.

    The state (``h0``, ``h_n``) is complex: (num_layers, batch, state_size).
    """

    def __init__(self, input_size, hidden_size, num_layers=1, batch_first=True, dropout=0.0, *,
                 state_size: int | None = None, r_min: float = 0.0, r_max: float = 1.0,
                 max_phase: float = 2 * math.pi, backend: str = "auto"):
        for name, value in (("r_min", r_min), ("r_max", r_max), ("max_phase", max_phase)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(f"{name} must be a real number, got {value!r}")
        if not 0.0 <= r_min <= r_max <= 1.0:
            raise ValueError(f"need 0 <= r_min <= r_max <= 1 for the eigenvalue ring, got r_min={r_min}, r_max={r_max}")
        if not max_phase > 0:
            raise ValueError(f"max_phase must be > 0, got {max_phase}")
        if not max_phase <= 2 * math.pi:  # phases are angles: a wider range only wraps (and overflows if huge)
            raise ValueError(f"max_phase must be at most 2*pi (phases are angles), got {max_phase}")
        if state_size is not None and (isinstance(state_size, bool) or not isinstance(state_size, int)
                                       or state_size < 1):
            raise ValueError(f"state_size must be a positive integer or None, got {state_size!r}")
        super().__init__(input_size, hidden_size, num_layers, batch_first, dropout, state_size=state_size,
                         r_min=r_min, r_max=r_max, max_phase=max_phase, backend=backend)

    def make_layer(self, input_size, hidden_size, **kwargs):
        return LRULayer(input_size, hidden_size, **kwargs)
