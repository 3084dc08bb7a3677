"""What users would otherwise write: the pure-PyTorch scans mru is measured against.

- ``tree_linear_scan``: the Hillis-Steele tree scan in torch ops (log2 T doubling steps);
- ``associative_scan_generic``: ``torch._higher_order_ops.associative_scan`` with ``combine_mode="generic"``;
- the BMRU equations in a Python loop under autograd are ``BMRU(..., backend="reference")``.
"""

from __future__ import annotations

import torch


def tree_linear_scan(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """h_t = a_t h_{t-1} + b_t (h_0 = 0) by log2(T) doubling steps over the time axis (dim 1)."""
    T = a.shape[1]
    k = 1
    while k < T:
        a_prev, b_prev = a[:, :-k], b[:, :-k]
        b = torch.cat([b[:, :k], a[:, k:] * b_prev + b[:, k:]], dim=1)
        a = torch.cat([a[:, :k], a[:, k:] * a_prev], dim=1)
        k *= 2
    return b


def _combine(x, y):
    a1, b1 = x
    a2, b2 = y
    return a1 * a2, a2 * b1 + b2


def associative_scan_generic(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor | None:
    """torch's higher-order associative scan in generic mode, or None where this torch lacks it."""
    try:
        from torch._higher_order_ops.associative_scan import associative_scan
    except ImportError:
        return None
    return associative_scan(_combine, (a, b), dim=1, combine_mode="generic")[1]
