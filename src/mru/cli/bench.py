"""``mru bench``: the benchmark suite (see :mod:`mru.bench`)."""

from __future__ import annotations

import argparse
import shlex
import sys

from . import UsageError

EPILOG = """examples:
  mru bench                                   # every suite but the sweep, on CPU
  mru bench --suites scan,layers --out bench/
  mru bench --suites sweep                    # T up to 65,536 with peak memory (minutes)
  mru bench --device cuda
  mru bench --quick                           # seconds-long smoke run with tiny shapes
"""


def add_parser(sub):
    p = sub.add_parser("bench", help="benchmark the scans, layers and step mode against baselines and the memory floor",
                       description="Median times after warm-up, side by side in one process; writes bench.md and bench.json.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suites", default="scan,layers,baselines,step",
                   help="comma-separated: scan, layers, baselines, step, sweep (default: all but sweep)")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    p.add_argument("--out", default="bench", help="folder for bench.md and bench.json (default ./bench)")
    p.add_argument("--quick", action="store_true", help="tiny shapes: checks that every suite runs")
    return p


def run(args) -> int:
    import torch

    from ..bench import SUITES, run_suites
    from ..bench.report import markdown, write
    from ..registry import unknown_name_error

    names = [s.strip() for s in args.suites.split(",") if s.strip()]
    for n in names:
        if n not in SUITES:
            raise UsageError(str(unknown_name_error("suite", n, SUITES)))
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda"):
        raise UsageError(f"--device must be cpu, cuda or auto, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda asked for, but this torch sees no CUDA device")
    command = "mru bench " + " ".join(shlex.quote(a) for a in sys.argv[2:]) if sys.argv[1:2] == ["bench"] else "mru bench"
    results = run_suites(names, device, args.quick,
                         progress=lambda n: print(f"[bench] {n} ...", file=sys.stderr, flush=True))
    print(markdown(results, command, args.quick))
    md, js = write(results, args.out, command, args.quick)
    print(f"wrote {md} and {js}", file=sys.stderr)
    return 0
