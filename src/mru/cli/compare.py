"""``mru compare`` — models × tasks × seeds, one run each, and a table of test metrics (mru.train.compare)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

from . import UsageError, check_output_path
from .train import add_config_arguments, make_config, positive_numbers, preflight

EPILOG = """\
examples:
  mru compare --models bmru,cmru,lru,bmru+lru,gru --tasks latch --eval-lengths 1,10,100
  mru compare --models bmru,lru --tasks latch,copy_first --seeds 0,1,2 --steps 1000 --out-dir runs/cmp
  mru compare --models bmru,gru --tasks latch --config base.toml       # shared settings from a file

Runs go to OUT_DIR/<task>/<model>/seed<seed>; the table goes to OUT_DIR/results.md and results.json.
--eval-lengths are multiples of each task's training length (latch at 10x and 100x tests persistent memory);
at multiples above 1 the test set is cut to about --eval-tokens time steps. Re-running the same command
reuses finished runs and resumes interrupted ones.
"""


def _names(text: str) -> list[str]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected names separated by commas, got {text!r}")
    return names


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers separated by commas, got {text!r}") from None
    if not seeds or any(s < 0 for s in seeds):
        raise argparse.ArgumentTypeError(f"expected non-negative integers, got {text!r}")
    return seeds


def _factors(text: str) -> list[float]:
    return positive_numbers(text, "multiples")


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "compare", help="train models x tasks x seeds and tabulate the test metrics",
        description="Train every model on every task with every seed (same settings otherwise), evaluate "
                    "each at multiples of its training length, and write a Markdown table of mean ± std.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG)
    p.add_argument("--models", type=_names, default=["bmru", "cmru", "lru", "bmru+lru", "gru"], metavar="M[,M...]",
                   help="models (default bmru,cmru,lru,bmru+lru,gru; see 'mru models')")
    p.add_argument("--tasks", type=_names, default=["latch"], metavar="T[,T...]", help="tasks (default latch)")
    p.add_argument("--seeds", type=_seeds, default=[0], metavar="S[,S...]", help="seeds (default 0)")
    p.add_argument("--eval-lengths", type=_factors, default=[1.0], metavar="F[,F...]",
                   help="test at these multiples of the training length (default 1)")
    p.add_argument("--eval-tokens", type=int, default=None, metavar="N",
                   help="time steps per evaluation above 1x (default 100000)")
    p.add_argument("--out-dir", default="runs/compare",
                   help="folder of the runs and the results (default runs/compare)")
    p.add_argument("--config", metavar="FILE", help="TOML or JSON file of shared TrainConfig fields")
    p.add_argument("--no-plots", dest="plots", action="store_false",
                   help="skip the figures (learning curves; state raster and hysteresis loops of BMRU models)")
    p.add_argument("--overwrite", action="store_true", help="retrain runs that already exist in --out-dir")
    p.add_argument("--verbose", "-v", action="store_true", help="log every evaluation of every run")
    p.add_argument("--quiet", "-q", action="store_true", help="print nothing")
    add_config_arguments(p, exclude=("task", "model", "seed", "out_dir"))
    return p


def run(args) -> int:
    from mru.registry import model_units
    from mru.train import CheckpointError
    from mru.train.compare import EVAL_TOKENS, compare
    from mru.train.loop import TrainingDiverged

    if args.eval_tokens is not None and args.eval_tokens < 1:
        raise UsageError(f"--eval-tokens must be a positive integer, got {args.eval_tokens}")
    for m in args.models:
        try:
            model_units(m)
        except ValueError as e:
            raise UsageError(str(e)) from None
    base = make_config(args, exclude=("task", "model", "seed", "out_dir"))
    check_output_path(args.out_dir, "--out-dir", folder=True)

    for t in args.tasks:  # names and options checked before the first run starts
        for m in args.models:
            try:
                cfg = replace(base, task=t, model=m)
            except ValueError as e:
                raise UsageError(str(e)) from None
            preflight(cfg, allow_missing_data=True)
    try:
        compare(args.models, args.tasks, args.seeds, base=base, out_dir=args.out_dir,
                eval_lengths=args.eval_lengths, eval_tokens=args.eval_tokens or EVAL_TOKENS,
                overwrite=args.overwrite, quiet=args.quiet, verbose=args.verbose)
    except CheckpointError as e:
        raise UsageError(f"{e} (use --overwrite to retrain, or another --out-dir)") from None
    except TrainingDiverged as e:  # as 'mru train' does: not a usage error, the finished runs are kept
        print(f"mru compare: stopped: {e}", file=sys.stderr)
        return 1
    from mru.train.distributed import is_main_process

    if args.plots and is_main_process():
        from mru.plots import compare_figures

        for path in compare_figures(args.out_dir, args.tasks, args.models, seed=args.seeds[0]):
            if not args.quiet:
                print(f"wrote {path}")
    return 0

