"""``mru eval`` — score a trained run on any split, at any sequence length (length generalisation)."""

from __future__ import annotations

import argparse
import json

from . import UsageError, load_trained_run
from .train import _int, positive_numbers

EPILOG = """\
examples:
  mru eval runs/latch-bmru-seed0                        # test metric at the training length
  mru eval runs/latch-bmru-seed0 --length 1000,10000    # 10x and 100x the training length
  mru eval runs/latch-bmru-seed0 --factor 10,100        # the same, as multiples of the training length
  mru eval runs/latch-bmru-seed0 --split val --checkpoint last --json

Sequences are evaluated in chunks that bound the memory used, so long lengths fit on a laptop.
"""


def _ints(text: str) -> list[int]:
    try:  # 1e3 and 1_000 are accepted; 2.5, NaN and Inf are not
        values = [_int(v.strip()) for v in text.split(",") if v.strip()]
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected integers separated by commas, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _floats(text: str) -> list[float]:
    return positive_numbers(text)


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "eval", help="evaluate a trained run (any split, any length)",
        description="Evaluate the best (or last) checkpoint of a run folder written by 'mru train'.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG)
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder written by 'mru train' or 'mru compare'")
    lengths = p.add_mutually_exclusive_group()
    lengths.add_argument("--length", type=_ints, metavar="T[,T...]",
                         help="sequence length(s) (default: the training length)")
    lengths.add_argument("--factor", type=_floats, metavar="F[,F...]",
                         help="length(s) as multiples of the training length")
    p.add_argument("--split", default="test", choices=("train", "val", "test"), help="data split (default test)")
    p.add_argument("--n", type=int, metavar="N", help="number of sequences (default: the run's size of the split)")
    p.add_argument("--checkpoint", default="auto", choices=("auto", "best", "last"),
                   help="which checkpoint (default auto: best if there is one, else last)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="default auto")
    p.add_argument("--batch-size", type=int, default=256, metavar="N", help="sequences per batch (default 256)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    return p


def run(args) -> int:
    from mru.train import evaluate

    if args.n is not None and args.n < 1:
        raise UsageError(f"--n must be a positive integer, got {args.n}")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be a positive integer, got {args.batch_size}")
    model, task, config, state = load_trained_run(args.run_dir, args.checkpoint, device=args.device)
    if args.length:
        lengths = args.length
    elif args.factor:
        lengths = [max(1, round(f * task.length)) for f in args.factor]
    else:
        lengths = [task.length]
    n = args.n if args.n is not None else getattr(config, f"n_{args.split}")  # the run's own split size
    results = []
    for length in lengths:
        try:
            value = evaluate(model, task, args.split, length=length, n=n, batch_size=args.batch_size,
                             bf16=config.bf16)
        except ValueError as e:  # a length the task cannot build
            raise UsageError(str(e)) from None
        results.append({"length": length, "factor": length / task.length, f"{args.split}_{task.metric_name}": value})
        if not args.json:
            print(f"{config.task} {config.model} seed {config.seed} ({state['checkpoint']} checkpoint, step "
                  f"{state['step']}): {args.split} {task.metric_name} {value:.4f} at length {length} "
                  f"({length / task.length:g}x training)")
    if args.json:
        print(json.dumps({"run_dir": args.run_dir, "task": config.task, "model": config.model, "seed": config.seed,
                          "checkpoint": state["checkpoint"], "step": state["step"], "metric": task.metric_name,
                          "split": args.split, "results": results}, indent=1))
    return 0
