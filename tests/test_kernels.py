"""The compiled scan kernels against the reference loops (DESIGN §5, backends 3 and 4).

Every kernel of the native CPU backend ("numba") and of the Triton backend ("triton": on a GPU when there
is one, else on CPU in Triton's interpreter, TRITON_INTERPRET=1) runs through the public ``linear_scan`` /
``bmru_scan`` and is compared with ``linear_scan_ref`` / ``bmru_scan_ref``: all states (hence the final
state), bit for bit where the kernel performs the reference's operations in the reference's order, and
the gradients of every input (a, b, h0; c, beta, s0) against the float64 reference. Lengths are
deliberately odd (1, 7, 63, 1000, 4097; the interpreter, which is slow, stops at 300), the unit count 67
leaves a remainder after every SIMD width, and inputs also arrive as transposed, strided and broadcast
views.

A backend whose package is missing is skipped with the reason; the torch fallback that then runs is
tested here too (``test_fallback_*``).
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from tolerances import assert_bitwise_equal, assert_close

from mru.scan import (
    available_backends, binary_sign, bmru_scan, bmru_scan_ref, dispatch, heaviside, linear_scan, linear_scan_ref,
)
from mru.scan.torch_ops import SHORT_SEQUENCE, TorchOpsBackend

CUDA = torch.cuda.is_available()
D = 67                                   # > 64 = 16 fp32 lanes x 4, plus a remainder
NUMBA_LENGTHS = [1, 7, 63, 1000, 4097]
INTERPRETER_LENGTHS = [1, 7, 63, 300]    # Triton's interpreter takes milliseconds per step
DTYPES = [torch.float32, torch.float64]
NAN_MESSAGE = r"contains NaN or Inf; a BMRU cannot decide a write from it \(check the layer inputs\)$"


# -- the backends under test ------------------------------------------------------------------------------

def _setup_numba(monkeypatch):
    pytest.importorskip("numba", reason="numba is not installed: no native CPU kernels to test "
                                        "(the torch fallback is tested by test_fallback_*)")
    status = available_backends()["numba"]
    assert status == "available", f"numba is installed but its backend did not load: {status}"
    return "cpu"


def _setup_triton(monkeypatch):
    pytest.importorskip("triton", reason="triton is not installed: no Triton kernels to test")
    if not CUDA:
        # kernels are built for the interpret mode in force at first use: setting it now is enough
        monkeypatch.setenv("TRITON_INTERPRET", "1")
    from mru.scan.triton_gpu import TritonBackend

    backend = TritonBackend()
    assert backend.availability() is None
    monkeypatch.delitem(dispatch._UNAVAILABLE, "triton", raising=False)  # a verdict from before the env var
    monkeypatch.setitem(dispatch._LOADED, "triton", backend)
    return "cuda" if CUDA else "cpu"


@pytest.fixture
def kernel(request, monkeypatch):
    """The backend named by the parameter, made usable (or the test skipped): its name and device."""
    name = request.param
    device = {"numba": _setup_numba, "triton": _setup_triton}[name](monkeypatch)
    return SimpleNamespace(name=name, device=device, exact=device == "cpu",
                           backend=dispatch._load(name))


def _lengths(name):
    return NUMBA_LENGTHS if name == "numba" or CUDA else INTERPRETER_LENGTHS


def with_lengths(names=("numba", "triton"), short=False):
    """Parametrise (kernel, T) over each backend's lengths (``short``: the first three only). The longest
    interpreter runs (seconds each) are marked slow."""
    cases = []
    for n in names:
        lengths = _lengths(n)[:3] if short else _lengths(n)
        for T in lengths:
            slow = n == "triton" and not CUDA and T == lengths[-1] and T > 100
            cases.append(pytest.param(n, T, id=f"{n}-T{T}", marks=[pytest.mark.slow] if slow else []))
    return pytest.mark.parametrize("kernel,T", cases, indirect=["kernel"])


with_backends = pytest.mark.parametrize("kernel", ["numba", "triton"], indirect=True)


# -- inputs and gradients -------------------------------------------------------------------------------

def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _linear_inputs(B, T, dtype, seed):
    g = _gen(seed)
    if dtype.is_complex:
        a = torch.polar(0.999 * torch.rand(B, T, D, generator=g, dtype=torch.float64),
                        2 * math.pi * torch.rand(B, T, D, generator=g, dtype=torch.float64))
        b = torch.randn(B, T, D, generator=g, dtype=torch.complex128)
        h0 = torch.randn(B, D, generator=g, dtype=torch.complex128)
    else:
        a = 2 * torch.rand(B, T, D, generator=g, dtype=torch.float64) - 1
        b = torch.randn(B, T, D, generator=g, dtype=torch.float64)
        h0 = torch.randn(B, D, generator=g, dtype=torch.float64)
    a = torch.where(torch.rand(B, T, D, generator=g, dtype=torch.float64) < 0.1, 0.0, a)  # exact zeros too
    w = torch.randn(B, T, D, generator=g, dtype=torch.float64)
    return a.to(dtype), b.to(dtype), h0.to(dtype), w


def _bmru_inputs(B, T, dtype, seed):
    """c, beta ~ N(0, 1) (writes and holds), with exact zeros c = 0 (sign(0) = +1 in the forward,
    torch.sign(0) = 0 in the gradient) and exact ties |c| = |beta| (H(0) = 1: a write)."""
    g = _gen(seed)
    c = torch.randn(B, T, D, generator=g, dtype=torch.float64)
    beta = torch.randn(B, T, D, generator=g, dtype=torch.float64)
    c[:, :, :3] = 0.0
    beta[:, :, :2] = 0.0                       # |c| = |beta| = 0: a write of sign(0) = +1
    beta[:, :, 3:6] = -c[:, :, 3:6]
    s0 = torch.randn(B, D, generator=g, dtype=torch.float64)  # a real s0 is held until the first write
    w = torch.randn(B, T, D, generator=g, dtype=torch.float64)
    return c.to(dtype), beta.to(dtype), s0.to(dtype), w


def _grads(fn, inputs, w):
    """fn(*inputs) and the gradients of L = sum(Re(w * out)) w.r.t. every input."""
    leaves = [x.detach().clone().requires_grad_(True) for x in inputs]
    out = fn(*leaves)
    loss = (out.real if out.is_complex() else out).mul(w.to(out.device, out.real.dtype)).sum()
    return out.detach().cpu(), [g.cpu() for g in torch.autograd.grad(loss, leaves)]


# The reference loops, step for step, but reading time step t with ``unbind`` instead of ``x[:, t]``: the
# same operations, values and gradients (test_reference_loops_for_long_lengths checks it bit for bit), and a
# backward linear in T. (Autograd of ``x[:, t]`` builds a full-size gradient of x at every step: T = 4097
# would take minutes.) Used for the gradients of long sequences; states are always compared with the
# reference functions themselves.

def _linear_loop(a, b, h0):
    h, states = h0, []
    for at, bt in zip(a.unbind(1), b.unbind(1)):
        h = at * h + bt
        states.append(h)
    return torch.stack(states, dim=1)


def _bmru_loop(c, beta, s0, eps=0.0, gamma=1.0):
    z = heaviside(c.abs() - beta.abs(), gamma)
    sg = binary_sign(c, gamma)
    s, states = s0, []
    for zt, sgt in zip(z.unbind(1), sg.unbind(1)):
        s = zt * (sgt + eps * s) + (1 - zt) * s
        states.append(s)
    return torch.stack(states, dim=1)


def test_reference_loops_for_long_lengths():
    a, b, h0, w = _linear_inputs(2, 63, torch.float64, seed=1)
    out, grads = _grads(_linear_loop, (a, b, h0), w)
    ref, ref_grads = _grads(linear_scan_ref, (a, b, h0), w)
    for x, r, what in zip((out, *grads), (ref, *ref_grads), ("h", "grad a", "grad b", "grad h0")):
        assert_bitwise_equal(x, r, what)
    for eps in (0.0, 0.5, 1.0):
        c, beta, s0, w = _bmru_inputs(2, 63, torch.float64, seed=1)
        out, grads = _grads(lambda *x: _bmru_loop(*x, eps, 1.5), (c, beta, s0), w)
        ref, ref_grads = _grads(lambda *x: bmru_scan_ref(*x, eps, 1.5), (c, beta, s0), w)
        for x, r, what in zip((out, *grads), (ref, *ref_grads), ("s", "grad c", "grad beta", "grad s0")):
            assert_bitwise_equal(x, r, f"{what}, eps={eps}")


def _golden(xs):
    return [x.detach().cpu().to(torch.complex128 if x.is_complex() else torch.float64) for x in xs]


def _on(device, xs):
    return [x.to(device) for x in xs]


def _check_grads(grads, ref_grads, names, dtype):
    for name, x, r in zip(names, grads, ref_grads):
        assert x.dtype == dtype, f"grad {name}: dtype {x.dtype} != {dtype}"
        assert_close(x, r, dtype, f"grad {name}")


# -- linear scan ------------------------------------------------------------------------------------------

@with_lengths()
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_linear_scan_kernel(kernel, T, dtype):
    a, b, h0, w = _linear_inputs(2, T, dtype, seed=T)
    out, grads = _grads(lambda *x: linear_scan(*x, backend=kernel.name), _on(kernel.device, (a, b, h0)), w)
    ref, ref_grads = _grads(_linear_loop, _golden((a, b, h0)), w)
    assert out.dtype == dtype and out.shape == (2, T, D)
    if kernel.exact:
        assert_bitwise_equal(out, linear_scan_ref(a, b, h0), "states h vs the reference in the same dtype")
    assert_close(out, ref, dtype, "states h")
    assert_close(out[:, -1], ref[:, -1], dtype, "final state")
    _check_grads(grads, ref_grads, ("a", "b", "h0"), dtype)


@with_lengths()
@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128], ids=str)
def test_complex_linear_scan_kernel(kernel, T, dtype):
    """|a| < 1 (the LRU's case); gradients in PyTorch's conjugate-Wirtinger convention (grad_a = g conj(h))."""
    a, b, h0, w = _linear_inputs(2, T, dtype, seed=T + 1)
    out, grads = _grads(lambda *x: linear_scan(*x, backend=kernel.name), _on(kernel.device, (a, b, h0)), w)
    ref, ref_grads = _grads(_linear_loop, _golden((a, b, h0)), w)
    assert out.dtype == dtype
    assert_close(out, ref, dtype, "complex states")
    assert_close(out[:, -1], ref[:, -1], dtype, "final state")
    _check_grads(grads, ref_grads, ("a", "b", "h0"), dtype)


@with_backends
@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128], ids=str)
def test_reverse_linear_scan_kernel(kernel, dtype):
    """The adjoint recursion g_t = grad_t + a_{t+1} g_{t+1} on its own (``a`` as given, even if complex)."""
    a, grad, _, _ = _linear_inputs(3, 63, dtype, seed=5)
    g = kernel.backend.reverse_linear_scan(*_on(kernel.device, (a, grad))).cpu()
    expected = torch.empty_like(grad)
    expected[:, -1] = grad[:, -1]
    for t in range(61, -1, -1):
        expected[:, t] = grad[:, t] + a[:, t + 1] * expected[:, t + 1]
    assert_close(g, expected, dtype, "reverse scan")


# -- BMRU / CMRU ------------------------------------------------------------------------------------------

@with_lengths()
@pytest.mark.parametrize("eps", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_bmru_scan_kernel(kernel, T, dtype, eps):
    c, beta, s0, w = _bmru_inputs(2, T, dtype, seed=T * 3 + int(4 * eps))
    gamma = 1.5
    scan = lambda c, beta, s0: bmru_scan(c, beta, s0, eps, gamma, backend=kernel.name)  # noqa: E731
    out, grads = _grads(scan, _on(kernel.device, (c, beta, s0)), w)
    ref, ref_grads = _grads(lambda c, beta, s0: _bmru_loop(c, beta, s0, eps, gamma), _golden((c, beta, s0)), w)
    assert out.dtype == dtype and out.shape == (2, T, D)
    # the states are bit-identical to the reference loop in the same dtype (eps * s is exact here)
    assert_bitwise_equal(out, bmru_scan_ref(c, beta, s0, eps, gamma), "BMRU/CMRU states")
    assert_close(out, ref, dtype, "states vs float64")
    assert_close(out[:, -1], ref[:, -1], dtype, "final state")
    _check_grads(grads, ref_grads, ("c", "beta", "s0"), dtype)


@with_backends
def test_bmru_scan_kernel_any_eps(kernel):
    """An eps whose products round (eps = 0.3): states to the tolerance, gradients as always."""
    c, beta, s0, w = _bmru_inputs(2, 200, torch.float32, seed=11)
    scan = lambda c, beta, s0: bmru_scan(c, beta, s0, 0.3, 0.7, backend=kernel.name)  # noqa: E731
    out, grads = _grads(scan, _on(kernel.device, (c, beta, s0)), w)
    ref, ref_grads = _grads(lambda c, beta, s0: _bmru_loop(c, beta, s0, 0.3, 0.7), _golden((c, beta, s0)), w)
    if kernel.exact:
        assert_bitwise_equal(out, bmru_scan_ref(c, beta, s0, 0.3, 0.7), "states")
    assert_close(out, ref, torch.float32, "states")
    _check_grads(grads, ref_grads, ("c", "beta", "s0"), torch.float32)


@with_backends
def test_bmru_backward_saves_no_gate(kernel):
    """DESIGN §5: gates are not kept as fp32 for the backward. The kernels keep none at all: the autograd
    node holds exactly c, beta, s0 and the states s (the surrogate needs c and beta anyway)."""
    c, beta, s0, _ = _bmru_inputs(2, 50, torch.float32, seed=2)
    c, beta, s0 = (x.to(kernel.device).requires_grad_(True) for x in (c, beta, s0))
    s = bmru_scan(c, beta, s0, backend=kernel.name)
    saved = s.grad_fn.saved_tensors
    assert sorted(t.data_ptr() for t in saved) == sorted(t.data_ptr() for t in (c, beta, s0, s))


@with_backends
@pytest.mark.parametrize("where", ["c", "beta"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_fused_finite_check(kernel, where, bad):
    """The NaN/Inf check fused into the forward kernel raises the message of the separate check."""
    c, beta, s0, _ = _bmru_inputs(2, 40, torch.float32, seed=3)
    (c if where == "c" else beta)[1, 37, 60] = bad
    c, beta, s0 = _on(kernel.device, (c, beta, s0))
    with np.errstate(invalid="ignore"), pytest.raises(ValueError, match=rf"^{where} {NAN_MESSAGE}"):
        bmru_scan(c, beta, s0, backend=kernel.name)
    with pytest.raises(ValueError, match=rf"^{where} {NAN_MESSAGE}"):
        bmru_scan(c.cpu(), beta.cpu(), s0.cpu(), backend="torch")
    s, bad_name = kernel.backend.bmru_fwd_checked(*_on(kernel.device, _bmru_inputs(2, 40, torch.float32, 3)[:3]), 0.0)
    assert bad_name is None and s is not None
    # check_finite=False: no error, the NaN/Inf compares as the reference loop's does
    if bad == bad:  # +-inf: |c| >= |beta| is well defined, the states match the reference
        out = bmru_scan(c, beta, s0, check_finite=False, backend=kernel.name)
        assert_bitwise_equal(out.cpu(), bmru_scan_ref(c.cpu(), beta.cpu(), s0.cpu()), "states with an Inf input")


@with_backends
def test_infinite_s0_is_not_an_input_error(kernel):
    """Only c and beta are checked (the fused check reads no s0): an infinite initial state raises nothing.
    (Its units are not compared: the reference loop's 0 * inf makes them NaN, the kernels hold the inf.)"""
    c, beta, s0, _ = _bmru_inputs(1, 30, torch.float64, seed=4)
    s0[0, :10] = float("inf")
    out = bmru_scan(*_on(kernel.device, (c, beta, s0)), eps=1.0, backend=kernel.name).cpu()
    assert_bitwise_equal(out[..., 10:], bmru_scan_ref(c, beta, s0, 1.0)[..., 10:], "units with a finite s0")


# -- layouts, blocks, non-contiguous inputs ----------------------------------------------------------------

@with_lengths(short=True)
def test_non_contiguous_inputs(kernel, T):
    """Transposed, strided and broadcast (stride 0) views give the reference's states and gradients, and a
    broadcast incoming gradient (loss = out.sum()) is handled."""
    g = _gen(T)
    a_t = torch.rand(2, D, T, generator=g, dtype=torch.float64).to(kernel.device)   # transposed below
    b_wide = torch.randn(2, T, 2 * D, generator=g, dtype=torch.float64).to(kernel.device)  # every 2nd unit
    h0_row = torch.randn(1, D, generator=g, dtype=torch.float64).to(kernel.device)  # broadcast over batch

    def run(scan, a_t, b_wide, h0_row):
        return scan(a_t.transpose(1, 2), b_wide[:, :, ::2], h0_row.expand(2, D)).sum()

    def grads(scan):
        leaves = [x.detach().clone().requires_grad_(True) for x in (a_t, b_wide, h0_row)]
        out = run(scan, *leaves)
        return out.detach().cpu(), [x.cpu() for x in torch.autograd.grad(out, leaves)]

    out, gr = grads(lambda a, b, h: linear_scan(a, b, h, backend=kernel.name))
    ref, rgr = grads(linear_scan_ref)
    assert_close(out, ref, what="sum of states")
    for name, x, r in zip(("a", "b", "h0"), gr, rgr):
        assert_close(x, r, what=f"grad {name}")

    c_t = torch.randn(2, D, T, generator=g, dtype=torch.float32).to(kernel.device)
    beta_wide = torch.randn(2, T, 2 * D, generator=g, dtype=torch.float32).to(kernel.device)
    s0_row = torch.randn(1, D, generator=g, dtype=torch.float32).to(kernel.device)

    def bmru_grads(scan):
        leaves = [x.detach().clone().requires_grad_(True) for x in (c_t, beta_wide, s0_row)]
        s = scan(leaves[0].transpose(1, 2), leaves[1][:, :, 1::2], leaves[2].expand(2, D))
        return s.detach().cpu(), [x.cpu() for x in torch.autograd.grad(s.sum(), leaves)]

    s, sg = bmru_grads(lambda c, b, s0: bmru_scan(c, b, s0, backend=kernel.name))
    ref, rsg = bmru_grads(bmru_scan_ref)
    assert_bitwise_equal(s, ref, "BMRU states from views")
    for name, x, r in zip(("c", "beta", "s0"), sg, rsg):
        assert_close(x, r, torch.float32, f"grad {name}")


@with_backends
def test_rows_split_into_blocks(kernel, monkeypatch):
    """Rows split between tasks / programs (as for batch 1 on many threads), with a ragged last block."""
    if kernel.name == "numba":
        import numba

        monkeypatch.setattr("mru.scan.numba_cpu._plan", lambda B, T, D: (numba.get_num_threads(), 16))
    else:
        monkeypatch.setattr("mru.scan.triton_gpu._block", lambda D: 16)
    a, b, h0, w = _linear_inputs(1, 40, torch.float64, seed=6)
    out, grads = _grads(lambda *x: linear_scan(*x, backend=kernel.name), _on(kernel.device, (a, b, h0)), w)
    ref, ref_grads = _grads(linear_scan_ref, (a, b, h0), w)
    assert_close(out, ref, torch.float64, "states")
    _check_grads(grads, ref_grads, ("a", "b", "h0"), torch.float64)
    c, beta, s0, w = _bmru_inputs(1, 40, torch.float64, seed=6)
    out, grads = _grads(lambda *x: bmru_scan(*x, 0.5, backend=kernel.name), _on(kernel.device, (c, beta, s0)), w)
    ref, ref_grads = _grads(lambda *x: bmru_scan_ref(*x, 0.5), (c, beta, s0), w)
    assert_bitwise_equal(out, ref.detach(), "states")
    _check_grads(grads, ref_grads, ("c", "beta", "s0"), torch.float64)
    beta[0, 39, 66] = float("nan")  # in the ragged last block
    with pytest.raises(ValueError, match=rf"^beta {NAN_MESSAGE}"):
        bmru_scan(*_on(kernel.device, (c, beta, s0)), backend=kernel.name)


# -- dispatch and fallback ---------------------------------------------------------------------------------

def test_auto_picks_numba_for_long_cpu_sequences(monkeypatch):
    pytest.importorskip("numba", reason="numba is not installed (the fallback is tested below)")
    monkeypatch.delenv("MRU_SCAN_BACKEND", raising=False)
    short = dispatch._load("numba").short_sequence
    assert 1 <= short <= SHORT_SEQUENCE
    x = torch.zeros(2, short + 1, 3)
    assert dispatch.resolve_backend("auto", x).name == "numba"
    assert dispatch.resolve_backend("auto", x[:, :short]).name == "torch"  # short sequences, step mode
    assert dispatch.resolve_backend("auto", x[:, :1]).name == "torch"


def test_small_numba_scans_stay_on_the_calling_thread():
    """Below ``_GRAIN`` elements per thread a scan runs single-threaded (waking threads costs more); numba's
    per-thread setting is restored afterwards; long scans use every thread, whole rows per task."""
    numba = pytest.importorskip("numba", reason="numba is not installed")
    from mru.scan.numba_cpu import _GRAIN, _plan

    threads = numba.get_num_threads()
    assert _plan(1, 3, 64) == (1, 64)
    assert _plan(8, 4096, 128) == (min(threads, 8 * 4096 * 128 // _GRAIN), 128)
    c, beta, s0, _ = _bmru_inputs(1, 5, torch.float32, seed=9)
    s = bmru_scan(c, beta, s0, backend="numba")
    assert numba.get_num_threads() == threads
    assert_bitwise_equal(s, bmru_scan_ref(c, beta, s0), "states")


def test_fallback_when_numba_is_missing(monkeypatch):
    """Without numba the CPU kernels are reported unavailable with the reason and "auto" runs torch ops."""
    monkeypatch.delitem(dispatch._LOADED, "numba", raising=False)
    monkeypatch.setitem(dispatch._UNAVAILABLE, "numba", "No module named 'numba'")
    monkeypatch.delenv("MRU_SCAN_BACKEND", raising=False)
    assert available_backends()["numba"] == "No module named 'numba'"
    c, beta, s0, _ = _bmru_inputs(2, 100, torch.float32, seed=8)
    assert isinstance(dispatch.resolve_backend("auto", c), TorchOpsBackend)
    with pytest.raises(RuntimeError, match=r"scan backend 'numba' is not available: No module named 'numba'"):
        bmru_scan(c, beta, s0, backend="numba")
    assert_bitwise_equal(bmru_scan(c, beta, s0), bmru_scan_ref(c, beta, s0), "fallback BMRU states")
    a, b, h0, _ = _linear_inputs(2, 100, torch.float64, seed=8)
    assert_close(linear_scan(a, b, h0), linear_scan_ref(a, b, h0), what="fallback linear scan")


def test_triton_unavailable_without_gpu_or_interpreter(monkeypatch):
    pytest.importorskip("triton", reason="triton is not installed")
    from mru.scan.triton_gpu import TritonBackend

    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    backend = TritonBackend()
    assert "TRITON_INTERPRET=1" in backend.availability()
    assert not backend.supports(torch.zeros(1))


def test_numba_kernels_compile_without_a_cache_location():
    """Where numba finds no writable cache location it still compiles (per process) instead of failing."""
    pytest.importorskip("numba", reason="numba is not installed")
    import numba

    from mru.scan.numba_cpu import _jit

    source = "def bump(x):\n    for i in numba.prange(x.shape[0]):\n        x[i] += 1.0\n"
    namespace = {"numba": numba}
    exec(compile(source, "<no file to cache next to>", "exec"), namespace)  # noqa: S102
    with pytest.raises(RuntimeError, match="cannot cache"):
        numba.njit(cache=True)(namespace["bump"])
    bump = _jit(namespace["bump"])
    x = np.zeros(5)
    bump(x)
    assert x.tolist() == [1.0] * 5
