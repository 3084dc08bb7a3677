"""The backend contract of the scan engine (DESIGN §5).

A backend supplies four kernels over contiguous (batch, time, units) tensors; autograd, dtype handling
and input checks live in ``functional.py``, so a backend only computes. Every backend is tested against
the reference loops in ``reference.py``.

    linear_scan_fwd(a, b, h0)                  -> h                     h_t = a_t h_{t-1} + b_t
    linear_scan_bwd(a, h0, h, grad_h)          -> grad_a, grad_b, grad_h0
    bmru_fwd(c, beta, s0, eps)                 -> s                     DESIGN §2-3
    bmru_bwd(c, beta, s0, s, grad_s, eps, gamma) -> grad_c, grad_beta, grad_s0

Optional: ``bmru_fwd_checked(c, beta, s0, eps) -> (s, None) or (None, "c" | "beta")`` fuses the NaN/Inf
check of ``bmru_scan(check_finite=True)`` into the forward pass; without it the check is a separate pass.

Complex gradients follow PyTorch's convention (conjugate Wirtinger): grad_a = g * conj(h_{t-1}).
``bmru_bwd`` has a generic implementation here in terms of a reverse linear scan, shared by backends
that do not fuse it.
"""

from __future__ import annotations

import math

import torch

from .surrogate import heaviside_grad, sign_grad


class ScanBackend:
    """Base class of scan backends. Subclasses set ``name`` and override the kernels."""

    name = "base"
    #: devices types this backend runs on ("cpu", "cuda")
    device_types: tuple[str, ...] = ()

    def availability(self) -> str | None:
        """None if usable, else the reason it is not (e.g. a missing package)."""
        return None

    def supports(self, t: torch.Tensor) -> bool:
        return t.device.type in self.device_types

    # -- linear scan -------------------------------------------------------------------------
    def linear_scan_fwd(self, a, b, h0):  # pragma: no cover - abstract
        raise NotImplementedError

    def reverse_linear_scan(self, a, grad_h):
        """g_t = grad_t + a_{t+1} g_{t+1} (g_T = grad_T); ``a`` is already conjugated if complex."""
        raise NotImplementedError  # pragma: no cover - abstract

    def linear_scan_bwd(self, a, h0, h, grad_h):
        ac = a.conj() if a.is_complex() else a
        g = self.reverse_linear_scan(ac, grad_h)
        h_prev = torch.cat([h0.unsqueeze(1), h[:, :-1]], dim=1)
        grad_a = g * (h_prev.conj() if h_prev.is_complex() else h_prev)
        grad_h0 = ac[:, 0] * g[:, 0]
        return grad_a, g, grad_h0

    # -- BMRU / CMRU ---------------------------------------------------------------------------
    def bmru_fwd(self, c, beta, s0, eps):  # pragma: no cover - abstract
        raise NotImplementedError

    def bmru_bwd(self, c, beta, s0, s, grad_s, eps, gamma):
        """Exact backward through the recurrence, arctan surrogate through H and sign (DESIGN §2)."""
        absc, absb = c.abs(), beta.abs()
        u = absc - absb
        z = (u >= 0).to(c.dtype)
        k = 1.0 - eps
        a = 1.0 - k * z                                       # ds_t / ds_{t-1}
        g = self.reverse_linear_scan(a, grad_s)               # dL/ds_t, total
        s_prev = torch.cat([s0.unsqueeze(1), s[:, :-1]], dim=1)
        sgn = torch.where(c >= 0, 1.0, -1.0).to(c.dtype)
        dz = g * (sgn - k * s_prev)                           # dL/dz_t
        dzu = dz * heaviside_grad(u, gamma)                   # dL/du_t, u = |c| - |beta|
        grad_c = g * z * sign_grad(c, gamma) + dzu * torch.sign(c)
        grad_beta = -dzu * torch.sign(beta)
        grad_s0 = a[:, 0] * g[:, 0]
        return grad_c, grad_beta, grad_s0


def default_chunk(T: int) -> int:
    """Chunk length of the two-level scan: about sqrt(2T), which balances the two loops."""
    return max(1, int(math.sqrt(2 * T)))
