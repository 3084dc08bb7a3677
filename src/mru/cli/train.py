"""``mru train`` — train one model on one task (see :mod:`mru.train.loop`).

Every field of :class:`mru.train.TrainConfig` is a flag (``--d-model 64``); ``--config FILE`` reads a TOML/JSON
file first and the flags given on the command line override it. ``mru compare`` reuses these flags.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys

from mru.train.config import DEFAULT_STEPS

from . import UsageError, check_output_path, one_line

EPILOG = """\
examples:
  mru train --task latch --model bmru                      # defaults: 300 steps, about a minute on 2 cores
  mru train --task latch --model bmru+lru --steps 1000 --d-model 32
  mru train --task copy_first --length 1000 --model cmru --task-option noise=0.5
  mru train --task latch --model lru --unit-option lru.r_min=0.9 --unit-option lru.r_max=0.999
  mru train --config runs.toml --seed 3                    # file values, then flags
  mru train --resume runs/latch-bmru-seed0                 # continue an interrupted run exactly

A run folder holds config.json, metrics.jsonl / metrics.csv (one row per evaluation), the "last" and "best"
checkpoints and summary.json. Ctrl-C saves a checkpoint; --resume continues from it.
ε schedule (DESIGN §3): models with a BMRU train at ε=1 for 20%% of the steps, anneal linearly to
--eps-end over the next 50%%, and keep the best checkpoint only once ε has reached its final value.
"""

#: flag help per TrainConfig field; the order here is the order in --help
HELP = {
    "task": "task name, see 'mru tasks'",
    "task_options": "a task option, KEY=VALUE (repeatable; see 'mru tasks NAME')",
    "length": "training sequence length (default: the task's)",
    "n_train": "training sequences (default: the task's)",
    "n_val": "validation sequences (default: the task's)",
    "n_test": "test sequences (default: the task's)",
    "model": "model name or units joined by '+', e.g. bmru+lru; see 'mru models'",
    "d_model": "model width",
    "n_layers": "residual blocks",
    "combine": "how a hybrid mixer combines its units: sum or concat",
    "mlp_ratio": "GLU-MLP width / d_model, 0 disables the MLP",
    "dropout": "dropout on the residual branches",
    "norm": "layer or rms",
    "head": "readout of a sequence-level task: last step (default) or mean over the steps",
    "unit_options": "a unit option, UNIT.KEY=VALUE, e.g. lru.r_min=0.9 (repeatable)",
    "lr": "peak learning rate",
    "min_lr": "learning rate at the end of the cosine",
    "weight_decay": "AdamW weight decay on matrices",
    "batch_size": "sequences per step",
    "steps": f"optimiser steps (default {DEFAULT_STEPS} unless --epochs)",
    "epochs": "passes over the training set, instead of --steps",
    "warmup": "linear warm-up steps",
    "grad_clip": "max gradient norm, 0 disables",
    "eps_start": "ε at the start (default: 1 for models with a BMRU, else each unit's own ε)",
    "eps_end": "ε after annealing",
    "eps_hold": "steps at --eps-start before annealing (default 20%% of the steps)",
    "eps_anneal_steps": "steps of the linear ε anneal (default 50%% of the steps)",
    "gamma_start": "surrogate-gradient slope γ at the start",
    "gamma_end": "γ at the last step, geometric schedule (default: constant)",
    "write_rate_penalty": "coefficient of the write-rate penalty",
    "write_rate_norm": "l1 (coef * rate) or l2 (coef * rate^2)",
    "seed": "seed of the model, the data order and the task's data",
    "device": "auto, cpu or cuda (default auto: cuda when available)",
    "bf16": "bf16 autocast on CUDA (default on; --no-bf16 disables)",
    "eval_every": "steps between evaluations and checkpoints",
    "eval_batch_size": "sequences per evaluation batch",
    "target_metric": "stop early once the validation metric reaches this value",
    "out_dir": "run folder (default runs/<task>-<model>-seed<seed>)",
}


def _int(text: str) -> int:
    """An integer flag value; accepts 1e3 and 1_000."""
    try:
        return int(text.replace("_", ""))
    except ValueError:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if not value.is_integer():
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        return int(value)


def positive_numbers(text: str, what: str = "numbers") -> list[float]:
    """A comma-separated list of positive finite numbers (``what`` names them in the error)."""
    try:
        values = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}") from None
    if not values or any(not (v > 0 and math.isfinite(v)) for v in values):
        raise argparse.ArgumentTypeError(f"expected positive finite {what}, got {text!r}")
    return values


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def parse_value(text: str):
    """A KEY=VALUE value: JSON when it parses (numbers, true/false, lists), else the string itself."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _key_value(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), parse_value(value.strip())


