"""Regenerate docs/results.md: every claim of the tasks issue, measured with ``mru compare``.

    python benchmarks/results.py                       # everything, 3 seeds (hours on a 2-core CPU; resumable)
    python benchmarks/results.py --only latch,digits   # some experiments; the page is rebuilt from all on disk
    python benchmarks/results.py --write-only          # rebuild docs/results.md from the runs already done

Each experiment is one :func:`mru.train.compare.compare` call (models × tasks × seeds, the settings below)
into ``OUT_DIR/<experiment>``; rerunning reuses finished runs and resumes interrupted ones. The page then
gets, per experiment, the command line that reproduces it, a table of mean ± std over seeds with the
training time per run, and the claim's target checked against the measured means. Figures (learning curves,
a BMRU state raster, hysteresis loops) are copied to docs/figures/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Experiment:
    name: str
    title: str
    tasks: list[str]
    models: list[str]
    config: dict = field(default_factory=dict)   # TrainConfig fields shared by the runs
    eval_lengths: tuple = (1,)
    note: str = ""                                # what the settings are and why

    def command(self, seeds: str) -> str:
        flags = []
        for k, v in self.config.items():
            if k == "unit_options":
                flags += [f"--unit-option {u}.{o}={x}" for u, opts in v.items() for o, x in opts.items()]
            elif k == "task_options":
                flags += [f"--task-option {o}={x}" for o, x in v.items()]
            else:
                flags.append(f"--{k.replace('_', '-')} {v}")
        ev = f" --eval-lengths {','.join(map(str, self.eval_lengths))}" if self.eval_lengths != (1,) else ""
        return (f"mru compare --models {','.join(self.models)} --tasks {','.join(self.tasks)} --seeds {seeds}"
                f"{ev} {' '.join(flags)} --out-dir runs/results/{self.name}").replace("  ", " ")


EXPERIMENTS = [
    Experiment("latch", "Latch (flip-flop): persistent memory at 1×, 10× and 100× the training length",
               ["latch"], ["bmru", "cmru", "lru", "mingru", "bmru+lru", "gru"], eval_lengths=(1, 10, 100),
               note="Defaults (the README's first command, with minGRU added): trained at T = 100, 300 steps, "
                    "d_model 32, 2 blocks, batch 64, lr 3e-3. Above 1× the test set is cut to about 100,000 "
                    "time steps."),
    Experiment("copy_first_T100", "Copy-first-input, T = 100", ["copy_first"], ["bmru", "bmru+lru", "gru", "lstm"],
               {"length": 100}),
    Experiment("copy_first_T1000", "Copy-first-input, T = 1,000", ["copy_first"],
               ["bmru", "bmru+lru", "gru", "lstm"], {"length": 1000, "n_train": 1000, "n_val": 200, "n_test": 200}),
    Experiment("copy_first_T10000", "Copy-first-input, T = 10,000", ["copy_first"],
               ["bmru", "bmru+lru", "gru", "lstm"],
               {"length": 10000, "n_train": 512, "n_val": 128, "n_test": 128, "batch_size": 32, "steps": 200,
                "eval_every": 50},
               note="Shorter run (200 steps of batch 32) to fit the CPU budget: GRU and LSTM step through "
                    "10,000 steps sequentially."),
    Experiment("denoising", "Denoising", ["denoising"], ["bmru", "lru", "bmru+lru", "gru"]),
    Experiment("mode_filter", "Mode-switched filtering: hybrid against its parts", ["mode_filter"],
               ["bmru", "lru", "bmru+lru", "gru"]),
    Experiment("digits", "Sequential digits, plain and permuted", ["digits", "digits_permuted"],
               ["bmru", "lru", "bmru+lru"], {"steps": 1500},
               note="The task as specified: one pixel per step, nothing else, classified from the last step."),
    Experiment("digits_position", "Sequential digits with pixel positions, mean readout",
               ["digits", "digits_permuted"], ["bmru", "lru", "bmru+lru"],
               {"steps": 1500, "d_model": 64, "head": "mean", "task_options": {"position": "true"}},
               note="Each step also gives the row and column of its pixel (task option `position`), and the "
                    "classifier reads the mean over the steps (`--head mean`); d_model 64. A network of "
                    "overwriting binary units cannot count steps, so without positions it cannot tell which row "
                    "a pixel is in, and the background pixels that end most images rewrite most of its units "
                    "just before a last-step readout. Every model gets the same inputs and readout."),
]

def _mean(summary, model, factor="1"):
    entry = summary.get(model, {}).get(factor) or {}
    return entry.get("mean")


#: the claims of the issue: (experiment, task, text, check(summary of the task, trivial baseline) -> measured
#: text and whether it is met), checked on the means over seeds
TARGETS = [
    ("latch", "latch", "BMRU ≥ 99.9 % at 100×", lambda s, b: (_mean(s, "bmru", "100"), _mean(s, "bmru", "100") >= 0.999)),
    ("latch", "latch", "CMRU ≥ 99.9 % at 100×", lambda s, b: (_mean(s, "cmru", "100"), _mean(s, "cmru", "100") >= 0.999)),
    ("copy_first_T1000", "copy_first", "BMRU MSE ≤ 0.1 × Var(x_1) at T = 1,000",
     lambda s, b: (_mean(s, "bmru"), _mean(s, "bmru") <= 0.1 * b)),
    ("copy_first_T10000", "copy_first", "BMRU MSE ≤ 0.1 × Var(x_1) at T = 10,000",
     lambda s, b: (_mean(s, "bmru"), _mean(s, "bmru") <= 0.1 * b)),
    ("mode_filter", "mode_filter", "hybrid MSE below BMRU's and LRU's",
     lambda s, b: (_mean(s, "bmru+lru"), _mean(s, "bmru+lru") < min(_mean(s, "bmru"), _mean(s, "lru")))),
]
for _exp in ("digits", "digits_position"):
    for _task in ("digits", "digits_permuted"):
        TARGETS += [
            (_exp, _task, f"{_task}: BMRU within 3 points of LRU",
             lambda s, b: (_mean(s, "bmru") - _mean(s, "lru"), _mean(s, "bmru") >= _mean(s, "lru") - 0.03)),
            (_exp, _task, f"{_task}: hybrid at least as good as LRU",
             lambda s, b: (_mean(s, "bmru+lru") - _mean(s, "lru"), _mean(s, "bmru+lru") >= _mean(s, "lru"))),
        ]


def run_experiments(names, seeds, out_root: Path, verbose: bool) -> None:
    from mru.train import TrainConfig
    from mru.train.compare import compare

    for exp in EXPERIMENTS:
        if names and exp.name not in names:
            continue
        print(f"== {exp.name}: {exp.command(','.join(map(str, seeds)))}", flush=True)
        t0 = time.perf_counter()
        compare(exp.models, exp.tasks, seeds, base=replace(TrainConfig(), **exp.config),
                out_dir=out_root / exp.name, eval_lengths=exp.eval_lengths, verbose=verbose)
        print(f"== {exp.name} done in {time.perf_counter() - t0:.0f} s", flush=True)


def _cell(entry) -> str:
    if entry is None or entry.get("mean") is None:
        return "—"
    if entry.get("std") is None:
        return f"{entry['mean']:.4f}"
    return f"{entry['mean']:.4f} ± {entry['std']:.4f}"


def _baseline(task: str, length: int):
    from mru.tasks import get_task

    try:
        return get_task(task, length=length).baseline_metric()
    except Exception:  # noqa: BLE001 - a task that cannot be built here has no baseline line
        return None


def write_page(out_root: Path, page: Path, figures: Path) -> None:
    from mru.plots import compare_figures

    lines = ["# Results", "",
             "What mru measures of the claims in DESIGN §7 (issue \"Tasks, training and the `mru` CLI\"). This page "
             "is written by `python benchmarks/results.py` from the runs in `runs/results/`; each section gives "
             "the `mru compare` command that reproduces its table on its own. Test metrics are means ± std over "
             "the seeds; training time is per run.", ""]
    machine = None
    for exp in EXPERIMENTS:
        path = out_root / exp.name / "results.json"
        if not path.is_file():
            lines += [f"## {exp.title}", "", f"Not run yet: `{exp.command('0,1,2')}`", ""]
            continue
        res = json.loads(path.read_text())
        env = res["environment"]
        machine = machine or env
        seeds = ",".join(map(str, res["seeds"]))
        lines += [f"## {exp.title}", "", f"`{exp.command(seeds)}`", ""]
        if exp.note:
            lines += [exp.note, ""]
        lines.append(f"Seeds {seeds}; {res['total_time_s'] / 60:.0f} min in all (runs reused from earlier "
                     f"invocations count at their own training time below).")
        lines.append("")
        for task in res["tasks"]:
            runs = [r for r in res["runs"] if r["task"] == task]
            if not runs:
                continue
            first = runs[0]
            T = first["train_length"]
            better = "higher" if first["higher_is_better"] else "lower"
            base = _baseline(task, T)
            base_txt = f"; a trivial predictor scores {base:.4f}" if base is not None else ""
            lines += [f"**{task}**: test {first['metric_name']} ({better} is better), trained at T = {T}{base_txt}.",
                      ""]
            factors = res["eval_lengths"]
            head = ["model"] + [f"{f}× (T={round(float(f) * T)})" for f in factors] + ["train time / run"]
            lines += ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
            for model, entry in res["summary"].get(task, {}).items():
                cells = [f"`{model}`"] + [_cell(entry.get(f)) for f in factors]
                cells.append(f"{entry['train_time_s']:.0f} s")
                lines.append("| " + " | ".join(cells) + " |")
            lines.append("")
        for (e, task, text, check) in TARGETS:
            if e != exp.name or task not in res["summary"]:
                continue
            try:
                value, met = check(res["summary"][task], _baseline(task, res["runs"][0]["train_length"]))
            except (TypeError, KeyError):  # a model of the claim was not run
                continue
            lines += [f"Target {text}: measured {value:+.4f} — **{'met' if met else 'missed'}**.", ""]
        for task in res["tasks"]:
            written = compare_figures(out_root / exp.name, [task], exp.models, seed=res["seeds"][0])
            shown = []
            for src in written:
                dst = figures / f"{exp.name}-{src.name}" if exp.name != task else figures / f"{task}-{src.name}"
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dst)
                shown.append(f"[{src.stem}](figures/{dst.name})")
            if shown:
                lines += [f"Figures ({task}, seed {res['seeds'][0]}): " + ", ".join(shown) + ".", ""]
    if machine:
        lines += ["## Machine", "",
                  f"torch {machine['torch']}, Python {machine['python']}, {machine['device']} "
                  f"({machine['threads']} threads), {platform.machine()}, {os.cpu_count()} cores.", ""]
    page.write_text("\n".join(lines))
    print(f"wrote {page}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default="", help="comma-separated experiment names: " +
                   ", ".join(e.name for e in EXPERIMENTS))
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--out-dir", default="runs/results")
    p.add_argument("--page", default=str(ROOT / "docs" / "results.md"))
    p.add_argument("--write-only", action="store_true", help="only rebuild the page from runs on disk")
    p.add_argument("--verbose", "-v", action="store_true")
    args = p.parse_args()
    names = [n for n in args.only.split(",") if n]
    unknown = set(names) - {e.name for e in EXPERIMENTS}
    if unknown:
        sys.exit(f"unknown experiment(s) {sorted(unknown)}; choose from {[e.name for e in EXPERIMENTS]}")
    out_root = Path(args.out_dir)
    if not args.write_only:
        run_experiments(names, [int(s) for s in args.seeds.split(",")], out_root, args.verbose)
    write_page(out_root, Path(args.page), Path(args.page).parent / "figures")


if __name__ == "__main__":
    main()
