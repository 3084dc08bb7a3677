"""Triton GPU scan kernels (DESIGN §5, backend 4): fused gate + scan, forward and backward.

Each program owns one batch element and a block of ``BLOCK`` units and runs the recurrence sequentially
over time, keeping the state in registers: every input is read once and every output written once, with
coalesced row accesses (units are contiguous in the (batch, time, units) layout). Kernels:

  - BMRU/CMRU forward   z_t = H(|c_t| - |beta_t|), s_t = z_t (sign(c_t) + eps s_{t-1}) + (1 - z_t) s_{t-1}
                        (DESIGN §2-3): the gate is computed in registers, never stored; optionally fused
                        with the NaN/Inf check of c and beta (``bmru_fwd_checked``)
  - BMRU/CMRU backward  the reverse recursion and the arctan surrogate in one pass; gates are recomputed
                        from c and beta (which the surrogate derivatives need anyway), nothing is saved
                        beyond the inputs and the states
  - linear scan         h_t = a_t h_{t-1} + b_t, real, or complex as interleaved (re, im) planes
                        (``torch.view_as_real``), and its fused backward (DESIGN §5)

Constants (eps, gamma, ...) reach the kernels as a tiny tensor of the compute dtype, so fp64 kernels
compute with fp64 constants (a Python float argument would be passed as fp32).

Testing without a GPU: with ``TRITON_INTERPRET=1`` Triton runs the kernels in its interpreter on CPU
tensors, and this backend then accepts CPU tensors. The kernels are built on first use for the interpret
mode in force at that moment, so the variable may be set after ``triton`` is imported; they use only
Triton builtins (no ``@triton.jit`` library functions, which are bound to the mode at import time).
"""

import math
import os

import torch
import triton
import triton.language as tl

from .backend import ScanBackend

__all__ = ["TritonBackend"]


def _interpret() -> bool:
    """Whether Triton runs kernels in its CPU interpreter (``TRITON_INTERPRET``, read as Triton does)."""
    return os.environ.get("TRITON_INTERPRET", "").strip().lower() in ("1", "true", "on", "yes")


# -- kernels (plain functions, compiled by ``_kernels``) -----------------------------------------------
# consts (compute dtype): [eps, 1 - eps, 1, 0, gamma, pi * gamma, 2]


def _bmru_fwd_kernel(c_ptr, beta_ptr, s0_ptr, out_ptr, consts_ptr, check_ptr, T, D,
                     BLOCK: tl.constexpr, CHECK: tl.constexpr):
    pid_b = tl.program_id(0).to(tl.int64)
    offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < D
    eps = tl.load(consts_ptr)
    one = tl.load(consts_ptr + 2)
    zero = tl.load(consts_ptr + 3)
    s = tl.load(s0_ptr + pid_b * D + offs, mask=mask, other=0.0)
    acc = tl.full([BLOCK], 0.0, s.dtype)  # stays 0 unless some input is NaN/Inf (x * 0 is then NaN)
    row = pid_b * T * D + offs
    for _ in range(T):
        cv = tl.load(c_ptr + row, mask=mask, other=0.0)
        bv = tl.load(beta_ptr + row, mask=mask, other=0.0)
        if CHECK:
            acc += cv * zero + bv * zero
        sg = tl.where(cv >= zero, one, -one)
        s = tl.where(tl.abs(cv) >= tl.abs(bv), sg + eps * s, s)
        tl.store(out_ptr + row, s, mask=mask)
        row += D
    if CHECK:
        tl.store(check_ptr + pid_b * D + offs, acc, mask=mask)


