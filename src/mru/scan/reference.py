"""Reference scans: plain sequential loops, differentiated by autograd. They are the specification
every other backend is tested against (DESIGN §5, backend 1). Slow on purpose: readable, not fast.

- ``linear_scan_ref``:  h_t = a_t * h_{t-1} + b_t                                 (DESIGN §5)
- ``bmru_scan_ref``:    z_t = H(|c_t| - |beta_t|),
                        s_t = z_t (sign(c_t) + eps s_{t-1}) + (1 - z_t) s_{t-1}    (DESIGN §2-3)
"""

from __future__ import annotations

import torch

from .surrogate import binary_sign, heaviside

__all__ = ["linear_scan_ref", "bmru_scan_ref"]


def linear_scan_ref(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor | None = None) -> torch.Tensor:
    """All states of h_t = a_t * h_{t-1} + b_t for (batch, time, units) inputs; h_0 defaults to 0."""
    h = torch.zeros_like(b[:, 0]) if h0 is None else h0
    states = []
    for a_t, b_t in zip(a.unbind(1), b.unbind(1)):  # unbind: one backward node, not a full-size grad per step
        h = a_t * h + b_t
        states.append(h)
    return torch.stack(states, dim=1)


def bmru_scan_ref(
    c: torch.Tensor,
    beta: torch.Tensor,
    s0: torch.Tensor | None = None,
    eps: float = 0.0,
    gamma: float = 1.0,
) -> torch.Tensor:
    """All BMRU/CMRU states s_t (DESIGN §2-3) by a sequential loop; s_0 defaults to 0."""
    z = heaviside(c.abs() - beta.abs(), gamma)
    sg = binary_sign(c, gamma)
    s = torch.zeros_like(c[:, 0]) if s0 is None else s0
    states = []
    for zt, sgt in zip(z.unbind(1), sg.unbind(1)):
        s = zt * (sgt + eps * s) + (1 - zt) * s
        states.append(s)
    return torch.stack(states, dim=1)