def _with_default(help_text: str, name: str) -> str:
    """Append TrainConfig's default for ``name`` unless the help already explains it."""
    from mru.train.config import TrainConfig

    default = {f.name: f.default for f in dataclasses.fields(TrainConfig)}[name]
    if "default" in help_text or default is None or default is dataclasses.MISSING:
        return help_text
    return f"{help_text} (default {default:g})" if isinstance(default, float) else f"{help_text} (default {default})"


def add_config_arguments(parser: argparse.ArgumentParser, exclude=()) -> None:
    """One flag per TrainConfig field (except ``exclude``), all defaulting to None = "not given"."""
    from mru.train.config import TrainConfig

    types = {f.name: f.type for f in dataclasses.fields(TrainConfig)}
    group = parser.add_argument_group("training config (defaults: mru.train.TrainConfig)")
    for name, help_text in HELP.items():
        if name in exclude:
            continue
        flag = "--" + name.replace("_", "-")
        kind = str(types[name])
        if name == "task_options":
            group.add_argument("--task-option", dest=name, action="append", type=_key_value, metavar="KEY=VALUE",
                               help=help_text)
        elif name == "unit_options":
            group.add_argument("--unit-option", dest=name, action="append", type=_key_value,
                               metavar="UNIT.KEY=VALUE", help=help_text)
        elif name == "bf16":
            group.add_argument("--bf16", dest=name, action=argparse.BooleanOptionalAction, default=None,
                               help=help_text)
        elif "int" in kind:
            group.add_argument(flag, dest=name, type=_int, metavar="N", help=_with_default(help_text, name))
        elif "float" in kind:
            group.add_argument(flag, dest=name, type=_float, metavar="X", help=_with_default(help_text, name))
        else:
            group.add_argument(flag, dest=name, metavar=name.split("_")[-1].upper(),
                               help=_with_default(help_text, name))


def config_overrides(args: argparse.Namespace) -> dict:
    """The TrainConfig fields given on the command line."""
    out = {}
    for name in HELP:
        value = getattr(args, name, None)
        if value is None:
            continue
        if name == "task_options":
            value = dict(value)
        elif name == "unit_options":
            nested: dict = {}
            for key, v in value:
                unit, dot, option = key.partition(".")
                if not dot or not option:
                    raise UsageError(f"--unit-option expects UNIT.KEY=VALUE (e.g. lru.r_min=0.9), got {key}={v}")
                nested.setdefault(unit.lower(), {})[option] = v
            value = nested
        out[name] = value
    return out


def make_config(args: argparse.Namespace, exclude=(), **fixed):
    """The TrainConfig of ``--config FILE`` (if given) updated with the flags and ``fixed``; mistakes raise
    UsageError."""
    from mru.train.config import TrainConfig, read_config_file

    overrides = {**config_overrides(args), **fixed}
    config_file = getattr(args, "config", None)
    if config_file is not None and not config_file.strip():
        raise UsageError(f"--config needs a TOML or JSON file, got {config_file!r}")
    try:
        base = read_config_file(config_file) if config_file is not None else {}
        for key in exclude:
            base.pop(key, None)
        merged = dict(base)
        for key in ("task_options", "unit_options"):  # tables merge key by key
            if key in overrides and isinstance(base.get(key), dict):
                inner = {**base[key]}
                for k, v in overrides[key].items():
                    both_tables = isinstance(v, dict) and isinstance(inner.get(k), dict)
                    inner[k] = {**inner[k], **v} if both_tables else v
                overrides[key] = inner
        merged.update(overrides)
        return TrainConfig.from_dict(merged)
    except (ValueError, FileNotFoundError) as e:
        raise UsageError(str(e)) from None


