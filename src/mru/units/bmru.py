"""BMRU — bistable memory recurrent unit — and CMRU, its cumulative relative (DESIGN §2-3).

Per layer, element-wise over the hidden units (arXiv 2601.09495; CMRU: arXiv 2605.11855):

    c_t    = W_c x_t + b_c                         (2.1) candidate
    beta_t = W_beta x_t + b_beta                   (2.2) threshold, b_beta initialised to 1
    z_t    = H(|c_t| - |beta_t|)                   (2.3) write gate, H(0) = 1
    s_t    = z_t (sign(c_t) + eps s_{t-1}) + (1 - z_t) s_{t-1}     (3.1) eps = 0: BMRU, eps = 1: CMRU
    h_t    = alpha * s_t                           (2.5) output, alpha initialised to 1

The parallel forward is :func:`mru.scan.bmru_scan`; ``step`` is the same recurrence one token at a time,
with bit-identical states for the BMRU. Gradients through H and sign use the arctan surrogate of slope
``gamma`` (``eps`` and ``gamma`` are plain attributes, so a trainer can anneal them).
"""

from __future__ import annotations

import torch
from torch import nn

from ..scan import binary_sign, bmru_scan, heaviside
from .base import RecurrentLayer, RecurrentUnit, _check_bool


class BMRULayer(RecurrentLayer):
    """One BMRU/CMRU layer; its state is s (binary for the BMRU, integer for the CMRU)."""

    def __init__(self, input_size: int, hidden_size: int, eps: float = 0.0, gamma: float = 1.0,
                 learn_initial_state: bool = True, bias: bool = True, backend: str = "auto"):
        super().__init__()
        self.input_size, self.hidden_size, self.state_size = input_size, hidden_size, hidden_size
        self.candidate = nn.Linear(input_size, hidden_size, bias=bias)   # W_c, b_c
        self.threshold = nn.Linear(input_size, hidden_size, bias=bias)   # W_beta, b_beta
        if bias:
            with torch.no_grad():
                self.threshold.bias.fill_(1.0)
        self.alpha = nn.Parameter(torch.ones(hidden_size))
        # learned initial state, binarised by sign() in the forward pass (0 -> +1)
        self.initial = nn.Parameter(torch.zeros(hidden_size)) if learn_initial_state else None
        self.eps, self.gamma, self.backend = float(eps), float(gamma), backend
        self.track_write_rate = False
        self.write_rate: torch.Tensor | None = None

    def reference_parameter(self):
        return self.alpha

    def initial_state(self, batch: int) -> torch.Tensor:
        if self.initial is None:
            return self.alpha.new_zeros(batch, self.state_size)
        return binary_sign(self.initial, self.gamma).expand(batch, -1)

    def _record_write_rate(self, c, beta):
        if self.track_write_rate:
            self.write_rate = heaviside(c.abs() - beta.abs(), self.gamma).mean()

    def forward(self, x, state):
        c, beta = self.candidate(x), self.threshold(x)
        self._record_write_rate(c, beta)
        s = bmru_scan(c, beta, state, self.eps, self.gamma, backend=self.backend)
        return self.alpha * s, s[:, -1]

    def step(self, x, state):
        c, beta = self.candidate(x), self.threshold(x)
        self._record_write_rate(c, beta)
        if not torch.is_grad_enabled():
            # inference: the same states with fewer kernels; (c + beta) * 0 is exactly 0 unless c or beta is
            # NaN/Inf, which it turns into NaN as below
            new = torch.where(c >= 0, 1.0, -1.0).to(c.dtype)
            if self.eps:
                new = new + self.eps * state
            s = torch.where(c.abs() >= beta.abs(), new, state) + (c + beta) * 0
            return self.alpha * s, s
        # the surrogate step functions, so that gradients through ``step`` equal those of ``forward``;
        # z is exactly 0 or 1, so for eps = 0 the state is exactly sign(c_t) or s_{t-1} (bit-identical)
        z = heaviside(c.abs() - beta.abs(), self.gamma)
        sgn = binary_sign(c, self.gamma)
        s = z * (sgn + self.eps * state) + (1 - z) * state
        # a NaN or Inf in c or beta decides no write: rather than read it as "hold", make it visible as NaN in
        # the state and output (``forward`` raises on it; ``step`` avoids a host synchronisation per token)
        s = torch.where(torch.isfinite(c) & torch.isfinite(beta), s, torch.nan)
        return self.alpha * s, s

    def extra_repr(self):
        return f"eps={self.eps}, gamma={self.gamma}"


