"""The public scan functions (DESIGN §5): one contract, every backend behind it.

``linear_scan`` computes h_t = a_t ⊙ h_{t-1} + b_t (real or complex); ``bmru_scan`` computes the BMRU/CMRU
states of DESIGN §2-3. Both take (batch, time, units) tensors, any T >= 1, return every state (the final
state is ``out[:, -1]``), and differentiate exactly through the recurrence with a reverse scan (custom
autograd, never autograd through a Python loop). fp32/fp64 run natively; bf16/fp16 inputs are computed in
fp32 and the result is cast back to the input dtype.
"""

from __future__ import annotations

import math
import numbers

import torch

from .dispatch import resolve_backend
from .reference import bmru_scan_ref, linear_scan_ref

__all__ = ["linear_scan", "bmru_scan"]

_HALF = (torch.float16, torch.bfloat16)


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    if dtype in _HALF:
        return torch.float32
    if dtype == torch.complex32:
        return torch.complex64
    return dtype


def _check_3d(name: str, t, what: str = "(batch, time, units)") -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {what}, got {type(t).__name__}")
    if t.dim() != 3:
        raise ValueError(f"{name} must have shape {what}, got {tuple(t.shape)} ({t.dim()} dims)")
    if t.shape[1] == 0:
        raise ValueError(f"{name} has an empty time axis (shape {tuple(t.shape)}); a scan needs T >= 1 steps")


def _check_same(name: str, t: torch.Tensor, ref_name: str, ref: torch.Tensor) -> None:
    if t.shape != ref.shape:
        raise ValueError(f"{name} must have the same shape as {ref_name} {tuple(ref.shape)}, got {tuple(t.shape)}")
    if t.device != ref.device:
        raise ValueError(f"{name} is on {t.device} but {ref_name} is on {ref.device}; put both on one device")


def _check_initial(name: str, h0, ref: torch.Tensor) -> None:
    if not isinstance(h0, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (batch, units) or None, got {type(h0).__name__}")
    want = (ref.shape[0], ref.shape[2])
    if tuple(h0.shape) != want:
        raise ValueError(f"{name} must have shape (batch, units) = {want}, got {tuple(h0.shape)}")
    if h0.device != ref.device:
        raise ValueError(f"{name} is on {h0.device} but the inputs are on {ref.device}")


def _check_real(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    return float(value)


def _check_backend(backend) -> None:
    if backend is not None and not isinstance(backend, str):
        raise TypeError(f"backend must be a string such as 'auto', 'torch' or 'reference', got {backend!r}")


def _resolve(backend, x):
    """The backend for ``x``; an empty batch or unit axis has nothing to compute and runs on the torch backend."""
    impl = resolve_backend(backend, x)
    if x.numel() == 0 and impl != "reference":
        impl = resolve_backend("torch", x)
    return impl


class _LinearScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, b, h0, backend):
        h = backend.linear_scan_fwd(a, b, h0)
        ctx.backend = backend
        ctx.save_for_backward(a, h0, h)
        return h

    @staticmethod
    def backward(ctx, grad_h):
        a, h0, h = ctx.saved_tensors
        grad_a, grad_b, grad_h0 = ctx.backend.linear_scan_bwd(a, h0, h, grad_h.contiguous())
        return grad_a, grad_b, grad_h0, None


def _nonfinite_error(name: str) -> ValueError:
    return ValueError(f"{name} contains NaN or Inf; a BMRU cannot decide a write from it (check the layer inputs)")


class _BMRUScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, c, beta, s0, eps, gamma, backend, check_finite=False):
        if check_finite:  # the NaN/Inf check fused into the kernel's single pass over c and beta
            s, bad = backend.bmru_fwd_checked(c, beta, s0, eps)
            if bad is not None:
                raise _nonfinite_error(bad)
        else:
            s = backend.bmru_fwd(c, beta, s0, eps)
        ctx.backend, ctx.eps, ctx.gamma = backend, eps, gamma
        ctx.save_for_backward(c, beta, s0, s)
        return s

    @staticmethod
    def backward(ctx, grad_s):
        c, beta, s0, s = ctx.saved_tensors
        grads = ctx.backend.bmru_bwd(c, beta, s0, s, grad_s.contiguous(), ctx.eps, ctx.gamma)
        return (*grads, None, None, None, None)