def _bmru_bwd_kernel(c_ptr, beta_ptr, s0_ptr, s_ptr, grad_ptr, grad_c_ptr, grad_beta_ptr, grad_s0_ptr,
                     consts_ptr, T, D, BLOCK: tl.constexpr):
    pid_b = tl.program_id(0).to(tl.int64)
    offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < D
    k = tl.load(consts_ptr + 1)
    one = tl.load(consts_ptr + 2)
    zero = tl.load(consts_ptr + 3)
    gamma = tl.load(consts_ptr + 4)
    pig = tl.load(consts_ptr + 5)
    two = tl.load(consts_ptr + 6)
    s0 = tl.load(s0_ptr + pid_b * D + offs, mask=mask, other=0.0)
    carry = tl.full([BLOCK], 0.0, s0.dtype)  # a_{t+1} g_{t+1}
    row = pid_b * T * D + (T - 1) * D + offs
    for i in range(T):
        t = T - 1 - i
        cv = tl.load(c_ptr + row, mask=mask, other=0.0)
        bv = tl.load(beta_ptr + row, mask=mask, other=0.0)
        g = tl.load(grad_ptr + row, mask=mask, other=0.0) + carry
        has_prev = (offs * 0 + t) > 0  # t > 0 as a vector (a scalar mask is not portable to the interpreter)
        sp = tl.load(s_ptr + row - D, mask=mask & has_prev, other=0.0)
        sp = tl.where(has_prev, sp, s0)
        u = tl.abs(cv) - tl.abs(bv)
        z = tl.where(u >= zero, one, zero)
        sg = tl.where(cv >= zero, one, -one)
        x = pig * u
        du = (g * (sg - k * sp)) * (gamma / (one + x * x))
        y = pig * cv
        sgrad = two * (gamma / (one + y * y))
        tc = tl.where(cv > zero, one, tl.where(cv < zero, -one, zero))
        tb = tl.where(bv > zero, one, tl.where(bv < zero, -one, zero))
        tl.store(grad_c_ptr + row, g * z * sgrad + du * tc, mask=mask)
        tl.store(grad_beta_ptr + row, -du * tb, mask=mask)
        carry = (one - k * z) * g
        row -= D
    tl.store(grad_s0_ptr + pid_b * D + offs, carry, mask=mask)


def _linear_fwd_kernel(a_ptr, b_ptr, h0_ptr, out_ptr, T, D, BLOCK: tl.constexpr, W: tl.constexpr):
    # W = 2: complex tensors as (..., 2) real views, element j of a row at 2 j (re) and 2 j + 1 (im)
    pid_b = tl.program_id(0).to(tl.int64)
    offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < D
    hr = tl.load(h0_ptr + (pid_b * D + offs) * W, mask=mask, other=0.0)
    hi = hr
    if W == 2:
        hi = tl.load(h0_ptr + (pid_b * D + offs) * W + 1, mask=mask, other=0.0)
    row = (pid_b * T * D + offs) * W
    for _ in range(T):
        ar = tl.load(a_ptr + row, mask=mask, other=0.0)
        br = tl.load(b_ptr + row, mask=mask, other=0.0)
        if W == 2:
            ai = tl.load(a_ptr + row + 1, mask=mask, other=0.0)
            bi = tl.load(b_ptr + row + 1, mask=mask, other=0.0)
            hr, hi = ar * hr - ai * hi + br, ar * hi + ai * hr + bi
            tl.store(out_ptr + row, hr, mask=mask)
            tl.store(out_ptr + row + 1, hi, mask=mask)
        else:
            hr = ar * hr + br
            tl.store(out_ptr + row, hr, mask=mask)
        row += D * W


