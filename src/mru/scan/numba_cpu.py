"""Native CPU scan kernels (DESIGN §5, backend 3): compiled loops over time, parallel over batch x units.

Every kernel is one pass over memory: a sequential loop over time inside a ``prange`` over tasks, a task
being one batch element and one block of units (whole rows unless the batch is smaller than the thread
count). Units are contiguous in the (batch, time, units) layout, so each time step touches one contiguous
row per tensor, and the loop over a row is written so that LLVM vectorises it:

  - the running state lives in a small task-local array (reading it back from the previous output row
    instead defeats the vectoriser: LLVM cannot prove that two rows of one array do not overlap);
  - rows are indexed with unsigned integers (a signed index makes numba emit negative-index wraparound,
    which LLVM then cannot analyse: "unsafe indirect dependence", no vectorisation);
  - reverse (backward) kernels walk each row backwards too, so every stream is a clean descending one:
    rows backwards but units forwards ran ~3x slower on the reference machine (the hardware prefetcher
    does not follow the zig-zag), fully descending runs as fast as a forward scan.

Kernels (DESIGN §2-3, §5):
  - linear scan        h_t = a_t h_{t-1} + b_t                      fp32, fp64, complex64, complex128
  - its backward       g_t = grad_t + conj(a_{t+1}) g_{t+1},  grad_a_t = g_t conj(h_{t-1}),  grad_b = g,
                       grad_h0 = conj(a_1) g_1 — one fused reverse pass
  - BMRU/CMRU forward  z_t = H(|c_t| - |beta_t|),  s_t = z_t (sign(c_t) + eps s_{t-1}) + (1 - z_t) s_{t-1}:
                       the gate is computed in the loop, no z, a or b tensor is materialised; optionally
                       fused with the NaN/Inf check of the inputs (``bmru_fwd_checked``)
  - BMRU/CMRU backward the reverse recursion and the arctan surrogate (DESIGN §2) in one pass.

What the backward keeps. DESIGN §5 asks that binary gates not be saved as fp32. These kernels save no gate
at all: the backward recomputes z_t and sign(c_t) from c and beta, which it must read anyway because the
surrogate derivatives H'(|c| - |beta|) and sign'(c) are functions of the real-valued inputs. Saving z as
bytes or bits would add memory (N/8 to N bytes) and traffic to the forward for nothing; recomputing costs
two compares per element in a loop that is bound by memory. The only other saved tensor is the output s.

Numerics. Kernels compute in the input dtype with the same operation order as the reference loop
(``reference.py``) and without fast-math, so the BMRU/CMRU states and real linear-scan states are
bit-identical to the reference. Constants reach the kernels in a small array of the input dtype, so fp32
kernels never promote to fp64 midway.

Compilation. Kernels compile on first use for each dtype (at most four signatures each) and are cached on
disk (``cache=True``: next to this file, else in numba's user-wide cache or ``NUMBA_CACHE_DIR``); where no
cache location is writable they still run, compiled per process.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch
from numba import prange, uint64

from .backend import ScanBackend

__all__ = ["NumbaBackend"]


def _jit(fn):
    """``numba.njit`` for the kernels: parallel, on-disk cache when a cache location is writable.

    ``error_model="numpy"``: no zero check on float divisions (the branch would stop vectorisation; the
    only divisor, 1 + x^2 in the surrogate, is >= 1)."""
    opts = dict(parallel=True, fastmath=False, nogil=True, error_model="numpy")
    try:
        return numba.njit(cache=True, **opts)(fn)
    except RuntimeError:  # "cannot cache function ...: no locator available" (no writable cache dir)
        return numba.njit(cache=False, **opts)(fn)


# -- linear scan -------------------------------------------------------------------------------------


@_jit
def _linear_fwd(a, b, h0, out, blk):
    B, T, D = b.shape
    nblk = (D + blk - 1) // blk
    for task in prange(B * nblk):
        bi = task // nblk
        d0 = (task % nblk) * blk
        d1 = min(d0 + blk, D)
        n = d1 - d0
        h = h0[bi, d0:d1].copy()
        for t in range(T):
            ar = a[bi, t, d0:d1]
            br = b[bi, t, d0:d1]
            orow = out[bi, t, d0:d1]
            for j in range(n):
                i = uint64(j)
                v = ar[i] * h[i] + br[i]
                h[i] = v
                orow[i] = v


@_jit
def _reverse_scan(a, grad, out, blk):
    """out_t = grad_t + a_{t+1} out_{t+1} (``a`` already conjugated by the caller if complex)."""
    B, T, D = grad.shape
    nblk = (D + blk - 1) // blk
    for task in prange(B * nblk):
        bi = task // nblk
        d0 = (task % nblk) * blk
        d1 = min(d0 + blk, D)
        n = d1 - d0
        carry = np.zeros(n, dtype=grad.dtype)  # a_{t+1} g_{t+1}
        for t in range(T - 1, -1, -1):
            ar = a[bi, t, d0:d1]
            gr = grad[bi, t, d0:d1]
            orow = out[bi, t, d0:d1]
            for j in range(n):
                i = uint64(n - 1 - j)
                g = gr[i] + carry[i]
                orow[i] = g
                carry[i] = ar[i] * g


@_jit
def _linear_bwd(a, h0, h, grad, grad_a, grad_b, grad_h0, blk):
    """Fused reverse pass: grad_b = g, grad_a = g conj(h_{t-1}), grad_h0 = conj(a_1) g_1."""
    B, T, D = grad.shape
    nblk = (D + blk - 1) // blk
    for task in prange(B * nblk):
        bi = task // nblk
        d0 = (task % nblk) * blk
        d1 = min(d0 + blk, D)
        n = d1 - d0
        carry = np.zeros(n, dtype=grad.dtype)  # conj(a_{t+1}) g_{t+1}
        for t in range(T - 1, 0, -1):
            ar = a[bi, t, d0:d1]
            gr = grad[bi, t, d0:d1]
            hp = h[bi, t - 1, d0:d1]
            ga = grad_a[bi, t, d0:d1]
            gb = grad_b[bi, t, d0:d1]
            for j in range(n):
                i = uint64(n - 1 - j)
                g = gr[i] + carry[i]
                gb[i] = g
                ga[i] = g * np.conj(hp[i])
                carry[i] = np.conj(ar[i]) * g
        ar = a[bi, 0, d0:d1]
        gr = grad[bi, 0, d0:d1]
        hp = h0[bi, d0:d1]
        ga = grad_a[bi, 0, d0:d1]
        gb = grad_b[bi, 0, d0:d1]
        g0 = grad_h0[bi, d0:d1]
        for j in range(n):
            i = uint64(n - 1 - j)
            g = gr[i] + carry[i]
            gb[i] = g
            ga[i] = g * np.conj(hp[i])
            g0[i] = np.conj(ar[i]) * g


# -- BMRU / CMRU -------------------------------------------------------------------------------------
# consts (input dtype): [eps, 1 - eps, 1, 0, gamma, pi * gamma, 2]


@_jit
def _bmru_fwd(c, beta, s0, out, consts, check, blk):
    """States of DESIGN §2-3. With ``check``, check[task] is NaN iff the task's c or beta held a NaN/Inf."""
    B, T, D = c.shape
    eps = consts[0]
    one = consts[2]
    zero = consts[3]
    nblk = (D + blk - 1) // blk
    for task in prange(B * nblk):
        bi = task // nblk
        d0 = (task % nblk) * blk
        d1 = min(d0 + blk, D)
        n = d1 - d0
        s = s0[bi, d0:d1].copy()
        if check.shape[0] > 0:
            acc = np.zeros(n, dtype=c.dtype)  # stays 0 unless some input is NaN/Inf (x * 0 is then NaN)
            for t in range(T):
                cr = c[bi, t, d0:d1]
                br = beta[bi, t, d0:d1]
                orow = out[bi, t, d0:d1]
                for j in range(n):
                    i = uint64(j)
                    cv = cr[i]
                    bv = br[i]
                    acc[i] += cv * zero + bv * zero
                    sg = one if cv >= zero else -one
                    v = (sg + eps * s[i]) if abs(cv) >= abs(bv) else s[i]
                    s[i] = v
                    orow[i] = v
            check[task] = acc.sum()
        else:
            for t in range(T):
                cr = c[bi, t, d0:d1]
                br = beta[bi, t, d0:d1]
                orow = out[bi, t, d0:d1]
                for j in range(n):
                    i = uint64(j)
                    cv = cr[i]
                    bv = br[i]
                    sg = one if cv >= zero else -one
                    v = (sg + eps * s[i]) if abs(cv) >= abs(bv) else s[i]
                    s[i] = v
                    orow[i] = v


