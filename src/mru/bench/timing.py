"""Timing primitives: median wall time after warm-up, and the memory-copy floor."""

from __future__ import annotations

import statistics
import time

import torch


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def median_time(fn, device="cpu", warmup: int = 2, repeat: int = 7, budget_s: float = 20.0) -> float:
    """Median seconds of ``fn()`` over ``repeat`` runs after ``warmup`` runs; fewer repeats if one run is
    slow (the whole measurement stays near ``budget_s``)."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    start = time.perf_counter()
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
        if time.perf_counter() - start > budget_s and len(times) >= 1:
            break
    return statistics.median(times)


def copy_floor(n_bytes: int, device="cpu", repeat: int = 9) -> float:
    """Seconds to move ``n_bytes`` through memory (read + write) with a plain copy: a tensor of
    n_bytes / 2 bytes copied into a preallocated buffer reads n/2 and writes n/2 bytes."""
    n = max(1, n_bytes // 2 // 4)
    src = torch.randn(n, device=device)
    dst = torch.empty_like(src)
    return median_time(lambda: dst.copy_(src), device, warmup=3, repeat=repeat)


def fresh_copy_time(x: torch.Tensor, repeat: int = 7) -> float:
    """``torch.empty_like(x).copy_(x)``: the floor as DESIGN §8 writes it, allocation (page faults) included."""
    return median_time(lambda: torch.empty_like(x).copy_(x), x.device, warmup=2, repeat=repeat)
