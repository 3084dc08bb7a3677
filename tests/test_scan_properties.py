"""Properties of the scan (DESIGN §2, §5), checked by hypothesis on random tensors.

1. The scan operator (a_i, b_i) • (a_j, b_j) = (a_i a_j, a_j b_i + b_j) is associative — exactly for the
   BMRU's binary elements, up to rounding for real ones — and any bracketing of the fold over a sequence,
   applied to h_0, gives the final state the library's scans compute.
2. Scanning a sequence in two halves, carrying the state of the first into the second, equals one pass:
   states and gradients, for ``linear_scan`` and ``bmru_scan``, at random split points.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scan_backends import scan_backends
from tolerances import assert_bitwise_equal, assert_close

from mru.scan import bmru_scan, linear_scan

BACKENDS = scan_backends()
FAST = settings(max_examples=30, deadline=None)

seeds = st.integers(0, 2**31 - 1)


def combine(x, y):
    """(a_i, b_i) • (a_j, b_j) = (a_i a_j, a_j b_i + b_j): first x, then y."""
    (ai, bi), (aj, bj) = x, y
    return ai * aj, aj * bi + bj


def _elements(n, shape, seed, binary):
    g = torch.Generator().manual_seed(seed)
    if binary:  # BMRU elements: a = 1 - z, b = z sign(c), z in {0, 1}
        z = (torch.rand(n, *shape, generator=g) < 0.5).double()
        sgn = torch.where(torch.rand(n, *shape, generator=g) < 0.5, 1.0, -1.0).double()
        return [(1 - z[i], z[i] * sgn[i]) for i in range(n)]
    a = 2 * torch.rand(n, *shape, generator=g, dtype=torch.float64) - 1
    b = torch.randn(n, *shape, generator=g, dtype=torch.float64)
    return [(a[i], b[i]) for i in range(n)]


def _fold(elements, split_points):
    """Reduce the elements with a bracketing given by ``split_points`` (a random binary tree)."""
    if len(elements) == 1:
        return elements[0]
    k = 1 + split_points[0] % (len(elements) - 1)
    rest = split_points[1:] or [0]
    return combine(_fold(elements[:k], rest), _fold(elements[k:], rest[::-1]))


@FAST
@given(seed=seeds, binary=st.booleans())
def test_operator_is_associative(seed, binary):
    x, y, z = _elements(3, (4, 6), seed, binary)
    left = combine(combine(x, y), z)
    right = combine(x, combine(y, z))
    for l_, r_ in zip(left, right):
        if binary:
            assert_bitwise_equal(l_, r_, "binary elements: exact")
        else:
            assert_close(l_, r_, what="real elements: up to rounding")


@FAST
@given(seed=seeds, n=st.integers(1, 40), splits=st.lists(st.integers(0, 1000), min_size=1, max_size=8),
       binary=st.booleans(), backend=st.sampled_from(BACKENDS))
def test_any_bracketing_gives_the_scans_final_state(seed, n, splits, binary, backend):
    """h_T = A h_0 + B for (A, B) the fold of all elements, however bracketed; the scans agree."""
    elements = _elements(n, (2, 3), seed, binary)
    A, Bv = _fold(elements, splits)
    A_seq, B_seq = elements[0]
    for e in elements[1:]:
        A_seq, B_seq = combine((A_seq, B_seq), e)
    h0 = torch.randn(2, 3, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    a = torch.stack([e[0] for e in elements], dim=1)
    b = torch.stack([e[1] for e in elements], dim=1)
    h_T = linear_scan(a, b, h0, backend=backend)[:, -1]
    if binary:
        assert_bitwise_equal(A * h0 + Bv, A_seq * h0 + B_seq, "bracketings agree exactly")
        assert_bitwise_equal(h_T, A * h0 + Bv, "linear_scan final state")
    else:
        assert_close(A * h0 + Bv, A_seq * h0 + B_seq, what="bracketings agree")
        assert_close(h_T, A * h0 + Bv, what="linear_scan final state")


@FAST
@given(seed=seeds, T=st.integers(2, 120), data=st.data(), dtype=st.sampled_from([torch.float32, torch.float64]),
       backend=st.sampled_from(BACKENDS))
def test_linear_scan_in_two_halves(seed, T, data, dtype, backend):
    k = data.draw(st.integers(1, T - 1), label="split")
    g = torch.Generator().manual_seed(seed)
    a = (2 * torch.rand(2, T, 3, generator=g) - 1).to(dtype).requires_grad_(True)
    b = torch.randn(2, T, 3, generator=g).to(dtype).requires_grad_(True)
    h0 = torch.randn(2, 3, generator=g).to(dtype).requires_grad_(True)
    w = torch.randn(2, T, 3, generator=g).to(dtype)

    whole = linear_scan(a, b, h0, backend=backend)
    first = linear_scan(a[:, :k], b[:, :k], h0, backend=backend)
    second = linear_scan(a[:, k:], b[:, k:], first[:, -1], backend=backend)
    halves = torch.cat([first, second], dim=1)
    assert_close(halves, whole, what=f"states, split at {k}/{T}")
    g_whole = torch.autograd.grad((whole * w).sum(), (a, b, h0))
    g_halves = torch.autograd.grad((halves * w).sum(), (a, b, h0))
    for name, x, y in zip(("a", "b", "h0"), g_halves, g_whole):
        assert_close(x, y, what=f"grad {name}, split at {k}/{T}")


@FAST
@given(seed=seeds, T=st.integers(2, 120), data=st.data(), eps=st.sampled_from([0.0, 0.5, 1.0]),
       dtype=st.sampled_from([torch.float32, torch.float64]), backend=st.sampled_from(BACKENDS))
def test_bmru_scan_in_two_halves(seed, T, data, eps, dtype, backend):
    k = data.draw(st.integers(1, T - 1), label="split")
    g = torch.Generator().manual_seed(seed)
    c = torch.randn(2, T, 3, generator=g).to(dtype).requires_grad_(True)
    beta = torch.randn(2, T, 3, generator=g).to(dtype).requires_grad_(True)
    s0 = torch.where(torch.rand(2, 3, generator=g) < 0.5, 1.0, -1.0).to(dtype).requires_grad_(True)
    w = torch.randn(2, T, 3, generator=g).to(dtype)

    whole = bmru_scan(c, beta, s0, eps, backend=backend)
    first = bmru_scan(c[:, :k], beta[:, :k], s0, eps, backend=backend)
    second = bmru_scan(c[:, k:], beta[:, k:], first[:, -1], eps, backend=backend)
    halves = torch.cat([first, second], dim=1)
    if eps in (0.0, 1.0):
        # binary (BMRU) and integer (CMRU) states are exact, so the halves agree bit for bit
        assert_bitwise_equal(halves, whole, f"states, split at {k}/{T}")
    else:
        assert_close(halves, whole, what=f"states, split at {k}/{T}")
    g_whole = torch.autograd.grad((whole * w).sum(), (c, beta, s0))
    g_halves = torch.autograd.grad((halves * w).sum(), (c, beta, s0))
    for name, x, y in zip(("c", "beta", "s0"), g_halves, g_whole):
        assert_close(x, y, what=f"grad {name}, split at {k}/{T}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_split_at_every_point_of_a_short_sequence(backend):
    """Deterministic companion of the hypothesis tests: every split of a length-20 sequence."""
    g = torch.Generator().manual_seed(0)
    c, beta = torch.randn(2, 20, 3, generator=g), torch.randn(2, 20, 3, generator=g)
    s0 = torch.ones(2, 3)
    whole = bmru_scan(c, beta, s0, backend=backend)
    for k in range(1, 20):
        first = bmru_scan(c[:, :k], beta[:, :k], s0, backend=backend)
        second = bmru_scan(c[:, k:], beta[:, k:], first[:, -1], backend=backend)
        assert_bitwise_equal(torch.cat([first, second], 1), whole, f"split at {k}")
