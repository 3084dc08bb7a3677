"""Scan kernels against their memory floor (DESIGN §8) and against PyTorch scans.

    python benchmarks/scan_kernels.py                    # B=8, T=4096, units=128, float32
    python benchmarks/scan_kernels.py --batch 1 --length 100000 --units 64 --repeats 50

Floors. A scan reads its inputs and writes its outputs once, so its floor is the time to move those bytes,
measured in the same run as ``torch.empty_like(x).copy_(x)``. Two readings of "the same bytes" are given:

  - traffic-matched: x holds half the bytes the scan moves, so the copy reads and writes as many bytes as
    the scan does (BMRU forward: reads c, beta, writes s = 3 N floats moved; x has 1.5 N floats);
  - in+out sized: x holds as many bytes as the scan's inputs and outputs together (3 N floats for the
    BMRU forward), so the copy moves twice the scan's traffic.

Each is measured into a fresh ``empty_like`` buffer (as written in DESIGN §8; it pays the allocator and,
above glibc's mmap threshold, page faults) and into a preallocated one (pure bandwidth). Ratios are
quoted against the preallocated, traffic-matched floor, the strictest of the four.

Timings are the median and the minimum of ``--repeats`` runs after two warm-up runs (the minimum is the
better estimate on a machine shared with other work; there, ``--threads 1 --clock cpu`` measures CPU time,
which excludes waiting for a core). fwd+bwd runs the forward and ``backward(grad)`` through
autograd, with every allocation a training step makes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import torch

from mru.scan import available_backends, bmru_scan, bmru_scan_ref, linear_scan, linear_scan_ref


CLOCK = time.perf_counter


def timeit(fn, repeats):
    fn()
    fn()
    times = []
    for _ in range(repeats):
        t0 = CLOCK()
        fn()
        times.append(CLOCK() - t0)
    return statistics.median(times), min(times)


def copy_floor(numel, dtype, repeats):
    """(fresh, preallocated) copy times of a tensor of ``numel`` elements, each (median, min)."""
    x = torch.randn(numel).to(dtype)
    y = torch.empty_like(x)
    return timeit(lambda: torch.empty_like(x).copy_(x), repeats), timeit(lambda: y.copy_(x), repeats)


def tree_scan(a, b, h0):
    """Hillis-Steele inclusive scan of h_t = a_t h_{t-1} + b_t in log2(T) levels of torch ops (autograd)."""
    b = torch.cat([(a[:, :1] * h0.unsqueeze(1) + b[:, :1]), b[:, 1:]], dim=1)
    k, T = 1, a.shape[1]
    while k < T:
        b = torch.cat([b[:, :k], a[:, k:] * b[:, :-k] + b[:, k:]], dim=1)
        a = torch.cat([a[:, :k], a[:, k:] * a[:, :-k]], dim=1)
        k *= 2
    return b


def fwd_bwd(scan, inputs, w):
    """Forward, then backward of the incoming gradient ``w`` (no loss ops around the scan)."""
    leaves = [x.detach().requires_grad_(True) for x in inputs]
    grad = w.to(inputs[1].dtype)

    def run():
        for x in leaves:
            x.grad = None
        scan(*leaves).backward(grad)

    return run


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--length", type=int, default=4096)
    p.add_argument("--units", type=int, default=128)
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="torch and numba threads")
    p.add_argument("--reference", action="store_true",
                   help="also time the reference loops' forward (slow; their autograd backward is quadratic in T)")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="wall: elapsed time; cpu: this process's CPU time, which does not count the time its "
                        "threads wait for a core (use with --threads 1 on a machine shared with other work)")
    p.add_argument("--json", help="write the results to this file")
    args = p.parse_args(argv)
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter

    B, T, D = args.batch, args.length, args.units
    dtype = getattr(torch, args.dtype)
    cdtype = torch.complex64 if dtype == torch.float32 else torch.complex128
    torch.set_num_threads(args.threads)
    backends = available_backends()
    kernels = [n for n in ("numba",) if backends[n] == "available"]
    if "numba" in kernels:
        import numba

        numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    N = B * T * D
    R = args.repeats
    g = torch.Generator().manual_seed(0)
    c, beta, w = (torch.randn(B, T, D, generator=g).to(dtype) for _ in range(3))
    s0 = torch.zeros(B, D, dtype=dtype)
    a = torch.rand(B, T, D, generator=g).to(dtype)
    bb = torch.randn(B, T, D, generator=g).to(dtype)
    ac = torch.polar(torch.rand(B, T, D, generator=g), 6.28 * torch.rand(B, T, D, generator=g)).to(cdtype)
    bc = torch.randn(B, T, D, generator=g, dtype=cdtype)
    h0c = torch.zeros(B, D, dtype=cdtype)

    print(f"# scan kernels: B={B} T={T} units={D} {args.dtype}, {args.threads} threads, {args.clock} clock, "
          f"torch {torch.__version__}, {platform.processor() or platform.machine()}")
    print(f"# backends: {backends}")

    # floors: elements moved (read + written) by each op, in units of N
    floors = {}
    for moved in (3, 5, 6, 8, 9):  # sizes used below, in N floats moved
        fresh, pre = copy_floor(moved * N // 2, dtype, R)  # traffic-matched: copy of moved/2 N elements
        floors[moved] = {"fresh": fresh, "prealloc": pre}
    fresh_io, pre_io = copy_floor(3 * N, dtype, R)         # in+out sized for the BMRU forward
    fresh_1, pre_1 = copy_floor(N, dtype, R)               # one tensor of the output's size
    print("\n## copy floors (median / min, ms)")
    print(f"copy of 1 N (the output):            fresh {fresh_1[0]*1e3:7.3f} / {fresh_1[1]*1e3:7.3f}   "
          f"prealloc {pre_1[0]*1e3:7.3f} / {pre_1[1]*1e3:7.3f}")
    for moved, f in floors.items():
        print(f"traffic-matched, {moved} N moved:       fresh {f['fresh'][0]*1e3:7.3f} / {f['fresh'][1]*1e3:7.3f}   "
              f"prealloc {f['prealloc'][0]*1e3:7.3f} / {f['prealloc'][1]*1e3:7.3f}")
    print(f"in+out sized (3 N, BMRU forward):    fresh {fresh_io[0]*1e3:7.3f} / {fresh_io[1]*1e3:7.3f}   "
          f"prealloc {pre_io[0]*1e3:7.3f} / {pre_io[1]*1e3:7.3f}")

    # (name, moved in N, {backend: fn})
    cases = []

    def bmru(eps, backend, check=True):
        return lambda c_, b_, s_: bmru_scan(c_, b_, s_, eps, backend=backend, check_finite=check)

    for eps, name in ((0.0, "BMRU"), (1.0, "CMRU")):
        cases.append((f"{name} fwd", 3, {
            **{k: (lambda k=k: bmru_scan(c, beta, s0, eps, backend=k)) for k in kernels},
            **({f"{k} (no NaN check)": (lambda k=k: bmru_scan(c, beta, s0, eps, backend=k, check_finite=False))
                for k in kernels} if eps == 0.0 else {}),
            "torch": lambda: bmru_scan(c, beta, s0, eps, backend="torch"),
            **({"reference": lambda: bmru_scan_ref(c, beta, s0, eps)} if args.reference else {}),
        }))
        # fwd (3 N) + bwd (reads c, beta, s, grad; writes grad_c, grad_beta: 6 N)
        cases.append((f"{name} fwd+bwd", 9, {
            **{k: fwd_bwd(bmru(eps, k), (c, beta, s0), w) for k in kernels},
            "torch": fwd_bwd(bmru(eps, "torch"), (c, beta, s0), w),
        }))
    linear = (("linear real", (a, bb, s0), 3, 8), ("linear complex", (ac, bc, h0c), 6, 16))
    for label, (a_, b_, h_), m_f, m_fb in linear:
        cases.append((f"{label} fwd", m_f, {
            **{k: (lambda k=k, x=(a_, b_, h_): linear_scan(*x, backend=k)) for k in kernels},
            "torch": lambda x=(a_, b_, h_): linear_scan(*x, backend="torch"),
            "tree scan": lambda x=(a_, b_, h_): tree_scan(*x),
            **({"reference": lambda x=(a_, b_, h_): linear_scan_ref(*x)} if args.reference else {}),
        }))
        # fwd (3 N) + bwd (reads a, h, grad; writes grad_a, grad_b: 5 N)
        cases.append((f"{label} fwd+bwd", m_fb, {
            **{k: fwd_bwd(lambda *x, k=k: linear_scan(*x, backend=k), (a_, b_, h_), w) for k in kernels},
            "torch": fwd_bwd(lambda *x: linear_scan(*x, backend="torch"), (a_, b_, h_), w),
            "tree scan": fwd_bwd(tree_scan, (a_, b_, h_), w),
        }))

    results = {"config": vars(args), "floors_ms": {}, "cases": {}}
    results["floors_ms"] = {
        "copy_1N": {"fresh": fresh_1, "prealloc": pre_1},
        "in_out_3N": {"fresh": fresh_io, "prealloc": pre_io},
        **{f"traffic_{m}N": f for m, f in floors.items()},
    }
    print("\n## scans (median / min, ms; x floor = min / min of the preallocated traffic-matched copy;"
          " complex counts 2 floats per element)")
    for name, moved, fns in cases:
        floor = floors.get(moved)
        if floor is None:  # complex: twice the floats of the real op
            fresh, pre = copy_floor(moved * N // 2, dtype, R)
            floor = floors[moved] = {"fresh": fresh, "prealloc": pre}
        fl = floor["prealloc"][1]
        print(f"{name}  (moves {moved} N floats; floor {fl*1e3:.3f} ms prealloc, {floor['fresh'][1]*1e3:.3f} ms fresh)")
        results["cases"][name] = {}
        for backend, fn in fns.items():
            reps = 3 if backend in ("reference", "tree scan") and T > 1000 else R
            med, mn = timeit(fn, reps)
            results["cases"][name][backend] = {"median_ms": med * 1e3, "min_ms": mn * 1e3}
            print(f"    {backend:22s} {med*1e3:9.3f} / {mn*1e3:9.3f}   x floor {mn/fl:6.2f}")
        for k in kernels:
            if k in results["cases"][name]:
                mn = results["cases"][name][k]["min_ms"] / 1e3
                speed = {o: results["cases"][name][o]["min_ms"] / 1e3 / mn for o in ("torch", "tree scan")
                         if o in results["cases"][name]}
                print(f"    {k} speed-up: " + ", ".join(f"{v:.1f}x vs {o}" for o, v in speed.items()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return results


if __name__ == "__main__":
    main()
