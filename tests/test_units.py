"""Every unit of the registry (DESIGN §2-4): parallel ``forward`` vs ``step`` vs the unit's equations.

The reference of each unit is written here from its equations, from the unit's parameters, independently
of the unit's code (the BMRU/CMRU reuse only ``bmru_scan_ref``, the specification loop of the scan):

    BMRU/CMRU  c = W_c x + b_c, beta = W_beta x + b_beta, s = bmru_scan_ref(c, beta, s0, eps), y = alpha s
    LRU        x_k = Lambda x_{k-1} + gamma (B u_k),  y_k = Re(C x_k) + D u_k
    minGRU     h_t = (1 - z_t) h_{t-1} + z_t h~_t
    BRC/nBRC   DESIGN §4
    GRU/LSTM   the gate equations of the torch.nn.GRU / torch.nn.LSTM documentation

Each comparison covers outputs, final state and the gradients of the input, of every parameter and of h0.
Tolerances: see ``tolerances.py``.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from scan_backends import scan_backends
from tolerances import assert_bitwise_equal, assert_close

from mru.registry import UNITS, make_unit
from mru.scan import binary_sign, bmru_scan_ref
from mru.units import BMRU, BRC, CMRU, GRU, LRU, LSTM, NBRC, BMRULayer, MinGRU

UNIT_NAMES = list(UNITS)
BACKENDS = scan_backends()
IN, H = 3, 4
LENGTHS = [1, 7, 63, 1000]
DTYPES = [torch.float32, torch.float64]


# -- the units' equations, written independently -----------------------------------------------------------

def _bmru_layer_ref(layer, x, s0):
    c = F.linear(x, layer.candidate.weight, layer.candidate.bias)
    beta = F.linear(x, layer.threshold.weight, layer.threshold.bias)
    s = bmru_scan_ref(c, beta, s0, layer.eps, layer.gamma)
    return layer.alpha * s, s[:, -1]


def _lru_layer_ref(layer, u, x0):
    lam = torch.exp(torch.complex(-torch.exp(layer.nu_log), torch.exp(layer.theta_log)))
    gamma = torch.exp(layer.gamma_log)
    Bm = torch.complex(layer.B_re, layer.B_im) * gamma[:, None]            # (N, in)
    Cm = torch.complex(layer.C_re, layer.C_im)                             # (H, N)
    x, ys = x0, []
    for t in range(u.shape[1]):
        ut = u[:, t]
        x = lam * x + ut.to(Bm.dtype) @ Bm.T
        skip = layer.D * ut if layer.D.dim() == 1 else ut @ layer.D.T
        ys.append((x @ Cm.T).real + skip)
    return torch.stack(ys, 1), x


def _mingru_layer_ref(layer, x, h):
    ys = []
    for t in range(x.shape[1]):
        z = torch.sigmoid(F.linear(x[:, t], layer.gate.weight, layer.gate.bias))
        h_tilde = F.linear(x[:, t], layer.candidate.weight, layer.candidate.bias)
        h = (1 - z) * h + z * h_tilde
        ys.append(h)
    return torch.stack(ys, 1), h


def _brc_layer_ref(layer, x, h):
    U_a, U_c, U = layer.inputs.weight.chunk(3, 0)
    b_a, b_c, b = layer.inputs.bias.chunk(3, 0)
    ys = []
    for t in range(x.shape[1]):
        xt = x[:, t]
        if layer.neuromodulated:
            W_a, W_c = layer.feedback.weight.chunk(2, 0)
            fa, fc = h @ W_a.T, h @ W_c.T
        else:
            fa, fc = layer.w[0] * h, layer.w[1] * h
        a = 1 + torch.tanh(xt @ U_a.T + b_a + fa)
        c = torch.sigmoid(xt @ U_c.T + b_c + fc)
        h = c * h + (1 - c) * torch.tanh(xt @ U.T + b + a * h)
        ys.append(h)
    return torch.stack(ys, 1), h


def _gru_layer_ref(rnn, k, x, h):
    """r, z, n gates of the torch.nn.GRU documentation, weights stacked (r, z, n)."""
    W_ir, W_iz, W_in = getattr(rnn, f"weight_ih_l{k}").chunk(3, 0)
    W_hr, W_hz, W_hn = getattr(rnn, f"weight_hh_l{k}").chunk(3, 0)
    b_ir, b_iz, b_in = getattr(rnn, f"bias_ih_l{k}").chunk(3, 0)
    b_hr, b_hz, b_hn = getattr(rnn, f"bias_hh_l{k}").chunk(3, 0)
    ys = []
    for t in range(x.shape[1]):
        xt = x[:, t]
        r = torch.sigmoid(xt @ W_ir.T + b_ir + h @ W_hr.T + b_hr)
        z = torch.sigmoid(xt @ W_iz.T + b_iz + h @ W_hz.T + b_hz)
        n = torch.tanh(xt @ W_in.T + b_in + r * (h @ W_hn.T + b_hn))
        h = (1 - z) * n + z * h
        ys.append(h)
    return torch.stack(ys, 1), h


def _lstm_layer_ref(rnn, k, x, state):
    """i, f, g, o gates of the torch.nn.LSTM documentation; the mru state is [h | c]."""
    h, c = state.chunk(2, -1)
    W_i = getattr(rnn, f"weight_ih_l{k}")
    W_h = getattr(rnn, f"weight_hh_l{k}")
    b = getattr(rnn, f"bias_ih_l{k}") + getattr(rnn, f"bias_hh_l{k}")
    ys = []
    for t in range(x.shape[1]):
        gi, gf, gg, go = (x[:, t] @ W_i.T + h @ W_h.T + b).chunk(4, -1)
        c = torch.sigmoid(gf) * c + torch.sigmoid(gi) * torch.tanh(gg)
        h = torch.sigmoid(go) * torch.tanh(c)
        ys.append(h)
    return torch.stack(ys, 1), torch.cat([h, c], -1)


def reference_initial_state(unit, batch):
    """DESIGN §2: the BMRU's learned s_0 is sign(initial); every other unit starts from zeros."""
    if isinstance(unit, BMRU):
        return torch.stack([binary_sign(layer.initial, layer.gamma).expand(batch, -1) for layer in unit.layers])
    return torch.zeros(unit.num_layers, batch, unit.state_size, dtype=unit.state_dtype)


