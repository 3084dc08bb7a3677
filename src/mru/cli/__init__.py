"""The ``mru`` command line. Each subcommand lives in its own module of this package and exposes

    add_parser(subparsers) -> argparse.ArgumentParser      # registers the subcommand
    run(args) -> int                                       # runs it, returns the exit code

User mistakes (bad names, bad values, missing files) are raised as :class:`UsageError` and printed as one
clear line, never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: subcommand modules, in the order ``mru --help`` lists them
SUBCOMMANDS = ("train", "eval", "compare", "plot", "tasks", "models", "bench", "demo", "stream")


class UsageError(Exception):
    """A mistake in the user's command or files: printed without a traceback, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mru",
        description="Memory recurrent units: train, evaluate, compare and benchmark BMRU/CMRU and baselines.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run 'mru COMMAND --help' for the options and examples of each command.",
    )
    from mru import __version__

    parser.add_argument("--version", action="version", version=f"mru {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"mru.cli.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"mru.cli.{name}":
                continue  # subcommand not part of this build
            raise
        p = module.add_parser(sub)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except UsageError as e:
        from mru.train.distributed import is_main_process

        if is_main_process():  # under torchrun every rank finds the same mistake; say it once
            print(f"mru {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mru {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