def linear_scan(
    a: torch.Tensor,
    b: torch.Tensor,
    h0: torch.Tensor | None = None,
    *,
    backend: str | None = "auto",
) -> torch.Tensor:
    """All states of the first-order recurrence h_t = a_t ⊙ h_{t-1} + b_t (DESIGN §5).

    Args:
        a: decays, shape (batch, time, units), real or complex.
        b: inputs, same shape as ``a``.
        h0: initial state (batch, units); zeros if None.
        backend: "auto" (default), "torch", "numba", "triton" or "reference".

    Returns:
        h of shape (batch, time, units), in the promoted dtype of ``a`` and ``b``. ``h[:, -1]`` is the final state.

    Example:
        >>> a = torch.full((2, 5, 3), 0.5); b = torch.ones(2, 5, 3)
        >>> linear_scan(a, b)[0, :, 0]
        tensor([1.0000, 1.5000, 1.7500, 1.8750, 1.9375])
    """
    _check_backend(backend)
    _check_3d("a", a)
    _check_3d("b", b)
    _check_same("b", b, "a", a)
    if h0 is not None:
        _check_initial("h0", h0, b)
    dtype = torch.promote_types(a.dtype, b.dtype)
    if h0 is not None:
        dtype = torch.promote_types(dtype, h0.dtype)
    if not (dtype.is_floating_point or dtype.is_complex):
        raise TypeError(f"linear_scan needs floating-point or complex tensors, got a: {a.dtype}, b: {b.dtype}")
    cdt = _compute_dtype(dtype)
    a, b = a.to(cdt), b.to(cdt)
    h0 = torch.zeros_like(b[:, 0]) if h0 is None else h0.to(cdt)
    impl = _resolve(backend, b)
    if impl == "reference":
        h = linear_scan_ref(a, b, h0)
    else:
        h = _LinearScan.apply(a.contiguous(), b.contiguous(), h0.contiguous(), impl)
    return h if cdt == dtype else h.to(dtype)


def bmru_scan(
    c: torch.Tensor,
    beta: torch.Tensor,
    s0: torch.Tensor | None = None,
    eps: float = 0.0,
    gamma: float = 1.0,
    *,
    backend: str | None = "auto",
    check_finite: bool = True,
) -> torch.Tensor:
    """All states of the BMRU (eps = 0) / CMRU (eps = 1) recurrence (DESIGN §2-3):

        z_t = H(|c_t| - |beta_t|),   s_t = z_t (sign(c_t) + eps s_{t-1}) + (1 - z_t) s_{t-1}

    Forward is exact; the backward is exact through the recurrence and uses the arctan surrogate with
    slope ``gamma`` through H and sign.

    Args:
        c: candidates (batch, time, units), real floating point.
        beta: thresholds, same shape as ``c``.
        s0: initial state (batch, units); zeros if None. A real (non-binary) s0 is allowed: it is held
            until the first write.
        eps: in [0, 1]; 0 = BMRU (overwrite), 1 = CMRU (cumulative), in between for ε-annealing.
        gamma: surrogate slope > 0.
        backend: "auto" (default), "torch", "numba", "triton" or "reference".
        check_finite: raise on NaN/Inf in ``c`` or ``beta`` (a NaN would silently read as "hold").

    Returns:
        s of shape (batch, time, units); ``s[:, -1]`` is the final state.
    """
    _check_backend(backend)
    _check_3d("c", c)
    _check_3d("beta", beta)
    _check_same("beta", beta, "c", c)
    if s0 is not None:
        _check_initial("s0", s0, c)
    for name, t in (("c", c), ("beta", beta), ("s0", s0)):
        if t is not None and not t.dtype.is_floating_point:
            raise TypeError(f"bmru_scan needs real floating-point tensors, got {name}: {t.dtype}")
    eps, gamma = _check_real("eps", eps), _check_real("gamma", gamma)
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"eps must lie in [0, 1] (0 = BMRU, 1 = CMRU), got {eps}")
    if not (gamma > 0.0 and math.isfinite(gamma)):
        raise ValueError(f"gamma (surrogate slope) must be a finite number > 0, got {gamma}")
    impl = _resolve(backend, c)
    # backends with a fused check (``bmru_fwd_checked``) test c and beta in the same pass as the scan
    fused_check = check_finite and impl != "reference" and hasattr(impl, "bmru_fwd_checked")
    if check_finite and not fused_check and not (torch.isfinite(c).all() and torch.isfinite(beta).all()):
        raise _nonfinite_error("c" if not torch.isfinite(c).all() else "beta")
    dtype = torch.promote_types(c.dtype, beta.dtype)
    cdt = _compute_dtype(dtype)
    c, beta = c.to(cdt), beta.to(cdt)
    s0 = torch.zeros_like(c[:, 0]) if s0 is None else s0.to(cdt)
    if impl == "reference":
        s = bmru_scan_ref(c, beta, s0, eps, gamma)
    else:
        s = _BMRUScan.apply(c.contiguous(), beta.contiguous(), s0.contiguous(), eps, gamma, impl, fused_check)
    return s if cdt == dtype else s.to(dtype)
