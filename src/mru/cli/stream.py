"""``mru stream``: feed a trained model one token at a time (step mode, O(1) per token) from a file or stdin.

Float tasks read one time step per line (``input_size`` whitespace-separated numbers) and print the model's
output at each step; text tasks (charlm) read characters and print the most likely next character. The
streaming state can be saved at the end and restored by a later call, so a stream continues across processes.
"""

from __future__ import annotations

import argparse
import sys

from . import UsageError, check_output_path, load_trained_run

EPILOG = """examples:
  printf '1 0 1\\n0 0 0\\n0 1 0\\n' | mru stream runs/latch-bmru-seed0
  mru stream runs/latch-bmru-seed0 --input steps.txt --state-out state.safetensors
  mru stream runs/latch-bmru-seed0 --input more.txt --state-in state.safetensors
  mru stream runs/charlm-bmru-seed0 --input prompt.txt
"""


def add_parser(sub):
    p = sub.add_parser("stream", help="run a trained model token by token from a file or stdin",
                       description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="run folder written by 'mru train'")
    p.add_argument("--input", default="-", help="file to read, or - for stdin (default)")
    p.add_argument("--state-in", default=None, help="continue from a state saved by --state-out")
    p.add_argument("--state-out", default=None, help="save the state after the last token")
    return p


def _steps(task, text: str):
    import torch

    if task.input_kind == "tokens":
        if not hasattr(task, "encode"):
            raise UsageError(f"task {task.name!r} has token inputs but no text encoding to stream from")
        try:
            ids = task.encode(text)
        except ValueError as e:
            raise UsageError(str(e)) from None
        return [torch.tensor([int(i)]) for i in ids]
    steps = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            values = [float(v) for v in line.split()]
        except ValueError:
            raise UsageError(f"line {n}: expected {task.input_size} numbers, got {line.strip()!r}") from None
        if len(values) != task.input_size:
            raise UsageError(f"line {n}: expected {task.input_size} numbers (the task's input size), got {len(values)}")
        steps.append(torch.tensor([values]))
    return steps


def run(args) -> int:
    import torch

    from ..deploy import load_stream_state, save_stream_state

    if args.state_in is not None and not args.state_in.strip():
        raise UsageError(f"--state-in needs a file saved by --state-out, got {args.state_in!r}")
    if args.state_out is not None:
        check_output_path(args.state_out, "--state-out")
    model, task, _, _ = load_trained_run(args.run, which="auto", device="cpu")
    try:
        text = sys.stdin.read() if args.input == "-" else open(args.input, encoding="utf-8").read()
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"cannot read {args.input}: {e}") from None
    steps = _steps(task, text)
    state = None
    if args.state_in is not None:
        try:
            state = load_stream_state(args.state_in)
        except (FileNotFoundError, ValueError, TypeError) as e:
            raise UsageError(str(e)) from None
    with torch.no_grad():
        for x_t in steps:
            try:
                y, state = model.step(x_t.to(model.head.weight.dtype) if x_t.is_floating_point() else x_t, state)
            except (ValueError, TypeError) as e:
                raise UsageError(f"the state does not fit this model: {e}") from None
            if task.input_kind == "tokens":
                sys.stdout.write(task.decode([int(y.argmax(-1))]))
            elif task.target == "classification":
                print(int(y.argmax(-1)))
            else:
                print(" ".join(f"{v:.6g}" for v in y[0].tolist()))
    if task.input_kind == "tokens":
        sys.stdout.write("\n")
    if args.state_out is not None:
        if state is None:
            raise UsageError("no input steps were read, so there is no state to save")
        try:
            save_stream_state(state, args.state_out)
        except (ValueError, TypeError) as e:
            raise UsageError(f"--state-out: {e}") from None
        print(f"saved the stream state to {args.state_out}", file=sys.stderr)
    return 0
