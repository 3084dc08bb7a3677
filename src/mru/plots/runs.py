"""The figures of a comparison: per task, the learning curves of every model, and for models with a BMRU
or CMRU the state raster and hysteresis loops of the trained units (written by ``mru compare``)."""

from __future__ import annotations

from pathlib import Path

from .curves import plot_learning_curves
from .hysteresis import mean_thresholds, plot_hysteresis
from .raster import bmru_states, plot_state_raster


def compare_figures(out_dir, tasks, models, seed: int = 0) -> list[Path]:
    """Write the figures of ``mru compare`` under ``out_dir/TASK/``; returns the paths written."""
    from ..registry import model_units
    from ..train.compare import run_folder
    from ..train.loop import load_run

    written = []
    for task in tasks:
        runs = [(m, run_folder(out_dir, task, m, seed)) for m in models]
        runs = [(m, r) for m, r in runs if (r / "metrics.jsonl").is_file()]
        if not runs:
            continue
        written.append(plot_learning_curves([r for _, r in runs], Path(out_dir) / task / "curves.png",
                                            labels=[m for m, _ in runs], title=f"{task}: learning curves"))
        for model, run_dir in runs:
            if not {"bmru", "cmru"} & set(model_units(model)):
                continue
            net, task_obj, _, _ = load_run(run_dir, which="auto", device="cpu")
            x = task_obj.dataset("test", n=16).x
            states = bmru_states(net, x[:1])[0][0]
            stem = model.replace("+", "_")
            written.append(plot_state_raster(states, Path(out_dir) / task / f"raster-{stem}.png",
                                             title=f"{task}, {model}: first BMRU layer states, one test sequence"))
            widths = mean_thresholds(net, x)[0]
            units = widths.argsort(descending=True)[:3].tolist()
            written.append(plot_hysteresis([float(widths[u]) for u in units],
                                           Path(out_dir) / task / f"hysteresis-{stem}.png",
                                           labels=[f"unit {u}" for u in units],
                                           title=f"{task}, {model}: hysteresis loops at mean |beta| on test data"))
    return written