def _linear_bwd_kernel(a_ptr, h0_ptr, h_ptr, grad_ptr, grad_a_ptr, grad_b_ptr, grad_h0_ptr, T, D,
                       BLOCK: tl.constexpr, W: tl.constexpr, FUSED: tl.constexpr):
    """FUSED: g_t = grad_t + conj(a_{t+1}) g_{t+1}, grad_b = g, grad_a = g conj(h_{t-1}), grad_h0 = conj(a_1) g_1.
    Not FUSED: only the reverse scan g_t = grad_t + a_{t+1} g_{t+1} (into grad_b), ``a`` taken as given."""
    pid_b = tl.program_id(0).to(tl.int64)
    offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < D
    h0r = tl.load(h0_ptr + (pid_b * D + offs) * W, mask=mask, other=0.0)
    h0i = h0r
    if W == 2:
        h0i = tl.load(h0_ptr + (pid_b * D + offs) * W + 1, mask=mask, other=0.0)
    cr = tl.full([BLOCK], 0.0, h0r.dtype)  # carry: (conj) a_{t+1} g_{t+1}, re
    ci = cr  # im
    row = (pid_b * T * D + (T - 1) * D + offs) * W
    for i in range(T):
        has_prev = (offs * 0 + (T - 1 - i)) > 0  # t > 0, as a vector
        gr = tl.load(grad_ptr + row, mask=mask, other=0.0) + cr
        ar = tl.load(a_ptr + row, mask=mask, other=0.0)
        tl.store(grad_b_ptr + row, gr, mask=mask)
        if W == 2:
            gi = tl.load(grad_ptr + row + 1, mask=mask, other=0.0) + ci
            ai = tl.load(a_ptr + row + 1, mask=mask, other=0.0)
            tl.store(grad_b_ptr + row + 1, gi, mask=mask)
            if FUSED:
                hr = tl.load(h_ptr + row - D * W, mask=mask & has_prev, other=0.0)
                hi = tl.load(h_ptr + row - D * W + 1, mask=mask & has_prev, other=0.0)
                hr = tl.where(has_prev, hr, h0r)
                hi = tl.where(has_prev, hi, h0i)
                tl.store(grad_a_ptr + row, gr * hr + gi * hi, mask=mask)
                tl.store(grad_a_ptr + row + 1, gi * hr - gr * hi, mask=mask)
                cr, ci = ar * gr + ai * gi, ar * gi - ai * gr
            else:
                cr, ci = ar * gr - ai * gi, ar * gi + ai * gr
        else:
            if FUSED:
                hp = tl.load(h_ptr + row - D, mask=mask & has_prev, other=0.0)
                hp = tl.where(has_prev, hp, h0r)
                tl.store(grad_a_ptr + row, gr * hp, mask=mask)
            cr = ar * gr
        row -= D * W
    if FUSED:
        tl.store(grad_h0_ptr + (pid_b * D + offs) * W, cr, mask=mask)
        if W == 2:
            tl.store(grad_h0_ptr + (pid_b * D + offs) * W + 1, ci, mask=mask)


_SOURCES = {
    "bmru_fwd": _bmru_fwd_kernel,
    "bmru_bwd": _bmru_bwd_kernel,
    "linear_fwd": _linear_fwd_kernel,
    "linear_bwd": _linear_bwd_kernel,
}
_KERNELS: dict = {}


def _kernels(name: str):
    """The compiled (or, under TRITON_INTERPRET, interpreted) kernel ``name`` for the current mode."""
    key = (name, _interpret())
    if key not in _KERNELS:
        _KERNELS[key] = triton.jit(_SOURCES[name])
    return _KERNELS[key]


# -- launch helpers ----------------------------------------------------------------------------------


def _block(D: int) -> int:
    """Units per program: 32 on a GPU (with batch x units/32 programs in flight); under the interpreter,
    where each program costs Python time, one program per row up to 128 units."""
    cap = 128 if _interpret() else 32
    return max(1, min(cap, triton.next_power_of_2(D)))


