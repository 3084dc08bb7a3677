"""``mru models`` — the named models of :data:`mru.registry.MODELS` with their descriptions."""

from __future__ import annotations

import argparse

EPILOG = """\
examples:
  mru models
  mru train --task latch --model bmru+lru      # a named hybrid
  mru train --task latch --model cmru+mingru   # any units joined by '+' sit side by side in each block
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    return subparsers.add_parser("models", help="list the models",
                                 description="List the models 'mru train --model' accepts.",
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG)


def run(args) -> int:
    from mru.registry import MODELS

    width = max(len(name) for name in MODELS)
    for name, (_, desc) in MODELS.items():
        print(f"{name:<{width}}  {desc}")
    print("\nAny unit names joined by '+' (e.g. cmru+mingru) build a hybrid with those units side by side.")
    return 0
