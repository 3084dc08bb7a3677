"""``mru demo``: persistent vs fading memory in one table (see :mod:`mru.demo`)."""

from __future__ import annotations

import argparse

from . import UsageError


def add_parser(sub):
    p = sub.add_parser(
        "demo",
        help="show a BMRU holding a bit through 100,000 distractor steps while an LRU forgets it",
        description="Write a bit at t = 0, add distractors for STEPS steps, and read it back from a hand-set "
                    "BMRU and a hand-set LRU at growing delays.",
        epilog="examples:\n  mru demo\n  mru demo --steps 10000 --batch 256",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--steps", type=int, default=100_000, help="sequence length (default 100000)")
    p.add_argument("--batch", type=int, default=64, help="number of sequences (default 64)")
    p.add_argument("--seed", type=int, default=0)
    return p


def run(args) -> int:
    if args.steps < 1 or args.batch < 1:
        raise UsageError(f"--steps and --batch must be >= 1, got {args.steps} and {args.batch}")
    from ..demo import main

    return main(args.steps, args.batch, args.seed)