def reference(unit, x, h0=None):
    """Outputs (B, T, H) and final state (L, B, S) of ``unit`` on batch-first ``x``, no dropout."""
    if h0 is None:
        h0 = reference_initial_state(unit, x.shape[0])
    finals = []
    for k in range(unit.num_layers):
        if isinstance(unit, LSTM):
            x, h = _lstm_layer_ref(unit.rnn, k, x, h0[k])
        elif isinstance(unit, GRU):
            x, h = _gru_layer_ref(unit.rnn, k, x, h0[k])
        else:
            layer = unit.layers[k]
            fn = {BMRU: _bmru_layer_ref, CMRU: _bmru_layer_ref, LRU: _lru_layer_ref, MinGRU: _mingru_layer_ref,
                  BRC: _brc_layer_ref, NBRC: _brc_layer_ref}[type(unit)]
            x, h = fn(layer, x, h0[k])
        finals.append(h)
    return x, torch.stack(finals)


# -- helpers -----------------------------------------------------------------------------------------------

def make(name, dtype=torch.float64, seed=0, **kwargs):
    torch.manual_seed(seed)
    return make_unit(name, IN, H, **kwargs).to(dtype)


def set_backend(unit, backend):
    for layer in getattr(unit, "layers", []):
        if hasattr(layer, "backend"):
            layer.backend = backend


def uses_scan(unit) -> bool:
    return any(hasattr(layer, "backend") for layer in getattr(unit, "layers", []))


