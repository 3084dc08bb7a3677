"""Persistent memory as an executable fact (DESIGN §1-4).

A BMRU with hand-set weights latches a written bit and holds it *exactly* through 100,000 distractor steps;
a CMRU holds its integer count the same way. An LRU with |Lambda| < 1 cannot: by linearity its response to
the bit after T steps is Re(C (Lambda^T ⊙ gamma ⊙ B Δu)), bounded by rho^T * max_h sum_n |C_hn| |Δx_n| with
rho = max |Lambda| <= r_max; for r_max = 0.999 and T = 100,000 that is below 0.999^100000 ≈ 3.5e-44 times
a constant of order 1. Both are checked analytically and by running the units.

The latch, a one-unit BMRU on inputs (write, noise): write in {-1, 0, +1} (nonzero only at write steps),
noise ~ U[-1, 1] at every step, with
    c    = 3 write + noise             |c| <= 1 on distractor steps, |c| >= 2 on write steps
    beta = 0.4 noise + 1.5             |beta| in [1.1, 1.9]
so a distractor never writes (|c| < |beta|) and a write always does, with sign(c) = sign(write).
"""

from __future__ import annotations

import math

import pytest
import torch
from scan_backends import scan_backends
from tolerances import assert_bitwise_equal

from mru.scan import bmru_scan
from mru.units import BMRU, CMRU, LRU

DISTRACTORS = 100_000
FAST_BACKENDS = scan_backends(include_reference=False)


def latch_inputs(writes: dict[int, list[float]], batch: int, T: int = DISTRACTORS + 1, seed: int = 0):
    """(batch, T, 2) inputs: channel 0 the write signal (``writes`` maps a step to one value per row),
    channel 1 uniform noise in [-1, 1], with the extreme values +-1 planted at a few steps. The noise is the
    same in every row, so rows differ only in what is written."""
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(batch, T, 2)
    x[:, :, 1] = 2 * torch.rand(1, T, generator=g) - 1
    x[:, 1::9973, 1] = 1.0
    x[:, 2::7919, 1] = -1.0
    for t, values in writes.items():
        x[:, t, 0] = torch.tensor(values)
    return x


def hand_set(unit):
    with torch.no_grad():
        layer = unit.layers[0]
        layer.candidate.weight.copy_(torch.tensor([[3.0, 1.0]]))
        layer.candidate.bias.zero_()
        layer.threshold.weight.copy_(torch.tensor([[0.0, 0.4]]))
        layer.threshold.bias.fill_(1.5)
        layer.alpha.fill_(1.0)
    return unit


