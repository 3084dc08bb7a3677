"""Learning curves from the metrics files that ``mru train`` writes (``metrics.jsonl`` in each run folder)."""

from __future__ import annotations

import json
from pathlib import Path

from .figure import new_figure, save_png


def read_metrics(run_dir) -> list[dict]:
    """The rows of ``RUN_DIR/metrics.jsonl`` (one JSON object per line; a torn line, or a line that is not a
    JSON object, is skipped). A file that is not UTF-8 text is a ValueError naming it."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"no metrics file {path}: is {run_dir} a run folder written by 'mru train'?")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"metrics file {path} is not UTF-8 text ({e}): is it a file written by 'mru train'?") from None
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a run killed mid-write leaves at most one torn line
        if isinstance(row, dict):  # anything else is not a row of metrics: skipped like a torn line
            rows.append(row)
    return rows


def _series(rows, key):
    pts = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float)) and "step" in r]
    return [p[0] for p in pts], [p[1] for p in pts]


def plot_learning_curves(run_dirs, out, labels=None, title: str | None = None):
    """Two panels: every ``*loss*`` series, and every validation metric series, against step."""
    fig, (ax_loss, ax_metric) = new_figure(2)
    labels = labels or [Path(r).name for r in run_dirs]
    for run_dir, label in zip(run_dirs, labels):
        rows = read_metrics(run_dir)
        keys = sorted({k for r in rows for k, v in r.items() if isinstance(v, (int, float)) and k != "step"})
        for key in keys:
            xs, ys = _series(rows, key)
            if not xs:
                continue
            if "loss" in key:
                ax_loss.plot(xs, ys, label=f"{label} {key}")
            elif key.startswith("val") or key.startswith("metric"):
                ax_metric.plot(xs, ys, marker=".", label=f"{label} {key}")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("loss")
    ax_loss.set_yscale("log")
    ax_metric.set_xlabel("step")
    ax_metric.set_ylabel("validation metric")
    for ax in (ax_loss, ax_metric):
        if ax.lines:
            ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    return save_png(fig, out)