def random_inputs(unit, B, T, dtype, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = 2 * torch.randn(B, T, IN, generator=g, dtype=torch.float64)   # x 2: the BMRU writes often
    L, S = unit.num_layers, unit.state_size
    h0 = torch.randn(L, B, S, generator=g, dtype=torch.float64)
    if unit.state_dtype.is_complex:
        h0 = torch.complex(h0, torch.randn(L, B, S, generator=g, dtype=torch.float64))
    w_y = torch.randn(B, T, H, generator=g, dtype=torch.float64)
    w_h = torch.randn(L, B, S, 2 if unit.state_dtype.is_complex else 1, generator=g, dtype=torch.float64)
    return x.to(dtype), h0.to(unit.state_dtype), w_y.to(dtype), w_h.to(dtype)


def _real(h):
    return torch.view_as_real(h) if h.is_complex() else h.unsqueeze(-1)


def run_with_grads(unit, x, h0, w_y, w_h, mode):
    """Outputs, final state and the gradients of L = <w_y, y> + <w_h, h_n> w.r.t. x, h0 and every parameter."""
    x = x.detach().clone().requires_grad_(True)
    leaves = [x]
    if h0 is not None:
        h0 = h0.detach().clone().requires_grad_(True)
        leaves.append(h0)
    if mode == "parallel":
        y, h_n = unit(x, h0)
    elif mode == "step":
        state, ys = h0, []
        for t in range(x.shape[1]):
            y_t, state = unit.step(x[:, t], state)
            ys.append(y_t)
        y, h_n = torch.stack(ys, 1), state
    else:
        y, h_n = reference(unit, x, h0)
    loss = (y * w_y).sum() + (_real(h_n) * w_h).sum()
    params = [p for _, p in unit.named_parameters()]
    grads = torch.autograd.grad(loss, leaves + params, allow_unused=True)
    names = ["x"] + (["h0"] if h0 is not None else []) + [n for n, _ in unit.named_parameters()]
    return y.detach(), h_n.detach(), dict(zip(names, grads))


def assert_same_run(run, ref, dtype, what):
    y, h_n, grads = run
    y_r, h_r, grads_r = ref
    assert y.dtype == y_r.dtype and h_n.dtype == h_r.dtype, f"{what}: dtypes"
    assert_close(y, y_r, dtype, f"{what}: outputs")
    assert_close(h_n, h_r, dtype, f"{what}: final state")
    for name, g_r in grads_r.items():
        g = grads[name]
        if g_r is None:
            assert g is None or not g.any(), f"{what}: grad {name} should be unused"
        else:
            assert_close(g, g_r, dtype, f"{what}: grad {name}")


# -- parallel vs step vs reference ----------------------------------------------------------------------

def _length_batch_dtype_grid():
    """T x batch x dtype. At T = 1000 the default run keeps the diagonal (batch 3 in fp32, batch 1 in fp64),
    which still covers every batch size and dtype at that length; the other half is marked slow (the step
    and reference loops with autograd cost about 0.7 s per unit there)."""
    grid = []
    for T in LENGTHS:
        for B in (1, 3):
            for dtype in DTYPES:
                off_diagonal = T == 1000 and (B == 3) != (dtype == torch.float32)
                grid.append(pytest.param(T, B, dtype, id=f"T{T}-B{B}-{str(dtype)[6:]}",
                                         marks=[pytest.mark.slow] if off_diagonal else []))
    return grid


@pytest.mark.parametrize("T, B, dtype", _length_batch_dtype_grid())
@pytest.mark.parametrize("name", UNIT_NAMES)
def test_parallel_step_and_reference_agree(name, T, B, dtype):
    unit = make(name, dtype)
    x, h0, w_y, w_h = random_inputs(unit, B, T, dtype, seed=T + B)
    ref = run_with_grads(unit, x, h0, w_y, w_h, "reference")
    assert_same_run(run_with_grads(unit, x, h0, w_y, w_h, "step"), ref, dtype, f"{name} step")
    for backend in (BACKENDS if uses_scan(unit) else [None]):
        if backend is not None:
            set_backend(unit, backend)
        assert_same_run(run_with_grads(unit, x, h0, w_y, w_h, "parallel"), ref, dtype, f"{name} parallel[{backend}]")


@pytest.mark.parametrize("name", UNIT_NAMES)
def test_own_initial_state_in_every_mode(name):
    """h0=None: the unit's own initial state (the BMRU's learned binary s_0, zeros elsewhere), with the
    gradient of the learned s_0 through the surrogate sign."""
    unit = make(name, torch.float64, num_layers=2)
    x, _, w_y, w_h = random_inputs(unit, 3, 20, torch.float64)
    ref = run_with_grads(unit, x, None, w_y, w_h, "reference")
    assert_same_run(run_with_grads(unit, x, None, w_y, w_h, "step"), ref, torch.float64, f"{name} step")
    assert_same_run(run_with_grads(unit, x, None, w_y, w_h, "parallel"), ref, torch.float64, f"{name} parallel")
    assert_close(unit.initial_state(3), reference_initial_state(unit, 3), what="initial_state(batch)")
    assert unit.initial_state().shape == (2, unit.state_size)
    if isinstance(unit, BMRU):
        assert all(ref[2][f"layers.{k}.initial"] is not None for k in range(2))


@pytest.mark.parametrize("name", UNIT_NAMES)
def test_two_layers_with_dropout_in_eval_mode(name):
    unit = make(name, torch.float64, num_layers=2, dropout=0.3).eval()
    x, h0, w_y, w_h = random_inputs(unit, 2, 30, torch.float64)
    ref = run_with_grads(unit, x, h0, w_y, w_h, "reference")
    assert_same_run(run_with_grads(unit, x, h0, w_y, w_h, "step"), ref, torch.float64, f"{name} step")
    assert_same_run(run_with_grads(unit, x, h0, w_y, w_h, "parallel"), ref, torch.float64, f"{name} parallel")
    # in training mode the dropout between the layers is active
    unit.train()
    y_train, _ = unit(x, h0)
    assert not torch.allclose(y_train, ref[0]), "dropout between layers had no effect in training mode"


@pytest.mark.parametrize("name", UNIT_NAMES)
def test_batch_first_false(name):
    unit = make(name, torch.float64, num_layers=2)
    torch.manual_seed(0)
    time_major = make_unit(name, IN, H, num_layers=2, batch_first=False).double()
    time_major.load_state_dict(unit.state_dict())
    x, h0, _, _ = random_inputs(unit, 3, 25, torch.float64)
    y, h_n = unit(x, h0)
    y_tm, h_tm = time_major(x.transpose(0, 1), h0)
    assert y_tm.shape == (25, 3, H)
    assert_close(y_tm.transpose(0, 1), y, what="outputs")
    assert_close(h_tm, h_n, what="final state")
    y_step, _ = time_major.step(x[:, 0], h0)       # step is (batch, input) whatever the layout
    assert_close(y_step, y[:, 0], what="step")


@pytest.mark.parametrize("name", UNIT_NAMES)
def test_unbatched_input(name):
    unit = make(name, torch.float64, num_layers=2)
    x, h0, _, _ = random_inputs(unit, 1, 25, torch.float64)
    y, h_n = unit(x, h0)
    y_u, h_u = unit(x[0], h0[:, 0])
    assert y_u.shape == (25, H) and h_u.shape == (2, unit.state_size)
    assert_close(y_u, y[0], what="unbatched outputs")
    assert_close(h_u, h_n[:, 0], what="unbatched final state")
    y_u0, h_u0 = unit(x[0])                       # own initial state, unbatched
    assert_close(y_u0, unit(x)[0][0], what="unbatched, h0=None")
    assert h_u0.shape == (2, unit.state_size)
    y_s, s_s = unit.step(x[0, 0], h0[:, 0])
    assert y_s.shape == (H,) and s_s.shape == (2, unit.state_size)
    assert_close(y_s, y[0, 0], what="unbatched step")
    y_s0, _ = unit.step(x[0, 0])
    assert_close(y_s0, y_u0[0], what="unbatched step, state=None")


@pytest.mark.parametrize("name", UNIT_NAMES)
def test_state_of_another_dtype_is_cast_in_every_mode(name):
    """An h0 in another precision is cast to the unit's state dtype by forward and by step alike."""
    unit = make(name, torch.float32)
    x, h0, _, _ = random_inputs(unit, 2, 5, torch.float32)
    wide = h0.to(torch.complex128 if h0.is_complex() else torch.float64)
    y, h_n = unit(x, wide)
    y_s, s = unit.step(x[:, 0], wide)
    assert y.dtype == y_s.dtype == torch.float32
    assert h_n.dtype == s.dtype == unit.state_dtype
    assert_close(y, unit(x, h0)[0], what="forward with a wide h0")


# -- BMRU / CMRU ------------------------------------------------------------------------------------------

def _bmru_states_by_step(unit, x, state=None):
    ys = []
    for t in range(x.shape[1]):
        y_t, state = unit.step(x[:, t], state)
        ys.append(y_t)
    return torch.stack(ys, 1), state


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", ["bmru", "cmru"])
def test_memory_unit_states_are_bit_identical_across_modes(name, dtype, backend):
    """Binary (BMRU) and integer (CMRU) states, two layers, T = 1000: forward, step and the reference
    produce the same bits, and so do the outputs alpha * s."""
    unit = make(name, dtype, seed=3, num_layers=2, backend=backend)
    with torch.no_grad():
        for layer in unit.layers:
            layer.alpha.copy_(torch.rand(H) + 0.5)
            layer.initial.copy_(torch.randn(H))
    x = 2 * torch.randn(3, 1000, IN, dtype=dtype)
    with torch.no_grad():
        y, h_n = unit(x)
        y_step, h_step = _bmru_states_by_step(unit, x)
        y_ref, h_ref = reference(unit, x)
    assert_bitwise_equal(y, y_step, "outputs, forward vs step")
    assert_bitwise_equal(h_n, h_step, "final state, forward vs step")
    assert_bitwise_equal(y, y_ref, "outputs, forward vs reference")
    assert_bitwise_equal(h_n, h_ref, "final state, forward vs reference")
    s = y / unit.layers[-1].alpha
    if name == "bmru":
        assert set(s.unique().tolist()) == {-1.0, 1.0}, "BMRU states are binary"
    else:
        assert_bitwise_equal(h_n, h_n.round(), "CMRU states are integers")
        assert h_n.abs().max() > 1, "the CMRU should have counted beyond +-1 here"


def test_bmru_writes_and_holds_in_these_tests():
    """Guard: the inputs used above make the BMRU both write and hold (else its tests would prove little)."""
    unit = make("bmru", torch.float64)
    unit.track_write_rate = True
    x, _, _, _ = random_inputs(unit, 3, 1000, torch.float64)
    unit(x)
    assert 0.2 < unit.write_rate.item() < 0.8


@pytest.mark.parametrize("backend", BACKENDS)
def test_cmru_states_are_integers(backend):
    unit = make("cmru", torch.float32, backend=backend)
    x = 2 * torch.randn(2, 500, IN)
    h0 = torch.randint(-3, 4, (1, 2, H)).float()
    with torch.no_grad():
        layer = unit.layers[0]
        s = bmru_scan_ref(layer.candidate(x), layer.threshold(x), h0[0], eps=1.0)
        y, h_n = unit(x, h0)
    assert_bitwise_equal(y, y.round(), "CMRU outputs (alpha = 1) are integers")
    assert_bitwise_equal(y, s, "CMRU states")
    assert_bitwise_equal(h_n[0], s[:, -1], "CMRU final state")


def test_cmru_is_bmru_with_eps_one():
    cmru = make("cmru")
    bmru = make("bmru", eps=1.0)
    bmru.load_state_dict(cmru.state_dict())
    x = 2 * torch.randn(2, 40, IN, dtype=torch.float64)
    assert cmru.eps == 1.0 and make("bmru").eps == 0.0
    assert_bitwise_equal(cmru(x)[0], bmru(x)[0], "CMRU == BMRU(eps=1)")


@pytest.mark.parametrize("name", ["bmru", "cmru"])
def test_eps_and_gamma_setters(name):
    unit = make(name, num_layers=2)
    unit.eps, unit.gamma = 0.5, 3.0
    assert [(layer.eps, layer.gamma) for layer in unit.layers] == [(0.5, 3.0), (0.5, 3.0)]
    assert unit.eps == 0.5 and unit.gamma == 3.0
    # forward, step and gradients follow the new values (the reference reads them from the layers too)
    x, h0, w_y, w_h = random_inputs(unit, 2, 40, torch.float64)
    ref = run_with_grads(unit, x, h0, w_y, w_h, "reference")
    assert_same_run(run_with_grads(unit, x, h0, w_y, w_h, "parallel"), ref, torch.float64, "parallel")
    assert_same_run(run_with_grads(unit, x, h0, w_y, w_h, "step"), ref, torch.float64, "step")
    # and the reference with gamma = 3 differs from gamma = 1 (the setter reached the backward)
    layer = unit.layers[0]
    xg = x.clone().requires_grad_(True)
    c, beta = layer.candidate(xg), layer.threshold(xg)
    g1 = torch.autograd.grad(bmru_scan_ref(c, beta, h0[0], 0.5, 1.0).sum(), xg, retain_graph=True)[0]
    g3 = torch.autograd.grad(bmru_scan_ref(c, beta, h0[0], 0.5, 3.0).sum(), xg)[0]
    assert not torch.allclose(g1, g3)
    with pytest.raises(ValueError, match=r"eps must lie in \[0, 1\]"):
        unit.eps = 1.5
    with pytest.raises(ValueError, match="gamma .* must be a finite number > 0"):
        unit.gamma = 0.0
    assert unit.eps == 0.5 and unit.gamma == 3.0, "a rejected value must leave the unit unchanged"


@pytest.mark.parametrize("name", ["bmru", "cmru"])
def test_write_rate_tracking(name):
    unit = make(name, num_layers=2)
    x = 2 * torch.randn(3, 50, IN, dtype=torch.float64)
    unit(x)
    assert unit.write_rate is None, "not tracked by default"
    unit.track_write_rate = True
    assert all(layer.track_write_rate for layer in unit.layers)
    y, _ = unit(x)
    # mean(z) per layer, averaged over the layers, computed from the layers' inputs
    rates, h = [], x
    for layer in unit.layers:
        c, beta = layer.candidate(h), layer.threshold(h)
        rates.append((c.abs() >= beta.abs()).double().mean())
        h = layer(h, binary_sign(layer.initial).expand(3, -1))[0]
    assert unit.write_rate.item() == pytest.approx(torch.stack(rates).mean().item(), rel=1e-12)
    # differentiable through the surrogate H' (a sparsity penalty can be trained)
    unit.write_rate.backward()
    assert unit.layers[0].threshold.bias.grad is not None and unit.layers[0].threshold.bias.grad.abs().sum() > 0
    # step records the rate of the current token
    unit.step(x[:, 0])
    c, beta = unit.layers[0].candidate(x[:, 0]), unit.layers[0].threshold(x[:, 0])
    assert unit.layers[0].write_rate.item() == pytest.approx((c.abs() >= beta.abs()).double().mean().item())
    unit.track_write_rate = False
    assert not any(layer.track_write_rate for layer in unit.layers)


def test_bmru_init():
    """DESIGN §2: b_beta initialised to 1, alpha to 1; the learned s_0 binarised by sign (sign(0) = +1)."""
    unit = make("bmru")
    layer = unit.layers[0]
    assert isinstance(layer, BMRULayer)
    assert torch.equal(layer.threshold.bias, torch.ones(H, dtype=torch.float64))
    assert torch.equal(layer.alpha, torch.ones(H, dtype=torch.float64))
    assert torch.equal(unit.initial_state(2), torch.ones(1, 2, H, dtype=torch.float64))
    no_init = make("bmru", learn_initial_state=False)
    assert no_init.layers[0].initial is None
    assert torch.equal(no_init.initial_state(2), torch.zeros(1, 2, H, dtype=torch.float64))


# -- LRU --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("r_min, r_max, max_phase", [(0.0, 1.0, 2 * math.pi), (0.9, 0.999, math.pi / 10),
                                                     (0.4, 0.8, 1.0), (0.5, 0.5, 2 * math.pi)])
