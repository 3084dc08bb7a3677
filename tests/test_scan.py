"""The functional scans (DESIGN §2-3, §5) against their reference loops, on every available backend.

Every backend's ``linear_scan`` / ``bmru_scan`` is compared with ``linear_scan_ref`` / ``bmru_scan_ref``
evaluated in float64 on the same input values: all states (hence the final state), and the gradients of
every input (a, b, h0; c, beta, s0). Lengths 1 and 7 take the short-sequence loop of the torch backend,
17 is the first chunked length, 50 is chunked without padding, 63 and 1000 are chunked with padding.
The surrogate gradients are also checked against the closed forms of DESIGN §2, evaluated by hand.
"""

from __future__ import annotations

import math

import pytest
import torch
from scan_backends import scan_backends
from tolerances import assert_bitwise_equal, assert_close

from mru.scan import binary_sign, bmru_scan, bmru_scan_ref, heaviside, linear_scan, linear_scan_ref

BACKENDS = scan_backends()
LENGTHS = [1, 7, 63, 1000]
AWKWARD_LENGTHS = [17, 50]
BATCHES = [1, 3]
DTYPES = [torch.float32, torch.float64]
D = 5


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _linear_inputs(B, T, dtype, seed, complex_=False):
    """Decays in (-1, 1) with about 10% exact zeros (a_t = 0 must be exact), inputs ~ N(0, 1)."""
    g = _gen(seed)
    if complex_:
        r = 0.999 * torch.rand(B, T, D, generator=g, dtype=torch.float64)
        phase = 2 * math.pi * torch.rand(B, T, D, generator=g, dtype=torch.float64)
        a = torch.polar(r, phase)
        b = torch.complex(torch.randn(B, T, D, generator=g, dtype=torch.float64),
                          torch.randn(B, T, D, generator=g, dtype=torch.float64))
        h0 = torch.complex(torch.randn(B, D, generator=g, dtype=torch.float64),
                           torch.randn(B, D, generator=g, dtype=torch.float64))
    else:
        a = 2 * torch.rand(B, T, D, generator=g, dtype=torch.float64) - 1
        b = torch.randn(B, T, D, generator=g, dtype=torch.float64)
        h0 = torch.randn(B, D, generator=g, dtype=torch.float64)
    a = torch.where(torch.rand(B, T, D, generator=g, dtype=torch.float64) < 0.1, torch.zeros_like(a), a)
    w = torch.randn(B, T, D, generator=g, dtype=torch.float64)   # loss weights: L = sum(Re(w * h))
    return a.to(dtype), b.to(dtype), h0.to(dtype), w


def _bmru_inputs(B, T, dtype, seed, binary_s0=False, integer_s0=False):
    """c, beta ~ N(0, 1): a write rate of about 1/2, so both writes and holds happen."""
    g = _gen(seed)
    c = torch.randn(B, T, D, generator=g, dtype=torch.float64)
    beta = torch.randn(B, T, D, generator=g, dtype=torch.float64)
    s0 = torch.randn(B, D, generator=g, dtype=torch.float64)
    if binary_s0:
        s0 = torch.where(s0 >= 0, 1.0, -1.0).to(torch.float64)
    elif integer_s0:
        s0 = (3 * s0).round()
    w = torch.randn(B, T, D, generator=g, dtype=torch.float64)
    return c.to(dtype), beta.to(dtype), s0.to(dtype), w


def _grads(fn, inputs, w):
    """Output of ``fn(*inputs)`` and the gradients of L = sum(Re(w * out)) w.r.t. every input."""
    leaves = [x.detach().clone().requires_grad_(True) for x in inputs]
    out = fn(*leaves)
    loss = (out.real if out.is_complex() else out).mul(w.to(out.real.dtype)).sum()
    grads = torch.autograd.grad(loss, leaves)
    return out.detach(), grads


