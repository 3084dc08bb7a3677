"""Models × tasks × seeds: one training run per cell, then a table of test metrics (mean ± std over seeds).

    results = compare(["bmru", "lru", "gru"], ["latch"], seeds=[0, 1, 2], base=TrainConfig(steps=300),
                      out_dir="runs/compare", eval_lengths=(1, 10, 100))

Each run lives in ``out_dir/<task>/<model>/seed<seed>`` (a normal run folder: ``mru eval`` works on it).
The test metric is measured at the training length (1×) and at the other multiples in ``eval_lengths`` — for
the latch task, 10× and 100× the training length test persistent memory (DESIGN §7). Written to
``out_dir/results.md`` (Markdown tables, one per task) and ``out_dir/results.json`` (every run and the
aggregates). Re-running the same command reuses finished runs and resumes interrupted ones.
"""

from __future__ import annotations

import dataclasses
import json
import math
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from . import checkpoint as ckpt
from .distributed import is_main_process
from .config import DEFAULT_STEPS, TrainConfig
from .loop import SUMMARY, evaluate, load_run, train

RESULTS_MD = "results.md"
RESULTS_JSON = "results.json"

#: at lengths other than 1×, evaluate on about this many time steps in total (at least MIN_EVAL_SEQUENCES
#: sequences), so that 100× evaluations cost about as much as 1× ones
EVAL_TOKENS = 100_000
MIN_EVAL_SEQUENCES = 16


def run_folder(out_dir, task: str, model: str, seed: int) -> Path:
    return Path(out_dir) / task / model.replace("+", "_") / f"seed{seed}"


def eval_sequences(n_test: int, train_length: int, length: int, budget: int = EVAL_TOKENS) -> int:
    """Test sequences at ``length``: the 1× test size, reduced to a budget of time steps for longer lengths."""
    if length <= train_length:
        return n_test
    return min(n_test, max(MIN_EVAL_SEQUENCES, math.ceil(budget / length)))


def _format_factor(f: float) -> str:
    return f"{f:g}×"


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def _cell(mean, std, digits=4) -> str:
    if mean is None:
        return "—"
    return f"{mean:.{digits}f}" if std is None else f"{mean:.{digits}f} ± {std:.{digits}f}"


def _finished_result(run_dir: Path, config: TrainConfig) -> dict | None:
    """The summary of a finished run in ``run_dir`` with this config, else None."""
    path = run_dir / SUMMARY
    if not path.is_file():
        return None
    try:
        summary = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    try:  # a summary written before a config field existed holds that field's default
        saved = TrainConfig.from_dict(summary.get("config") or {}).to_dict()
    except (ValueError, TypeError):
        return None
    return summary if saved == config.to_dict() else None


def compare(models: list[str], tasks: list[str], seeds: list[int], base: TrainConfig | None = None,
            out_dir="runs/compare", eval_lengths=(1,), eval_tokens: int = EVAL_TOKENS, overwrite: bool = False,
            quiet: bool = False, progress: bool | None = None, verbose: bool = False) -> dict:
    """Train every (task, model, seed) on ``base`` with those three fields replaced, evaluate each at the
    multiples of its training length in ``eval_lengths``, and write results.md / results.json to ``out_dir``.

    A task whose data are absent (e.g. MNIST without its files) is skipped and noted in the table. Finished
    runs with the same config are reused and interrupted ones resumed, unless ``overwrite``. Returns the
    content of results.json. Under torchrun every rank calls it, each run is data-parallel, and rank 0
    alone prints and writes.
    """
    from ..tasks import DataNotFoundError

    base = base or TrainConfig()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    factors = sorted({float(f) for f in eval_lengths} | {1.0})
    main = is_main_process()
    quiet = quiet or not main
    say = (lambda msg: None) if quiet else (lambda msg: print(msg, flush=True))
    cells = [(t, m, s) for t in tasks for m in models for s in seeds]
    runs, skipped = [], {}
    t0 = time.perf_counter()
    for i, (task_name, model, seed) in enumerate(cells, 1):
        if task_name in skipped:
            continue
        run_dir = run_folder(out_dir, task_name, model, seed)
        config = dataclasses.replace(base, task=task_name, model=model, seed=seed, out_dir=str(run_dir))
        head = f"[{i}/{len(cells)}] {task_name} {model} seed {seed}:"
        try:
            summary = None if overwrite else _finished_result(run_dir, config)
            if summary is None:
                resume = not overwrite and ckpt.checkpoint_path(run_dir, "last").is_file()
                show_bar = (sys.stderr.isatty() and not quiet) if progress is None else progress
                result = train(config, resume=resume, overwrite=True, quiet=quiet or not verbose, progress=show_bar)
                summary = result.to_dict()
            else:
                say(f"{head} reusing the finished run in {run_dir}")
        except DataNotFoundError as e:
            skipped[task_name] = str(e).splitlines()[0]
            say(f"{head} skipped ({skipped[task_name]})")
            continue
        lengths = {"1": summary["test_metric"]}
        eval_time = 0.0
        if any(f != 1.0 for f in factors):
            t_eval = time.perf_counter()
            model_obj, task, cfg, _ = load_run(run_dir, "auto", device=config.device)
            n_test = cfg.n_test or task.default_sizes["test"]
            for f in factors:
                if f == 1.0:
                    continue
                if not getattr(task, "supports_length_override", True):
                    lengths[f"{f:g}"] = None
                    continue
                length = max(2, round(f * task.length))
                lengths[f"{f:g}"] = evaluate(model_obj, task, "test", length=length,
                                             n=eval_sequences(n_test, task.length, length, eval_tokens),
                                             batch_size=cfg.eval_batch_size)
            eval_time = time.perf_counter() - t_eval
        run = {"task": task_name, "model": model, "seed": seed, "run_dir": str(run_dir),
               "metric_name": summary["metric_name"], "higher_is_better": summary["higher_is_better"],
               "train_length": summary["train_length"], "status": summary["status"], "steps": summary["steps"],
               "best_step": summary["best_step"], "best_val": summary["best_val"],
               "train_time_s": summary["wall_time_s"], "eval_time_s": round(eval_time, 3), "test": lengths,
               "world_size": summary.get("world_size", 1)}
        runs.append(run)
        scores = "  ".join(f"{k}×: {v:.4f}" for k, v in lengths.items() if v is not None)
        say(f"{head} {summary['metric_name']} {scores}  ({summary['wall_time_s']:.0f} s train, {eval_time:.0f} s eval)")

    results = {
        "models": list(models), "tasks": list(tasks), "seeds": list(seeds),
        "eval_lengths": [f"{f:g}" for f in factors],
        "eval_tokens": eval_tokens,
        "base_config": {k: v for k, v in base.to_dict().items() if k not in ("task", "model", "seed", "out_dir")},
        "environment": {"torch": torch.__version__, "python": platform.python_version(),
                        "device": _device_name(base), "threads": torch.get_num_threads(),
                        "processes": max([r.get("world_size", 1) for r in runs] or [1])},
        "total_time_s": round(time.perf_counter() - t0, 1),
        "runs": runs,
        "skipped": skipped,
        "summary": _aggregate(runs, models, tasks, factors),
    }
    if main:
        ckpt.atomic_write(out_dir / RESULTS_JSON, (json.dumps(results, indent=1) + "\n").encode())
        ckpt.atomic_write(out_dir / RESULTS_MD, markdown(results).encode())
    say(f"wrote {out_dir / RESULTS_MD} and {out_dir / RESULTS_JSON} ({results['total_time_s']:.0f} s in total)")
    return results


