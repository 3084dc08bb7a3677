"""``mru plot``: learning curves, BMRU state rasters, hysteresis loops and the bifurcation diagram as PNGs."""

from __future__ import annotations

import argparse
import math

from . import UsageError, check_output_path, load_trained_run

EPILOG = """examples:
  mru plot curves runs/latch-bmru-s0 runs/latch-lru-s0 --out curves.png
  mru plot raster runs/latch-bmru-s0 --length 1000 --out raster.png
  mru plot hysteresis runs/latch-bmru-s0 --units 0,1,2 --out hysteresis.png
  mru plot hysteresis --beta 0.5,1,2 --out loops.png
  mru plot bifurcation --out bifurcation.png
"""


def add_parser(sub):
    p = sub.add_parser("plot", help="draw learning curves, state rasters, hysteresis loops, bifurcation diagrams",
                       description="Write figures as PNG files.", epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    kinds = p.add_subparsers(dest="kind", metavar="KIND", required=True)

    k = kinds.add_parser("curves", help="loss and validation metric against step, one line per run")
    k.add_argument("runs", nargs="+", help="run folders written by 'mru train' or 'mru compare'")
    k.add_argument("--out", default="curves.png")

    k = kinds.add_parser("raster", help="BMRU states over time for one test sequence of a trained run")
    k.add_argument("run", help="run folder of a model with a BMRU or CMRU")
    k.add_argument("--length", type=int, default=None, help="sequence length (default: the task's)")
    k.add_argument("--layer", type=int, default=0, help="which BMRU layer (default 0)")
    k.add_argument("--index", type=int, default=0, help="which test sequence (default 0)")
    k.add_argument("--out", default="raster.png")

    k = kinds.add_parser("hysteresis", help="the loop c -> s of chosen BMRU units")
    k.add_argument("run", nargs="?", help="run folder: loops at the units' mean |beta| on test data")
    k.add_argument("--units", default="0,1,2", help="unit indices of the first BMRU layer (default 0,1,2)")
    k.add_argument("--beta", default=None, help="thresholds to draw instead of a run, e.g. 0.5,1,2")
    k.add_argument("--out", default="hysteresis.png")

    k = kinds.add_parser("bifurcation", help="a bistable cell iterated N times per input -> the BMRU map")
    k.add_argument("--iterations", default="1,3,10,100,1000", help="values of N (default 1,3,10,100,1000)")
    k.add_argument("--gain", type=float, default=2.0, help="feedback gain w > 1 of h <- tanh(w h + u)")
    k.add_argument("--out", default="bifurcation.png")
    return p


def _ints(text: str, name: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"{name} must be comma-separated integers, got {text!r}") from None


def _floats(text: str, name: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or not all(math.isfinite(v) for v in values):
        raise UsageError(f"{name} must be comma-separated finite numbers, got {text!r}")
    return values


def _out(text: str) -> str:
    """The PNG file --out names (another suffix is replaced by .png, as the figure writer does)."""
    path = check_output_path(text, "--out")
    if path.suffix.lower() != ".png":
        try:
            path = check_output_path(path.with_suffix(".png"), "--out")
        except ValueError:
            raise UsageError(f"--out {text!r} is not a file name") from None
    return str(path)


def _load(run):
    return load_trained_run(run, which="auto", device="cpu")


def run(args) -> int:
    from .. import plots

    out = _out(args.out)
    if args.kind == "curves":
        try:
            path = plots.plot_learning_curves(args.runs, out)
        except (FileNotFoundError, ValueError) as e:  # no metrics file, or one that is not text
            raise UsageError(str(e)) from None
    elif args.kind == "raster":
        if args.index < 0:
            raise UsageError(f"--index must be >= 0, got {args.index}")
        model, task, _, _ = _load(args.run)
        try:
            data = task.dataset("test", n=args.index + 1, length=args.length)
        except ValueError as e:  # a length the task cannot build
            raise UsageError(f"--length {args.length}: {e}") from None
        try:
            states = plots.bmru_states(model, data.x[args.index:args.index + 1])
        except ValueError as e:
            raise UsageError(f"{args.run}: {e}") from None
        if not 0 <= args.layer < len(states):
            raise UsageError(f"--layer must be in [0, {len(states) - 1}], got {args.layer}")
        path = plots.plot_state_raster(states[args.layer][0], out,
                                       title=f"{task.name}: BMRU layer {args.layer} states")
    elif args.kind == "hysteresis":
        if args.beta is not None:
            betas, labels = _floats(args.beta, "--beta"), None
        elif args.run is not None:
            model, task, _, _ = _load(args.run)
            try:
                widths = plots.mean_thresholds(model, task.dataset("test", n=16).x)[0]
            except ValueError as e:
                raise UsageError(f"{args.run}: {e}") from None
            units = _ints(args.units, "--units")
            if not units:
                raise UsageError(f"--units must name at least one unit, got {args.units!r}")
            bad = [u for u in units if not 0 <= u < widths.numel()]
            if bad:
                raise UsageError(f"--units {bad} out of range: the layer has {widths.numel()} units")
            betas = [float(widths[u]) for u in units]
            labels = [f"unit {u}, mean |beta| = {b:.2f}" for u, b in zip(units, betas)]
        else:
            raise UsageError("give a run folder or --beta values")
        path = plots.plot_hysteresis(betas, out, labels=labels)
    else:
        iters = _ints(args.iterations, "--iterations")
        if not iters or min(iters) < 1:
            raise UsageError(f"--iterations must be positive integers, got {args.iterations!r}")
        if not (args.gain > 1 and math.isfinite(args.gain)):
            raise UsageError(f"--gain must be a finite number > 1 for a bistable cell, got {args.gain}")
        path = plots.plot_bifurcation(out, iters, args.gain)
    print(f"wrote {path}")
    return 0