@pytest.mark.parametrize("backend", FAST_BACKENDS)
def test_bmru_holds_a_bit_through_100k_distractors(backend):
    bits = [1.0, -1.0, 1.0]
    x = latch_inputs({0: bits}, batch=3)
    # the third row is written again, with the opposite bit, halfway: the latch follows the last write
    x[2, DISTRACTORS // 2, 0] = -1.0
    unit = hand_set(BMRU(2, 1, backend=backend))
    h0 = -torch.tensor(bits).view(1, 3, 1)            # start from the opposite state: the write must flip it
    with torch.no_grad():
        y, h_n = unit(x, h0)
    s = y[..., 0]
    expected = torch.tensor(bits).view(3, 1).expand(3, DISTRACTORS + 1).clone()
    expected[2, DISTRACTORS // 2:] = -1.0
    assert_bitwise_equal(s, expected, "every state after the write")
    assert h_n.flatten().tolist() == [1.0, -1.0, -1.0]


@pytest.mark.parametrize("backend", FAST_BACKENDS)
def test_cmru_holds_a_count_through_100k_distractors(backend):
    """Two writes of +1 (row 0), one of -1 (row 1), +1 then -1 (row 2), then 100,000 distractors: the
    CMRU's integer state s_0 + sum of the writes is held exactly."""
    x = latch_inputs({0: [1.0, -1.0, 1.0], 1: [1.0, 0.0, -1.0]}, batch=3)
    unit = hand_set(CMRU(2, 1, backend=backend))
    h0 = torch.tensor([0.0, 3.0, -2.0]).view(1, 3, 1)
    with torch.no_grad():
        y, h_n = unit(x, h0)
    assert h_n.flatten().tolist() == [2.0, 2.0, -2.0]
    held = y[:, 1:, 0]
    assert_bitwise_equal(held, h_n[0].expand(3, DISTRACTORS), "the count after the last write")


@pytest.mark.parametrize("backend", FAST_BACKENDS)
def test_bmru_scan_holds_many_bits(backend):
    """The scan itself, 16 units with random bits written at random times, then only sub-threshold
    inputs (|c| < |beta|) up to step 100,000: every unit ends on its own bit."""
    g = torch.Generator().manual_seed(1)
    T, D = DISTRACTORS + 1, 16
    beta = 0.1 + torch.rand(1, T, D, generator=g)
    c = (2 * torch.rand(1, T, D, generator=g) - 1) * beta * 0.999           # |c| < |beta|: hold
    when = torch.randint(0, 1000, (D,), generator=g)
    bits = torch.where(torch.rand(D, generator=g) < 0.5, 1.0, -1.0)
    c[0, when, torch.arange(D)] = 3.0 * bits                                 # |c| > |beta|: write
    s = bmru_scan(c, beta, -bits.view(1, D), backend=backend)
    assert_bitwise_equal(s[0, -1], bits, "final states")
    after = torch.arange(T).view(T, 1) >= when.view(1, D)
    assert_bitwise_equal(s[0][after], bits.expand(T, D)[after], "every state after each unit's write")


@pytest.mark.slow
def test_bmru_step_mode_holds_the_bit_too():
    """Streaming: 100,001 calls of ``step`` end on the written bit (slow: one Python call per token)."""
    unit = hand_set(BMRU(2, 1))
    x = latch_inputs({0: [1.0, -1.0]}, batch=2)
    state = -torch.tensor([1.0, -1.0]).view(1, 2, 1)
    with torch.no_grad():
        for t in range(x.shape[1]):
            _, state = unit.step(x[:, t], state)
    assert state.flatten().tolist() == [1.0, -1.0]


@pytest.mark.parametrize("backend", FAST_BACKENDS)
def test_lru_response_to_the_bit_fades_below_the_bound(backend):
    """The same write and distractors into an LRU with r_max = 0.999. The response to the bit is the
    difference of the outputs of two runs that differ only in the bit; by linearity it is
    Re(C (Lambda^t ⊙ Δx_0)) with Δx_0 = gamma ⊙ (B Δu_0), whatever the distractors."""
    torch.manual_seed(0)
    unit = LRU(2, 1, state_size=16, r_min=0.9, r_max=0.999, backend=backend).double()
    layer = unit.layers[0]
    lam = layer.eigenvalues().detach()
    rho = lam.abs().max().item()
    assert rho <= 0.999 + 1e-6                     # the ring, up to the float32 init's rounding

    x = latch_inputs({0: [1.0, -1.0]}, batch=2).double()
    with torch.no_grad():
        y, _ = unit(x)
    response = (y[0, :, 0] - y[1, :, 0])                                    # (T,)

    du = torch.tensor([2.0, 0.0], dtype=torch.float64)                      # the bit, +1 minus -1
    with torch.no_grad():
        dx0 = torch.exp(layer.gamma_log) * torch.complex(layer.B_re @ du, layer.B_im @ du)
        C = torch.complex(layer.C_re, layer.C_im)
        D_du = (layer.D * du if layer.D.dim() == 1 else layer.D @ du)[0]

    # the stated bound at t = 100,000 steps after the write, analytically
    T = DISTRACTORS
    constant = (C.abs() @ dx0.abs()).max().item()
    bound = math.exp(T * math.log(rho)) * constant
    assert 0.999 ** T < 1e-43 and bound < 1e-40

    # the measured response follows the analytic impulse response ...
    for t in (0, 1, 10, 100, 1000, 10_000, T):
        analytic = (C @ (lam**t * dx0)).real[0].item() + (D_du.item() if t == 0 else 0.0)
        assert abs(response[t].item() - analytic) <= 1e-12, f"t={t}: {response[t].item()} vs {analytic}"
    # ... which is clearly visible at first (the LRU did see the bit) ...
    assert abs(response[1].item()) > 1e-3
    # ... and after 100,000 distractor steps is below the bound, up to float64 rounding of the two runs
    assert abs(response[T].item()) <= bound + 1e-12
    # while the BMRU's response to the same bit stays 2 alpha = 2, exactly (test above)


def test_lru_eigenvalues_are_inside_the_unit_disc_for_any_parameters():
    """|Lambda| = exp(-exp(nu)) < 1 for every finite nu: the LRU's memory fades by construction."""
    unit = LRU(2, 3, state_size=64).double()
    with torch.no_grad():
        unit.layers[0].nu_log.copy_(torch.linspace(-30, 5, 64, dtype=torch.float64))
    r = unit.layers[0].eigenvalues().abs()
    assert (r < 1).all() and (r > 0).all()
