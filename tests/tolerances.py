"""Per-dtype tolerances of the mru test suite, and the comparisons that use them.

A result is compared against a reference computed in float64 (the "golden" value), so a float32 error is
the backend's true error, not a difference between two float32 roundings. The error is norm-wise:

    max |actual - expected|  <=  tol(dtype) * max(1, max |expected|)

i.e. relative to the largest reference value, absolute for values below 1.

    dtype                 tol      why
    float64, complex128   1e-10    exact in exact arithmetic; T = 1000 sums lose a few ulps (2e-16 each)
    float32, complex64    1e-4     T = 1000 chunked / reordered sums: about sqrt(T) * 1e-7 per value, with
                                   margin for the chunk carries and for gradients that sum over time
    float16               2**-9    one rounding of an fp32 result to fp16 (half-ulp 2**-11) with margin
    bfloat16              2**-6    one rounding of an fp32 result to bf16 (half-ulp 2**-8) with margin

BMRU states are compared bit for bit (:func:`assert_bitwise_equal`), never with a tolerance.
"""

from __future__ import annotations

import torch

TOLERANCE: dict[torch.dtype, float] = {
    torch.float64: 1e-10,
    torch.complex128: 1e-10,
    torch.float32: 1e-4,
    torch.complex64: 1e-4,
    torch.float16: 2.0**-9,
    torch.bfloat16: 2.0**-6,
}


def assert_close(actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype | None = None,
                 what: str = "") -> None:
    """``actual`` matches ``expected`` within the tolerance of ``dtype`` (default: ``actual.dtype``)."""
    assert actual is not None, f"{what}: got None (no gradient reached this tensor)"
    assert expected is not None, f"{what}: the reference is None"
    assert tuple(actual.shape) == tuple(expected.shape), f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    dtype = dtype or actual.dtype
    tol = TOLERANCE[dtype]
    wide = torch.complex128 if (actual.is_complex() or expected.is_complex()) else torch.float64
    a, e = actual.detach().to(wide), expected.detach().to(wide)
    assert torch.isfinite(a).all(), f"{what}: non-finite values in the result"
    err = (a - e).abs().max().item() if a.numel() else 0.0
    scale = max(1.0, e.abs().max().item() if e.numel() else 0.0)
    assert err <= tol * scale, f"{what}: max abs error {err:.3e} > {tol:.1e} * {scale:.3e} ({dtype})"


def assert_bitwise_equal(actual: torch.Tensor, expected: torch.Tensor, what: str = "") -> None:
    """Same dtype, same shape, same bits."""
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    assert tuple(actual.shape) == tuple(expected.shape), f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    if not torch.equal(actual, expected):
        bad = (actual != expected).nonzero()
        first = tuple(bad[0].tolist())
        raise AssertionError(f"{what}: {len(bad)} values differ, first at {first}: "
                             f"{actual[first].item()} != {expected[first].item()}")
