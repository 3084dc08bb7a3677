"""``mru tasks`` — the benchmark tasks (DESIGN §7): names and descriptions, or one task's details."""

from __future__ import annotations

import argparse

from . import UsageError

EPILOG = """\
examples:
  mru tasks              # every task, one line each
  mru tasks latch        # the latch task's input, output, metric, default sizes and options
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("tasks", help="list the benchmark tasks",
                              description="List the tasks 'mru train --task' accepts, or describe one.",
                              formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG)
    p.add_argument("name", nargs="?", help="a task to describe in detail")
    return p


def run(args) -> int:
    from mru.tasks import TASKS, list_tasks

    if args.name is None:
        rows = list_tasks()
        width = max(len(name) for name, _ in rows)
        for name, desc in rows:
            print(f"{name:<{width}}  {desc}")
        return 0
    key = args.name.strip().lower().replace("-", "_")
    if key not in TASKS:
        from mru.registry import unknown_name_error

        raise UsageError(str(unknown_name_error("task", args.name, TASKS)))
    cls = TASKS[key]
    inputs = "token ids" if cls.input_kind == "tokens" else "float features"
    sizes = cls.default_sizes  # a property of the instance where the data decide (digits, MNIST, charlm)
    sizes = ", ".join(f"{k} {v}" for k, v in sizes.items()) if isinstance(sizes, dict) else \
        "set by the data (each split whole by default)"
    print(f"{cls.name}: {cls.description}")
    print(f"  input:    {inputs}, size {cls.input_size}")
    print(f"  output:   {cls.target}, size {cls.output_size}, readout {cls.readout}")
    print(f"  metric:   {cls.metric_name} ({'higher' if cls.higher_is_better else 'lower'} is better)")
    print(f"  length:   {cls.default_length} by default"
          + ("" if getattr(cls, "supports_length_override", True) else " (fixed)"))
    print(f"  sizes:    {sizes}")
    options = getattr(cls, "option_defaults", {})
    if options:
        print("  options:  " + ", ".join(f"{k}={v!r}" for k, v in options.items())
              + f"   (mru train --task {cls.name} --task-option KEY=VALUE)")
    return 0
