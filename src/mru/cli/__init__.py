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
from pathlib import Path

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


def one_line(message: str) -> str:
    """``message`` on one line: its lines (e.g. torch's multi-line ``load_state_dict`` report) joined by '; '."""
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    return "; ".join(lines) or "(no details)"


def check_output_path(path, flag: str, folder: bool = False) -> Path:
    """Refuse an output path a command could not write, before any work: an empty path, a path under an
    existing file, a file path that is an existing folder, or a folder path that is an existing file."""
    if path is None or not str(path).strip():
        raise UsageError(f"{flag} needs a {'folder' if folder else 'file'} path, got {str(path)!r}")
    path = Path(path)
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise UsageError(f"{flag} {str(path)!r}: {str(parent)!r} is a file, not a folder")
    if folder and path.exists() and not path.is_dir():
        raise UsageError(f"{flag} {str(path)!r} is a file, not a folder")
    if not folder and (path.is_dir() or not path.name):
        raise UsageError(f"{flag} {str(path)!r} is a folder; give a file path")
    return path


def load_trained_run(run_dir, which: str = "auto", device: str = "auto"):
    """:func:`mru.train.load_run` for a command: a missing, empty or damaged run folder is a UsageError
    naming the folder or the file, never a traceback. Returns (model, task, config, checkpoint state)."""
    from mru.train import CheckpointError, load_run
    from mru.train.checkpoint import checkpoint_path
    from mru.train.loop import resolve_device

    try:
        resolve_device(device)  # e.g. --device cuda without a GPU: not the folder's fault
    except ValueError as e:
        raise UsageError(one_line(str(e))) from None
    if run_dir is None or not str(run_dir).strip():
        raise UsageError(f"a run folder is needed, got {str(run_dir)!r}")
    folder = Path(run_dir)
    if not folder.is_dir():
        raise UsageError(f"run folder {str(folder)!r} does not exist" if not folder.exists()
                         else f"{str(folder)!r} is a file, not a run folder")
    if which == "auto":
        which = "best" if checkpoint_path(folder, "best").is_file() else "last"
    try:  # load_run checks what the checkpoint's JSON (not covered by the tensors' checksum) holds
        return load_run(folder, which, device=device)
    except CheckpointError as e:
        raise UsageError(one_line(str(e))) from None
    except ValueError as e:
        raise UsageError(f"run folder {str(folder)!r} cannot be loaded: {one_line(str(e))}") from None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_usage(sys.stderr)
        print(f"mru: error: give a command, one of {', '.join(SUBCOMMANDS)} ('mru --help' describes them)",
              file=sys.stderr)
        return 2
    try:
        code = int(args._run(args) or 0)
        from mru.train.distributed import shutdown

        shutdown()  # under torchrun: every rank done before any leaves the process group
        return code
    except UsageError as e:
        from mru.train.distributed import is_main_process

        if is_main_process():  # under torchrun every rank finds the same mistake; say it once
            print(f"mru {args.command}: error: {one_line(str(e))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mru {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