def test_lru_eigenvalues_lie_in_the_ring(r_min, r_max, max_phase):
    N = 4000
    torch.manual_seed(0)
    unit = LRU(IN, H, state_size=N, r_min=r_min, r_max=r_max, max_phase=max_phase).double()
    layer = unit.layers[0]
    lam = layer.eigenvalues().detach()
    r, phase = lam.abs(), torch.exp(layer.theta_log.detach())
    # the ring, up to the 1e-7 clamp that keeps |Lambda| strictly inside (0, 1)
    assert r.min() >= r_min - 1e-6 and r.max() <= r_max + 1e-6
    assert r.max() < 1.0, "stable: |Lambda| < 1"
    assert phase.min() >= 0 and phase.max() <= max_phase * (1 + 1e-6)
    # gamma = sqrt(1 - |Lambda|^2) at init
    # (the init runs in float32 before .double(), hence the float32 tolerance)
    assert_close(torch.exp(layer.gamma_log.detach()), torch.sqrt(1 - r**2), torch.float32, "gamma normalisation")
    if r_max > r_min:
        # uniform by area: r^2 uniform on [r_min^2, r_max^2]; its mean within 5 standard errors
        lo, hi = r_min**2, r_max**2
        se = (hi - lo) / math.sqrt(12 * N)
        assert abs((r**2).mean().item() - (lo + hi) / 2) < 5 * se
        # and the phase uniform on [0, max_phase]
        assert abs(phase.mean().item() - max_phase / 2) < 5 * max_phase / math.sqrt(12 * N)