def preflight(config, allow_missing_data: bool = False) -> None:
    """Build the task and the model once so that bad options fail as usage errors before any work, and
    check that the device exists.
    With ``allow_missing_data``, a real-data task whose files are absent passes (the caller skips it)."""
    import torch

    from mru.tasks import DataNotFoundError
    from mru.train.loop import build_task, model_config
    from mru.nets.model import SequenceModel

    if config.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda asked for, but this torch sees no CUDA device; use --device auto or cpu")
    try:
        task = build_task(config)
        SequenceModel(model_config(config, task))
    except DataNotFoundError as e:
        if allow_missing_data:
            return
        raise UsageError(str(e)) from None
    except (ValueError, TypeError) as e:
        raise UsageError(str(e)) from None


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "train", help="train a model on a task",
        description="Train one model on one task: AdamW with warm-up and cosine decay, the ε schedule of "
                    "DESIGN §3 for BMRU models, checkpoints every evaluation, exact resume.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG)
    p.add_argument("--config", metavar="FILE", help="TOML or JSON file of TrainConfig fields (flags override it)")
    p.add_argument("--resume", metavar="RUN_DIR",
                   help="continue the interrupted run in RUN_DIR from its last checkpoint")
    p.add_argument("--overwrite", action="store_true", help="start afresh in a run folder that already holds a run")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar and no log lines")
    add_config_arguments(p)
    return p


def run(args) -> int:
    from mru.train import CheckpointError, train
    from mru.train.checkpoint import checkpoint_path, read_state
    from mru.train.config import TrainConfig
    from mru.train.loop import RESUME_SAFE_FIELDS, TrainingDiverged
    from mru.train.distributed import is_main_process

    if args.resume is not None:
        if not args.resume.strip():
            raise UsageError(f"--resume needs a run folder, got {args.resume!r}")
        if args.config is not None:
            raise UsageError("--resume takes the config from the run folder; drop --config")
        if args.overwrite:
            raise UsageError("--resume and --overwrite contradict each other")
        try:
            saved = read_state(checkpoint_path(args.resume, "last")).get("config")
        except CheckpointError as e:
            raise UsageError(f"cannot resume: {one_line(str(e))}") from None
        if not isinstance(saved, dict):
            raise UsageError(f"cannot resume: checkpoint {str(checkpoint_path(args.resume, 'last'))!r} is "
                             f"damaged: no training config")
        overrides = config_overrides(args)
        overrides.pop("out_dir", None)  # the run folder is RUN_DIR
        changed = [k for k, v in overrides.items() if k not in RESUME_SAFE_FIELDS and saved.get(k) != v]
        if changed:
            raise UsageError(f"cannot change {', '.join('--' + k.replace('_', '-') for k in changed)} when "
                             f"resuming; only {', '.join('--' + k.replace('_', '-') for k in RESUME_SAFE_FIELDS)} "
                             f"may differ")
        try:
            config = TrainConfig.from_dict(saved, **overrides, out_dir=os.fspath(args.resume))
        except (ValueError, TypeError) as e:
            raise UsageError(f"cannot resume {args.resume!r}: {one_line(str(e))}") from None
    else:
        config = make_config(args)
    check_output_path(config.run_dir, "--out-dir", folder=True)
    preflight(config)
    try:
        result = train(config, resume=args.resume is not None, overwrite=args.overwrite, quiet=args.quiet)
    except TrainingDiverged as e:
        print(f"mru train: stopped: {e}", file=sys.stderr)
        return 1
    except (CheckpointError, FileExistsError) as e:
        if isinstance(e, FileExistsError):
            raise UsageError(f"run folder {str(config.run_dir)!r} already holds a run; continue it with 'mru train "
                             f"--resume {config.run_dir}', or pass --overwrite or another --out-dir") from None
        raise UsageError(f"cannot resume: {e}" if args.resume is not None else str(e)) from None
    if args.quiet or not is_main_process():
        return 0
    if result.test_metric is not None:
        print(f"{result.task} {result.model} seed {result.seed}: test {result.metric_name} "
              f"{result.test_metric:.4f} after {result.steps} steps, {result.wall_time_s:.1f} s -> {result.run_dir}")
    return 0