def _golden(inputs):
    """The same values in float64 / complex128: the reference is always evaluated there."""
    return [x.to(torch.complex128 if x.is_complex() else torch.float64) for x in inputs]


# -- linear scan ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("B", BATCHES)
@pytest.mark.parametrize("T", LENGTHS + AWKWARD_LENGTHS)
def test_linear_scan_matches_reference(backend, T, B, dtype):
    a, b, h0, w = _linear_inputs(B, T, dtype, seed=T * 10 + B)
    out, (ga, gb, gh0) = _grads(lambda a, b, h0: linear_scan(a, b, h0, backend=backend), (a, b, h0), w)
    ref, (ra, rb, rh0) = _grads(linear_scan_ref, _golden((a, b, h0)), w)
    assert out.dtype == dtype and out.shape == (B, T, D)
    assert_close(out, ref, dtype, "states h")
    assert_close(out[:, -1], ref[:, -1], dtype, "final state")
    assert_close(ga, ra, dtype, "grad a")
    assert_close(gb, rb, dtype, "grad b")
    assert_close(gh0, rh0, dtype, "grad h0")
    assert ga.dtype == gb.dtype == gh0.dtype == dtype


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128], ids=str)
@pytest.mark.parametrize("T", LENGTHS)
def test_complex_linear_scan_matches_reference(backend, T, dtype):
    """Complex decays |a| < 1 (the LRU's case); gradients follow PyTorch's conjugate-Wirtinger convention,
    which the autograd of the reference loop defines."""
    a, b, h0, w = _linear_inputs(3, T, dtype, seed=T + 5, complex_=True)
    out, (ga, gb, gh0) = _grads(lambda a, b, h0: linear_scan(a, b, h0, backend=backend), (a, b, h0), w)
    ref, (ra, rb, rh0) = _grads(linear_scan_ref, _golden((a, b, h0)), w)
    assert out.dtype == dtype
    assert_close(out, ref, dtype, "complex states")
    assert_close(ga, ra, dtype, "grad a (complex)")
    assert_close(gb, rb, dtype, "grad b (complex)")
    assert_close(gh0, rh0, dtype, "grad h0 (complex)")


@pytest.mark.parametrize("backend", BACKENDS)
def test_real_decay_complex_input(backend):
    """Real a with complex b promotes to complex; the gradient of the real a comes back real."""
    a, _, _, w = _linear_inputs(2, 40, torch.float64, seed=1)
    _, b, h0, _ = _linear_inputs(2, 40, torch.complex128, seed=2, complex_=True)
    out, (ga, gb, gh0) = _grads(lambda a, b, h0: linear_scan(a, b, h0, backend=backend), (a, b, h0), w)
    ref, (ra, rb, rh0) = _grads(linear_scan_ref, (a, b, h0), w)
    assert out.dtype == torch.complex128 and ga.dtype == torch.float64
    assert_close(out, ref, what="states")
    assert_close(ga, ra, what="grad a (real)")
    assert_close(gb, rb, what="grad b")
    assert_close(gh0, rh0, what="grad h0")


@pytest.mark.parametrize("backend", BACKENDS)
def test_linear_scan_default_h0_is_zero(backend):
    a, b, _, _ = _linear_inputs(2, 30, torch.float64, seed=3)
    assert_close(linear_scan(a, b, backend=backend), linear_scan(a, b, torch.zeros(2, D, dtype=torch.float64),
                                                                 backend=backend), what="h0=None vs zeros")
    # the documented example
    h = linear_scan(torch.full((2, 5, 3), 0.5), torch.ones(2, 5, 3), backend=backend)
    assert_close(h[0, :, 0], torch.tensor([1.0, 1.5, 1.75, 1.875, 1.9375]), what="docstring example")