def _device_name(config: TrainConfig) -> str:
    from .loop import resolve_device

    device = resolve_device(config.device)
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def _aggregate(runs: list[dict], models, tasks, factors) -> dict:
    out: dict = {}
    for task in tasks:
        for model in models:
            rs = [r for r in runs if r["task"] == task and r["model"] == model]
            if not rs:
                continue
            entry = {"n_seeds": len(rs), "train_time_s": statistics.fmean(r["train_time_s"] for r in rs)}
            for f in factors:
                key = f"{f:g}"
                mean, std = _mean_std([r["test"].get(key) for r in rs])
                entry[key] = {"mean": mean, "std": std}
            out.setdefault(task, {})[model] = entry
    return out


def markdown(results: dict) -> str:
    """results.md: one table per task — rows models, columns the test metric at each length multiple."""
    lines = ["# mru compare", ""]
    env = results["environment"]
    procs = f", {env['processes']} processes" if env.get("processes", 1) > 1 else ""
    seeds = results["seeds"]
    cfg = results["base_config"]
    lines.append(f"Test metric, mean ± std over seeds {', '.join(map(str, seeds))}; torch {env['torch']} on "
                 f"{env['device']} ({env['threads']} threads{procs}); total {results['total_time_s']:.0f} s.")
    shown = {k: cfg.get(k) for k in ("steps", "epochs", "d_model", "n_layers", "batch_size", "lr", "length")}
    if shown["steps"] is None and shown["epochs"] is None:
        shown["steps"] = DEFAULT_STEPS
    lines.append("Config: " + ", ".join(f"{k}={v}" for k, v in shown.items() if v is not None) + ".")
    lines.append("")
    factors = results["eval_lengths"]
    if len(factors) > 1:
        lines += [f"Above 1×, the test set is cut to about {results['eval_tokens']:,} time steps "
                  f"(at least {MIN_EVAL_SEQUENCES} sequences) so that long evaluations stay cheap.", ""]
    for task in results["tasks"]:
        if task in results["skipped"]:
            lines += [f"## {task}", "", f"Skipped: {results['skipped'][task]}", ""]
            continue
        rows = results["summary"].get(task, {})
        task_runs = [r for r in results["runs"] if r["task"] == task]
        if not task_runs:
            continue
        first = task_runs[0]
        better = "higher" if first["higher_is_better"] else "lower"
        T = first["train_length"]
        lines += [f"## {task}", "",
                  f"Test {first['metric_name']} ({better} is better), trained at length {T}.", ""]
        head = ["model"] + [f"{f}× (T={round(float(f) * T)})" for f in factors] + ["train time / run"]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|")
        for model, entry in rows.items():
            cells = [f"`{model}`"] + [_cell(entry[f]["mean"], entry[f]["std"]) for f in factors]
            cells.append(f"{entry['train_time_s']:.0f} s")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)