class BMRU(RecurrentUnit):
    """Bistable memory recurrent unit (DESIGN §2): persistent memory through bistability, parallel scan.

    Args:
        input_size, hidden_size, num_layers, batch_first, dropout: as ``nn.GRU`` (``batch_first=True`` default).
        eps: 0 for the BMRU (overwrite); 1 gives the CMRU; values in between for ε-annealing (DESIGN §3).
        gamma: slope of the arctan surrogate gradient (DESIGN §2).
        learn_initial_state: learn a per-unit binary s_0 (default); else s_0 = 0 (held until the first write).
        bias: learn b_c and b_beta (b_beta starts at 1).
        backend: scan backend, see :func:`mru.scan.bmru_scan`.

    Attributes ``eps`` and ``gamma`` (setters update every layer) can be annealed during training.
    Set ``track_write_rate = True`` to record the write rate mean(z) (differentiable through the surrogate)
    after each call in ``write_rate``, for logging or a sparsity penalty.

    Example:
        >>> unit = BMRU(16, 32)
        >>> y, h_n = unit(torch.randn(4, 100, 16))    # y: (4, 100, 32), h_n: (1, 4, 32)
        >>> y_t, state = unit.step(torch.randn(4, 16), h_n)
    """

    default_eps = 0.0

    def __init__(self, input_size, hidden_size, num_layers=1, batch_first=True, dropout=0.0, *,
                 eps: float | None = None, gamma: float = 1.0, learn_initial_state: bool = True,
                 bias: bool = True, backend: str = "auto"):
        eps = self.default_eps if eps is None else eps
        _check_eps_gamma(eps, gamma)
        _check_bool("learn_initial_state", learn_initial_state)
        _check_bool("bias", bias)
        super().__init__(input_size, hidden_size, num_layers, batch_first, dropout, eps=eps, gamma=gamma,
                         learn_initial_state=learn_initial_state, bias=bias, backend=backend)

    def make_layer(self, input_size, hidden_size, **kwargs):
        return BMRULayer(input_size, hidden_size, **kwargs)

    @property
    def eps(self) -> float:
        return self.layers[0].eps

    @eps.setter
    def eps(self, value: float) -> None:
        _check_eps_gamma(value, self.gamma)
        for layer in self.layers:
            layer.eps = float(value)

    @property
    def gamma(self) -> float:
        return self.layers[0].gamma

    @gamma.setter
    def gamma(self, value: float) -> None:
        _check_eps_gamma(self.eps, value)
        for layer in self.layers:
            layer.gamma = float(value)

    @property
    def track_write_rate(self) -> bool:
        return self.layers[0].track_write_rate

    @track_write_rate.setter
    def track_write_rate(self, value: bool) -> None:
        for layer in self.layers:
            layer.track_write_rate = bool(value)

    @property
    def write_rate(self) -> torch.Tensor | None:
        """Mean write rate mean(z) over layers from the last call (None unless ``track_write_rate``)."""
        rates = [layer.write_rate for layer in self.layers if layer.write_rate is not None]
        return torch.stack(rates).mean() if rates else None


class CMRU(BMRU):
    """Cumulative memory recurrent unit (DESIGN §3): the BMRU with eps = 1, s_t = s_{t-1} + z_t sign(c_t).

    Integer states and ∂s_t/∂s_{t-1} = 1: a skip connection through time that removes the BMRU's gradient
    blocking at every write. Same arguments as :class:`BMRU` (``eps`` defaults to 1).
    """

    default_eps = 1.0


def _check_eps_gamma(eps, gamma) -> None:
    if isinstance(eps, bool) or not (isinstance(eps, (int, float)) and 0.0 <= eps <= 1.0):
        raise ValueError(f"eps must lie in [0, 1] (0 = BMRU, 1 = CMRU), got {eps!r}")
    if isinstance(gamma, bool) or not (isinstance(gamma, (int, float)) and 0.0 < gamma < float("inf")):
        raise ValueError(f"gamma (surrogate slope) must be a finite number > 0, got {gamma!r}")