@pytest.mark.parametrize("backend", BACKENDS)
def test_non_contiguous_inputs(backend):
    """Inputs that are transposed views or broadcast (stride-0) give the same states and gradients."""
    g = _gen(4)
    a_t = torch.rand(2, D, 70, generator=g, dtype=torch.float64)       # (B, D, T): a transposed view below
    b = torch.randn(2, 70, D, generator=g, dtype=torch.float64)
    h0_row = torch.randn(1, D, generator=g, dtype=torch.float64)
    w = torch.randn(2, 70, D, generator=g, dtype=torch.float64)

    def run(a_t, b, h0_row, scan):
        return scan(a_t.transpose(1, 2), b, h0_row.expand(2, D))

    out, grads = _grads(lambda *x: run(*x, lambda a, b, h: linear_scan(a, b, h, backend=backend)), (a_t, b, h0_row), w)
    ref, rgrads = _grads(lambda *x: run(*x, linear_scan_ref), (a_t, b, h0_row), w)
    assert_close(out, ref, what="states")
    for name, x, r in zip(("a", "b", "h0"), grads, rgrads):
        assert_close(x, r, what=f"grad {name}")


# -- BMRU / CMRU scan -------------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("eps", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("B", BATCHES)
@pytest.mark.parametrize("T", LENGTHS + AWKWARD_LENGTHS)
def test_bmru_scan_matches_reference(backend, T, B, dtype, eps):
    c, beta, s0, w = _bmru_inputs(B, T, dtype, seed=T * 7 + B)
    scan = lambda c, beta, s0: bmru_scan(c, beta, s0, eps, backend=backend)  # noqa: E731
    out, (gc, gb, gs0) = _grads(scan, (c, beta, s0), w)
    ref, (rc, rb, rs0) = _grads(lambda c, beta, s0: bmru_scan_ref(c, beta, s0, eps), _golden((c, beta, s0)), w)
    assert out.dtype == dtype and out.shape == (B, T, D)
    if eps == 0.0:
        # overwrite: every state is exactly some sign(c_k) or s_0, whatever the dtype
        assert_bitwise_equal(out, ref.to(dtype), "BMRU states")
    else:
        assert_close(out, ref, dtype, "states")
    assert_close(gc, rc, dtype, "grad c")
    assert_close(gb, rb, dtype, "grad beta")
    assert_close(gs0, rs0, dtype, "grad s0")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("gamma", [0.5, 1.0, 3.0])
@pytest.mark.parametrize("eps", [0.0, 0.5, 1.0])
def test_bmru_scan_surrogate_slope(backend, eps, gamma):
    """Every (eps, gamma) pair: the surrogate slope enters the backward exactly as in the reference."""
    for dtype in DTYPES:
        c, beta, s0, w = _bmru_inputs(3, 63, dtype, seed=11)
        out, grads = _grads(lambda c, beta, s0: bmru_scan(c, beta, s0, eps, gamma, backend=backend), (c, beta, s0), w)
        ref, rgrads = _grads(lambda c, beta, s0: bmru_scan_ref(c, beta, s0, eps, gamma), _golden((c, beta, s0)), w)
        assert_close(out, ref, dtype, "states")
        for name, x, r in zip(("c", "beta", "s0"), grads, rgrads):
            assert_close(x, r, dtype, f"grad {name} (eps={eps}, gamma={gamma}, {dtype})")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("T", LENGTHS)
def test_cmru_states_are_exact_integers(backend, T):
    """eps = 1 (CMRU): s_t = s_0 + sum of z_k sign(c_k); with an integer s_0 every state is an integer and
    matches the float64 reference bit for bit, in float32 too."""
    for dtype in DTYPES:
        c, beta, s0, _ = _bmru_inputs(3, T, dtype, seed=T, integer_s0=True)
        out = bmru_scan(c, beta, s0, eps=1.0, backend=backend)
        assert_bitwise_equal(out, out.round(), "CMRU states are integers")
        assert_bitwise_equal(out, bmru_scan_ref(*_golden((c, beta, s0)), eps=1.0).to(dtype), "CMRU states")