def test_lru_state_is_complex():
    unit = make("lru", torch.float32)
    assert unit.state_dtype == torch.complex64 and unit.initial_state(2).dtype == torch.complex64
    assert make("lru", torch.float64).state_dtype == torch.complex128
    _, h_n = unit(torch.randn(2, 5, IN))
    assert h_n.dtype == torch.complex64 and h_n.shape == (1, 2, H)
    wide = LRU(IN, H, state_size=7)
    assert wide.state_size == 7 and wide(torch.randn(2, 5, IN))[1].shape == (1, 2, 7)


def test_lru_d_matrix_when_sizes_differ():
    """D is element-wise when input_size == hidden_size, a matrix otherwise; both match the reference."""
    for in_size in (H, IN):
        torch.manual_seed(0)
        unit = LRU(in_size, H).double()
        x = torch.randn(2, 9, in_size, dtype=torch.float64)
        y, h = unit(x)
        y_r, h_r = reference(unit, x)
        assert_close(y, y_r, what=f"outputs, input_size={in_size}")
        assert_close(h, h_r, what=f"state, input_size={in_size}")


def test_lstm_state_is_h_and_c():
    unit = make("lstm")
    assert unit.state_size == 2 * H
    x = torch.randn(2, 6, IN, dtype=torch.float64)
    _, state = unit(x)
    h, c = unit.split_state(state)
    _, (h_t, c_t) = unit.rnn(x)
    assert_close(h, h_t, what="h")
    assert_close(c, c_t, what="c")
