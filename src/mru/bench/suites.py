"""The benchmark suites of ``mru bench``. Each returns rows (dicts) for one table.

- ``scan``: the scans alone (BMRU, CMRU, real and complex linear scan), forward and forward+backward, per
  backend, against the memory floor of the bytes each must read and write.
- ``layers``: BMRU, CMRU, LRU, minGRU layers, ``nn.GRU`` and ``nn.LSTM`` of the same width, and the BMRU
  equations in a Python loop under autograd; forward and forward+backward.
- ``baselines``: the real linear scan against a PyTorch tree scan and torch's generic associative_scan.
- ``step``: per-token latency of a 4-layer stack (width 256, batch 1), BMRU vs ``nn.GRU``.
- ``sweep``: BMRU scan over T in {256, ..., 65536} and two batch x units sizes, with peak memory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import torch

from ..scan import available_backends, bmru_scan, linear_scan
from ..scan.dispatch import resolve_backend
from ..units import BMRU, CMRU, GRU, LRU, LSTM, MinGRU
from .baselines import associative_scan_generic, tree_linear_scan
from .timing import copy_floor, fresh_copy_time, median_time

F32 = 4


def _backends(device: str) -> list[str]:
    names = []
    for name, status in available_backends().items():
        if status != "available" or name == "reference":
            continue
        if name == "triton" and device != "cuda":
            continue
        if name == "numba" and device != "cpu":
            continue
        names.append(name)
    return names


def _ms(s: float) -> float:
    return round(s * 1e3, 4)


def _fwd_bwd(fn, inputs, grad):
    def run():
        for t in inputs:
            t.grad = None
        out = fn()
        out.backward(grad)
    return run


def scan_suite(device="cpu", B=8, T=4096, D=128, reference=True, repeat=7) -> list[dict]:
    g = torch.Generator(device="cpu").manual_seed(0)
    c = torch.randn(B, T, D, generator=g).to(device)
    beta = torch.randn(B, T, D, generator=g).to(device)
    a = torch.rand(B, T, D, generator=g).to(device)
    ac = (torch.rand(B, T, D, generator=g) * torch.exp(1j * torch.rand(B, T, D, generator=g))).to(device)
    bc = torch.randn(B, T, D, dtype=torch.complex64, generator=g).to(device)
    s0 = torch.ones(B, D, device=device)
    n = B * T * D
    floors = {  # bytes read + written by the forward: 2 inputs + 1 output (complex: x2)
        "real": copy_floor(3 * n * F32, device),
        "complex": copy_floor(6 * n * F32, device),
    }
    rows = [{"op": "memory floor: copy 3 arrays (read+write) into a preallocated buffer", "backend": "-",
             "mode": "-", "ms": _ms(floors["real"]), "x floor": 1.0},
            {"op": "empty_like(x).copy_(x), one array, allocation included", "backend": "-", "mode": "-",
             "ms": _ms(fresh_copy_time(c)), "x floor": None}]
    ops = {
        "BMRU scan": (lambda bk, c, beta: bmru_scan(c, beta, s0, 0.0, backend=bk), (c, beta), "real"),
        "CMRU scan": (lambda bk, c, beta: bmru_scan(c, beta, s0, 1.0, backend=bk), (c, beta), "real"),
        "linear scan (real)": (lambda bk, a_, b_: linear_scan(a_, b_, backend=bk), (a, c), "real"),
        "linear scan (complex)": (lambda bk, a_, b_: linear_scan(a_, b_, backend=bk), (ac, bc), "complex"),
    }
    backends = _backends(device) + (["reference"] if reference else [])
    for op, (fn, args, kind) in ops.items():
        for bk in backends:
            rep = 1 if bk == "reference" else repeat
            t_f = median_time(lambda: fn(bk, *args), device, warmup=1 if bk == "reference" else 2, repeat=rep)
            leaves = [x.detach().clone().requires_grad_() for x in args]
            grad = torch.ones_like(args[1])
            t_fb = median_time(_fwd_bwd(lambda: fn(bk, *leaves), leaves, grad), device,
                               warmup=1 if bk == "reference" else 2, repeat=rep)
            for mode, t in (("fwd", t_f), ("fwd+bwd", t_fb)):
                rows.append({"op": op, "backend": bk, "mode": mode, "ms": _ms(t),
                             "x floor": round(t / floors[kind], 2)})
    return rows


def _layer_zoo(width: int, device):
    return {
        "BMRU": BMRU(width, width),
        "CMRU": CMRU(width, width),
        "LRU": LRU(width, width),
        "minGRU": MinGRU(width, width),
        "nn.GRU": GRU(width, width),
        "nn.LSTM": LSTM(width, width),
        "BMRU, Python loop + autograd": BMRU(width, width, backend="reference"),
    }


def layers_suite(device="cpu", B=8, T=4096, width=128, repeat=5) -> list[dict]:
    torch.manual_seed(0)
    x = torch.randn(B, T, width, device=device)
    rows, times = [], {}
    for name, layer in _layer_zoo(width, device).items():
        layer = layer.to(device)
        slow = "loop" in name
        t_f = median_time(lambda: layer(x)[0], device, warmup=1, repeat=1 if slow else repeat)
        xg = x.clone().requires_grad_()

        def fb():
            layer.zero_grad(set_to_none=True)
            xg.grad = None
            layer(xg)[0].sum().backward()
        t_fb = median_time(fb, device, warmup=1, repeat=1 if slow else repeat)
        times[name] = t_fb
        rows.append({"layer": name, "fwd ms": _ms(t_f), "fwd+bwd ms": _ms(t_fb)})
    for r in rows:
        r["fwd+bwd vs BMRU"] = round(times[r["layer"]] / times["BMRU"], 2)
    return rows


def baselines_suite(device="cpu", B=16, D=256, lengths=(1024, 4096), repeat=5) -> list[dict]:
    rows = []
    g = torch.Generator().manual_seed(0)
    for T in lengths:
        a = torch.rand(B, T, D, generator=g).to(device)
        b = torch.randn(B, T, D, generator=g).to(device)
        impls = {
            "mru linear_scan": lambda a_, b_: linear_scan(a_, b_),
            "PyTorch tree scan": tree_linear_scan,
            "torch associative_scan (generic)": associative_scan_generic,
        }
        times = {}
        for name, fn in impls.items():
            if name.startswith("torch") and fn(a[:, :2], b[:, :2]) is None:
                continue
            leaves = [a.clone().requires_grad_(), b.clone().requires_grad_()]
            grad = torch.ones_like(b)
            t = median_time(_fwd_bwd(lambda: fn(*leaves), leaves, grad), device, warmup=1, repeat=repeat)
            times[name] = t
        for name, t in times.items():
            rows.append({"T": T, "implementation": name, "fwd+bwd ms": _ms(t),
                         "x mru": round(t / times["mru linear_scan"], 2)})
    return rows


@torch.no_grad()
def step_suite(device="cpu", width=256, layers=4, tokens=300) -> list[dict]:
    torch.manual_seed(0)
    rows = []
    zoo = {"BMRU": BMRU(width, width, layers), "CMRU": CMRU(width, width, layers),
           "LRU": LRU(width, width, layers), "nn.GRU": GRU(width, width, layers),
           "nn.LSTM": LSTM(width, width, layers)}
    xs = torch.randn(tokens, 1, width, device=device)
    gru_raw = torch.nn.GRU(width, width, layers, batch_first=True).to(device)
    for name, unit in zoo.items():
        unit = unit.to(device).eval()
        state = unit.initial_state(1)

        def run():
            s = state
            for x in xs:
                _, s = unit.step(x, s)
        t = median_time(run, device, warmup=1, repeat=5) / tokens
        rows.append({"stack": f"{name} x{layers}, width {width}, batch 1", "us / token": round(t * 1e6, 1)})
    h = torch.zeros(layers, 1, width, device=device)

    def raw():
        s = h
        for x in xs:
            _, s = gru_raw(x.unsqueeze(1), s)
    t = median_time(raw, device, warmup=1, repeat=5) / tokens
    rows.append({"stack": f"torch.nn.GRU called directly x{layers}, width {width}, batch 1",
                 "us / token": round(t * 1e6, 1)})
    base = next(r["us / token"] for r in rows if r["stack"].startswith("nn.GRU"))
    for r in rows:
        r["x nn.GRU"] = round(r["us / token"] / base, 2)
    return rows


def _sweep_point(device: str, B: int, T: int, D: int) -> dict:
    """One sweep point, run in a fresh process so that its peak memory is its own (CPU: max RSS)."""
    import resource

    g = torch.Generator().manual_seed(0)
    c = torch.randn(B, T, D, generator=g).to(device).requires_grad_()
    beta = torch.randn(B, T, D, generator=g).to(device).requires_grad_()
    grad = torch.ones(B, T, D, device=device)
    backend = resolve_backend("auto", c)
    t_f = median_time(lambda: bmru_scan(c.detach(), beta.detach()), device, warmup=1, repeat=5)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t_fb = median_time(_fwd_bwd(lambda: bmru_scan(c, beta), (c, beta), grad), device, warmup=1, repeat=5)
    if device == "cuda":
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    floor = copy_floor(3 * B * T * D * F32, device)
    return {"B x D": f"{B} x {D}", "T": T, "backend": getattr(backend, "name", str(backend)),
            "fwd ms": _ms(t_f), "fwd+bwd ms": _ms(t_fb), "fwd x floor": round(t_f / floor, 2),
            "peak extra MiB (fwd+bwd)": round(max(peak, 0) / 2**20, 1),
            "inputs MiB": round(2 * B * T * D * F32 / 2**20, 1)}


def sweep_suite(device="cpu", lengths=(256, 1024, 4096, 16384, 65536), sizes=((8, 128), (16, 256))) -> list[dict]:
    rows = []
    for B, D in sizes:
        for T in lengths:
            code = ("import json, sys; from mru.bench.suites import _sweep_point; "
                    f"print(json.dumps(_sweep_point({device!r}, {B}, {T}, {D})))")
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                 env={**os.environ})
            if out.returncode != 0:
                rows.append({"B x D": f"{B} x {D}", "T": T, "backend": "error",
                             "fwd ms": None, "fwd+bwd ms": None, "fwd x floor": None,
                             "peak extra MiB (fwd+bwd)": None, "inputs MiB": None,
                             "error": out.stderr.strip().splitlines()[-1] if out.stderr else "failed"})
                continue
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return rows


SUITES = {
    "scan": scan_suite,
    "layers": layers_suite,
    "baselines": baselines_suite,
    "step": step_suite,
    "sweep": sweep_suite,
}

#: small shapes for a seconds-long smoke run (``mru bench --quick``)
QUICK = {
    "scan": dict(B=2, T=256, D=16, repeat=2),
    "layers": dict(B=2, T=128, width=16, repeat=2),
    "baselines": dict(B=2, D=16, lengths=(256,), repeat=2),
    "step": dict(width=32, layers=2, tokens=20),
    "sweep": dict(lengths=(256, 1024), sizes=((2, 16),)),
}


def run_suites(names, device="cpu", quick=False, progress=None) -> dict[str, list[dict]]:
    results = {}
    for name in names:
        if progress:
            progress(name)
        kwargs = QUICK[name] if quick else {}
        results[name] = SUITES[name](device=device, **kwargs)
    return results