@_jit
def _bmru_bwd(c, beta, s0, s, grad, grad_c, grad_beta, grad_s0, consts, blk):
    """Reverse pass of DESIGN §2-3, term by term as ``ScanBackend.bmru_bwd``:

    g_t = grad_t + a_{t+1} g_{t+1},  a_t = 1 - (1 - eps) z_t,  dz_t = g_t (sign(c_t) - (1 - eps) s_{t-1}),
    du_t = dz_t H'(u_t),  grad_c = g_t z_t sign'(c_t) + du_t sgn(c_t),  grad_beta = -du_t sgn(beta_t),
    grad_s0 = a_1 g_1  (sgn is torch.sign, the derivative of |x|).
    """
    B, T, D = c.shape
    k = consts[1]
    one = consts[2]
    zero = consts[3]
    gamma = consts[4]
    pig = consts[5]
    two = consts[6]
    nblk = (D + blk - 1) // blk
    for task in prange(B * nblk):
        bi = task // nblk
        d0 = (task % nblk) * blk
        d1 = min(d0 + blk, D)
        n = d1 - d0
        carry = np.zeros(n, dtype=c.dtype)  # a_{t+1} g_{t+1}
        for t in range(T - 1, -1, -1):
            cr = c[bi, t, d0:d1]
            br = beta[bi, t, d0:d1]
            gr = grad[bi, t, d0:d1]
            sp = s[bi, t - 1, d0:d1] if t > 0 else s0[bi, d0:d1]
            gcr = grad_c[bi, t, d0:d1]
            gbr = grad_beta[bi, t, d0:d1]
            for j in range(n):
                i = uint64(n - 1 - j)
                cv = cr[i]
                bv = br[i]
                g = gr[i] + carry[i]
                u = abs(cv) - abs(bv)
                z = one if u >= zero else zero
                sg = one if cv >= zero else -one
                x = pig * u
                du = (g * (sg - k * sp[i])) * (gamma / (one + x * x))
                y = pig * cv
                sgrad = two * (gamma / (one + y * y))
                tc = one if cv > zero else (-one if cv < zero else zero)
                tb = one if bv > zero else (-one if bv < zero else zero)
                gcr[i] = g * z * sgrad + du * tc
                gbr[i] = -du * tb
                carry[i] = (one - k * z) * g
        g0 = grad_s0[bi, d0:d1]
        for j in range(n):
            i = uint64(j)
            g0[i] = carry[i]