def _grid(B: int, D: int, block: int):
    return (B, -(-D // block))


def _launch_opts() -> dict:
    return {} if _interpret() else {"num_warps": 1}


_CONSTS: dict = {}


def _bmru_consts(ref: torch.Tensor, eps: float, gamma: float = 1.0) -> torch.Tensor:
    """Constants of the BMRU kernels as a tensor on ``ref``'s device and dtype (cached: no copy per call)."""
    key = (ref.device, ref.dtype, eps, gamma)
    t = _CONSTS.get(key)
    if t is None:
        if len(_CONSTS) > 256:
            _CONSTS.clear()
        vals = [eps, 1.0 - eps, 1.0, 0.0, gamma, math.pi * gamma, 2.0]
        t = _CONSTS[key] = torch.tensor(vals, dtype=ref.dtype, device=ref.device)
    return t


def _planes(t: torch.Tensor) -> torch.Tensor:
    """Complex tensors as interleaved real planes; real tensors unchanged."""
    return torch.view_as_real(t.resolve_conj()) if t.is_complex() else t


class TritonBackend(ScanBackend):
    """Fused Triton kernels (CUDA; CPU under ``TRITON_INTERPRET=1``); see the module docstring."""

    name = "triton"
    device_types = ("cuda",)

    def availability(self):
        if _interpret() or torch.cuda.is_available():
            return None
        return "no CUDA device (set TRITON_INTERPRET=1 to run the Triton kernels on CPU, for testing)"

    def supports(self, t):
        return t.device.type == "cuda" or (_interpret() and t.device.type == "cpu")

    # -- linear scan ----------------------------------------------------------------------------
    def linear_scan_fwd(self, a, b, h0):
        B, T, D = b.shape
        out = torch.empty_like(b)
        block = _block(D)
        _kernels("linear_fwd")[_grid(B, D, block)](
            _planes(a), _planes(b), _planes(h0), _planes(out), T, D,
            BLOCK=block, W=2 if b.is_complex() else 1, **_launch_opts(),
        )
        return out

    def _reverse(self, a, h0, h, grad_h, fused):
        B, T, D = grad_h.shape
        grad_b = torch.empty_like(grad_h)
        grad_a = torch.empty_like(grad_h) if fused else grad_b
        grad_h0 = torch.empty_like(grad_h[:, 0]) if fused else grad_b
        h0 = h0 if fused else grad_b
        h = h if fused else grad_b
        block = _block(D)
        _kernels("linear_bwd")[_grid(B, D, block)](
            _planes(a), _planes(h0), _planes(h), _planes(grad_h), _planes(grad_a), _planes(grad_b),
            _planes(grad_h0), T, D, BLOCK=block, W=2 if grad_h.is_complex() else 1, FUSED=fused, **_launch_opts(),
        )
        return grad_a, grad_b, grad_h0

    def reverse_linear_scan(self, a, grad_h):
        return self._reverse(a, None, None, grad_h, fused=False)[1]

    def linear_scan_bwd(self, a, h0, h, grad_h):
        return self._reverse(a, h0, h, grad_h, fused=True)

    # -- BMRU / CMRU -------------------------------------------------------------------------------
    def _bmru_fwd(self, c, beta, s0, eps, check):
        B, T, D = c.shape
        out = torch.empty_like(c)
        flags = torch.empty_like(s0) if check else out
        block = _block(D)
        _kernels("bmru_fwd")[_grid(B, D, block)](
            c, beta, s0, out, _bmru_consts(c, eps), flags, T, D, BLOCK=block, CHECK=check, **_launch_opts(),
        )
        return out, flags

    def bmru_fwd(self, c, beta, s0, eps):
        return self._bmru_fwd(c, beta, s0, eps, check=False)[0]

    def bmru_fwd_checked(self, c, beta, s0, eps):
        """``bmru_fwd`` fused with the NaN/Inf check of ``c`` and ``beta``: (s, None) or (None, "c" | "beta")."""
        out, flags = self._bmru_fwd(c, beta, s0, eps, check=True)
        if torch.isnan(flags).any():
            return None, ("c" if not torch.isfinite(c).all() else "beta")
        return out, None

    def bmru_bwd(self, c, beta, s0, s, grad_s, eps, gamma):
        B, T, D = c.shape
        grad_c, grad_beta, grad_s0 = torch.empty_like(c), torch.empty_like(beta), torch.empty_like(s0)
        block = _block(D)
        _kernels("bmru_bwd")[_grid(B, D, block)](
            c, beta, s0, s, grad_s, grad_c, grad_beta, grad_s0, _bmru_consts(c, eps, gamma), T, D,
            BLOCK=block, **_launch_opts(),
        )
        return grad_c, grad_beta, grad_s0