@pytest.mark.parametrize("backend", BACKENDS)
def test_bmru_last_write_wins(backend):
    """DESIGN §2: s_t = sign(c_k) for the last k <= t with z_k = 1, else s_0 — computed here by indexing."""
    c, beta, s0, _ = _bmru_inputs(3, 200, torch.float32, seed=5, binary_s0=True)
    s = bmru_scan(c, beta, s0, backend=backend)
    z = c.abs() >= beta.abs()
    sgn = torch.where(c >= 0, 1.0, -1.0)
    t = torch.arange(200).view(1, -1, 1).expand_as(c)
    last = torch.where(z, t, -1).cummax(dim=1).values                         # index of the last write, or -1
    expected = torch.where(last >= 0, sgn.gather(1, last.clamp_min(0)), s0.unsqueeze(1).expand_as(c))
    assert_bitwise_equal(s, expected, "last write wins")


@pytest.mark.parametrize("backend", BACKENDS)
def test_bmru_threshold_tie_writes(backend):
    """H(0) = 1: |c| = |beta| is a write, and sign(0) = +1 (unlike torch.sign)."""
    c = torch.tensor([[[0.5], [-0.5], [0.0], [0.2]]])
    beta = torch.tensor([[[-0.5], [0.5], [0.0], [0.3]]])
    s = bmru_scan(c, beta, torch.full((1, 1), -1.0), backend=backend)
    assert s.flatten().tolist() == [1.0, -1.0, 1.0, 1.0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_default_s0_is_zero_and_held(backend):
    """s0=None is a zero state, held (not binarised) until the first write."""
    c = torch.tensor([[[0.1], [0.2], [2.0]]])
    beta = torch.ones(1, 3, 1)
    assert bmru_scan(c, beta, backend=backend).flatten().tolist() == [0.0, 0.0, 1.0]


# -- half precision: computed in fp32, returned in the input dtype ------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_half_precision_is_computed_in_fp32(backend, dtype):
    T = 3000 if dtype == torch.float16 else 1000
    # a = 1, b = 1: h_T = T. Accumulated in bf16 (fp16) the sum would stall at 256 (2048); in fp32 it is exact
    # and T is representable in the half dtype, so the returned final state must be exactly T.
    ones = torch.ones(1, T, 2, dtype=dtype)
    h = linear_scan(ones, ones, backend=backend)
    assert h.dtype == dtype
    assert h[0, -1].tolist() == [float(T), float(T)]
    # the CMRU counts writes the same way
    s = bmru_scan(ones, 0.5 * ones, eps=1.0, backend=backend)
    assert s.dtype == dtype and s[0, -1].tolist() == [float(T), float(T)]

    # general inputs: the fp32 result, rounded once to the half dtype; gradients come back in the half dtype
    a, b, h0, w = _linear_inputs(3, 100, dtype, seed=6)
    out, (ga, gb, gh0) = _grads(lambda a, b, h0: linear_scan(a, b, h0, backend=backend), (a, b, h0), w)
    ref, (ra, rb, rh0) = _grads(linear_scan_ref, _golden((a, b, h0)), w)
    assert out.dtype == ga.dtype == gb.dtype == gh0.dtype == dtype
    assert_close(out, ref, dtype, "half states")
    for name, x, r in zip(("a", "b", "h0"), (ga, gb, gh0), (ra, rb, rh0)):
        assert_close(x, r, dtype, f"half grad {name}")

    c, beta, s0, w = _bmru_inputs(3, 100, dtype, seed=7, binary_s0=True)
    out, grads = _grads(lambda c, beta, s0: bmru_scan(c, beta, s0, backend=backend), (c, beta, s0), w)
    ref, rgrads = _grads(bmru_scan_ref, _golden((c, beta, s0)), w)
    assert_bitwise_equal(out, ref.to(dtype), "half BMRU states")
    for name, x, r in zip(("c", "beta", "s0"), grads, rgrads):
        assert x.dtype == dtype
        assert_close(x, r, dtype, f"half grad {name}")


# -- surrogate gradients: the closed forms of DESIGN §2 --------------------------------------------------

def _H_prime(u, gamma):
    return gamma / (1 + (math.pi * gamma * u) ** 2)


def _sign_prime(u, gamma):
    return 2 * gamma / (1 + (math.pi * gamma * u) ** 2)


def _closed_form(c, beta, s0, eps, gamma, w):
    """States and dL/dc, dL/dbeta, dL/ds0 of L = sum_t w_t s_t for one unit, in plain Python floats.

    Forward (DESIGN §2-3): z_t = H(|c_t| - |beta_t|), s_t = z_t (sign(c_t) + eps s_{t-1}) + (1 - z_t) s_{t-1}.
    Backward: the adjoint g_t = w_t + (ds_{t+1}/ds_t) g_{t+1} with ds_t/ds_{t-1} = 1 - z_t + eps z_t, and
    ds_t/dz_t = sign(c_t) + eps s_{t-1} - s_{t-1},   dz_t/dc_t = H'(u_t) d|c_t|/dc_t,
    ds_t/dc_t (through sign) = z_t sign'(c_t),       dz_t/dbeta_t = -H'(u_t) d|beta_t|/dbeta_t.
    """
    T = len(c)
    sgn = [1.0 if x >= 0 else -1.0 for x in c]
    u = [abs(ci) - abs(bi) for ci, bi in zip(c, beta)]
    z = [1.0 if ui >= 0 else 0.0 for ui in u]
    s, prev = [], s0
    for t in range(T):
        prev = z[t] * (sgn[t] + eps * prev) + (1 - z[t]) * prev
        s.append(prev)
    s_prev = [s0] + s[:-1]
    dsdprev = [1 - z[t] + eps * z[t] for t in range(T)]
    g = [0.0] * T
    for t in reversed(range(T)):
        g[t] = w[t] + (dsdprev[t + 1] * g[t + 1] if t + 1 < T else 0.0)
    dc, db = [], []
    for t in range(T):
        ds_dz = sgn[t] + eps * s_prev[t] - s_prev[t]
        dabs_c = math.copysign(1.0, c[t])      # c_t != 0 in the cases below
        dabs_b = math.copysign(1.0, beta[t])
        dc.append(g[t] * (z[t] * _sign_prime(c[t], gamma) + ds_dz * _H_prime(u[t], gamma) * dabs_c))
        db.append(g[t] * ds_dz * _H_prime(u[t], gamma) * -dabs_b)
    ds0 = dsdprev[0] * g[0]
    return s, dc, db, ds0


def test_surrogate_step_functions_closed_form():
    """heaviside / binary_sign: exact forward (H(0) = 1, sign(0) = +1), arctan surrogate backward."""
    u = torch.tensor([-2.0, -0.3, -1e-3, 0.0, 1e-3, 0.3, 2.0], dtype=torch.float64)
    for gamma in (0.5, 1.0, 3.0):
        x = u.clone().requires_grad_(True)
        h = heaviside(x, gamma)
        assert h.tolist() == [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]
        (gh,) = torch.autograd.grad(h.sum(), x)
        assert gh.tolist() == pytest.approx([_H_prime(v, gamma) for v in u.tolist()], rel=1e-14)
        sg = binary_sign(x, gamma)
        assert sg.tolist() == [-1.0, -1.0, -1.0, 1.0, 1.0, 1.0, 1.0]
        (gs,) = torch.autograd.grad(sg.sum(), x)
        assert gs.tolist() == pytest.approx([_sign_prime(v, gamma) for v in u.tolist()], rel=1e-14)
    # at u = 0 the slopes are gamma and 2 gamma
    assert _H_prime(0.0, 3.0) == 3.0 and _sign_prime(0.0, 3.0) == 6.0


def test_single_write_gradient_by_hand():
    """T = 1, c = 0.3, beta = 0.2, s0 = -1, eps = 0, gamma = 1: a write to +1. By hand:
    ds/dc = z sign'(c) + (sign(c) - s0) H'(|c| - |beta|) = 2/(1 + (0.3 pi)^2) + 2 * 1/(1 + (0.1 pi)^2),
    ds/dbeta = -(sign(c) - s0) H'(0.1) = -2/(1 + (0.1 pi)^2),  ds/ds0 = 1 - z = 0."""
    expected_dc = 2 / (1 + (0.3 * math.pi) ** 2) + 2 / (1 + (0.1 * math.pi) ** 2)
    expected_db = -2 / (1 + (0.1 * math.pi) ** 2)
    for backend in BACKENDS:
        c = torch.tensor([[[0.3]]], dtype=torch.float64, requires_grad=True)
        beta = torch.tensor([[[0.2]]], dtype=torch.float64, requires_grad=True)
        s0 = torch.tensor([[-1.0]], dtype=torch.float64, requires_grad=True)
        s = bmru_scan(c, beta, s0, backend=backend)
        assert s.item() == 1.0
        s.sum().backward()
        assert c.grad.item() == pytest.approx(expected_dc, rel=1e-12), backend
        assert beta.grad.item() == pytest.approx(expected_db, rel=1e-12), backend
        assert s0.grad.item() == 0.0, backend


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("gamma", [0.5, 1.0, 3.0])
@pytest.mark.parametrize("eps", [0.0, 0.5, 1.0])
def test_bmru_gradients_equal_closed_form(backend, eps, gamma):
    """A six-step sequence with writes of both signs, holds, negative thresholds and a real s0."""
    c = [0.3, -0.1, -1.2, 0.05, 0.8, -0.4]
    beta = [0.2, 0.5, -0.7, 0.3, -0.8, 0.1]      # |c| = |beta| at t = 4: a write (H(0) = 1)
    w = [0.7, -1.3, 0.4, 2.0, -0.6, 1.1]
    s0 = 0.25
    s_cf, dc_cf, db_cf, ds0_cf = _closed_form(c, beta, s0, eps, gamma, w)
    ct = torch.tensor(c, dtype=torch.float64).view(1, -1, 1).requires_grad_(True)
    bt = torch.tensor(beta, dtype=torch.float64).view(1, -1, 1).requires_grad_(True)
    s0t = torch.tensor([[s0]], dtype=torch.float64, requires_grad=True)
    s = bmru_scan(ct, bt, s0t, eps, gamma, backend=backend)
    (s * torch.tensor(w, dtype=torch.float64).view(1, -1, 1)).sum().backward()
    assert s.flatten().tolist() == pytest.approx(s_cf, abs=1e-15)
    assert ct.grad.flatten().tolist() == pytest.approx(dc_cf, rel=1e-12, abs=1e-14)
    assert bt.grad.flatten().tolist() == pytest.approx(db_cf, rel=1e-12, abs=1e-14)
    assert s0t.grad.item() == pytest.approx(ds0_cf, rel=1e-12, abs=1e-14)
    if eps == 1.0:
        # the CMRU's skip connection through time: ds_T/ds_0 = 1, so dL/ds0 = sum(w)
        assert s0t.grad.item() == pytest.approx(sum(w), rel=1e-12)


def test_auto_backend_matches_torch():
    a, b, h0, _ = _linear_inputs(2, 300, torch.float64, seed=9)
    assert_close(linear_scan(a, b, h0), linear_scan(a, b, h0, backend="torch"), what="auto vs torch")
    c, beta, s0, _ = _bmru_inputs(2, 300, torch.float64, seed=9, binary_s0=True)
    assert_bitwise_equal(bmru_scan(c, beta, s0), bmru_scan(c, beta, s0, backend="torch"), "auto vs torch")