# -- backend -----------------------------------------------------------------------------------------

#: narrowest block of units a task gets when a row is split between threads
_MIN_BLOCK = 256
#: elements per thread below which another thread costs more (waking it, sharing the cores with torch's
#: own pool) than it brings; small scans, e.g. step mode, run on the calling thread alone
_GRAIN = 1 << 16

_NO_CHECK = {np.dtype(np.float32): np.empty(0, np.float32), np.dtype(np.float64): np.empty(0, np.float64)}


def _np(t: torch.Tensor) -> np.ndarray:
    """A numpy view of a contiguous CPU tensor (no copy unless it carries a lazy conj/neg bit)."""
    return t.detach().resolve_conj().resolve_neg().numpy()


def _plan(B: int, T: int, D: int) -> tuple[int, int]:
    """(threads, units per task) for a (B, T, D) scan.

    Threads: at most numba's current setting, one per ``_GRAIN`` elements. Units per task: whole rows
    whenever the batch alone gives every thread a task: measured on a 2-core Zen 5, a task over half rows
    streams at about half the speed of one over whole rows (the prefetcher fetches the skipped half too).
    Narrower blocks (>= ``_MIN_BLOCK`` units) only when batch < threads, e.g. batch-1 inference on a
    many-core machine."""
    threads = max(1, min(numba.get_num_threads(), (B * T * D) // _GRAIN))
    per_row = threads // max(B, 1)
    if per_row <= 1 or D == 0:
        return threads, D
    return threads, min(D, max(_MIN_BLOCK, -(-D // per_row)))


def _run(kernel, threads: int, *args) -> None:
    """``kernel(*args)`` on ``threads`` threads (numba's setting is per calling thread; restored after)."""
    current = numba.get_num_threads()
    if threads >= current:
        kernel(*args)
        return
    numba.set_num_threads(threads)
    try:
        kernel(*args)
    finally:
        numba.set_num_threads(current)


def _bmru_consts(dtype: np.dtype, eps: float, gamma: float = 1.0) -> np.ndarray:
    return np.array([eps, 1.0 - eps, 1.0, 0.0, gamma, math.pi * gamma, 2.0], dtype=dtype)


class NumbaBackend(ScanBackend):
    """Compiled CPU kernels (numba), parallel over batch x units; see the module docstring."""

    name = "numba"
    device_types = ("cpu",)
    #: "auto" uses torch ops up to this length: a call costs ~20 us, as much as two or three torch ops
    #: (measured at B = 1-64, units = 64-256: numba is faster from T = 1 for the BMRU, from T = 3-4 for
    #: the linear scan, on par at T = 2)
    short_sequence = 2

    def linear_scan_fwd(self, a, b, h0):
        out = torch.empty_like(b)
        threads, blk = _plan(*b.shape)
        _run(_linear_fwd, threads, _np(a), _np(b), _np(h0), _np(out), blk)
        return out

    def reverse_linear_scan(self, a, grad_h):
        out = torch.empty_like(grad_h)
        threads, blk = _plan(*grad_h.shape)
        _run(_reverse_scan, threads, _np(a), _np(grad_h), _np(out), blk)
        return out

    def linear_scan_bwd(self, a, h0, h, grad_h):
        grad_a, grad_b, grad_h0 = torch.empty_like(a), torch.empty_like(grad_h), torch.empty_like(h0)
        threads, blk = _plan(*grad_h.shape)
        _run(_linear_bwd, threads, _np(a), _np(h0), _np(h), _np(grad_h), _np(grad_a), _np(grad_b), _np(grad_h0), blk)
        return grad_a, grad_b, grad_h0

    def bmru_fwd(self, c, beta, s0, eps):
        out = torch.empty_like(c)
        cn = _np(c)
        threads, blk = _plan(*c.shape)
        consts = _bmru_consts(cn.dtype, eps)
        _run(_bmru_fwd, threads, cn, _np(beta), _np(s0), _np(out), consts, _NO_CHECK[cn.dtype], blk)
        return out

    def bmru_fwd_checked(self, c, beta, s0, eps):
        """``bmru_fwd`` fused with the NaN/Inf check of ``c`` and ``beta`` (no second pass over the inputs).

        Returns (s, None), or (None, name) with name the first of "c", "beta" that is not finite."""
        out = torch.empty_like(c)
        cn = _np(c)
        B, _, D = c.shape
        threads, blk = _plan(*c.shape)
        check = np.zeros(B * (-(-D // blk)) if D else 0, dtype=cn.dtype)
        _run(_bmru_fwd, threads, cn, _np(beta), _np(s0), _np(out), _bmru_consts(cn.dtype, eps), check, blk)
        if np.isnan(check).any():
            return None, ("c" if not torch.isfinite(c).all() else "beta")
        return out, None

    def bmru_bwd(self, c, beta, s0, s, grad_s, eps, gamma):
        grad_c, grad_beta, grad_s0 = torch.empty_like(c), torch.empty_like(beta), torch.empty_like(s0)
        cn = _np(c)
        threads, blk = _plan(*c.shape)
        _run(
            _bmru_bwd, threads, cn, _np(beta), _np(s0), _np(s), _np(grad_s), _np(grad_c), _np(grad_beta),
            _np(grad_s0), _bmru_consts(cn.dtype, eps, gamma), blk,
        )
        return grad_c, grad_beta, grad_s0
