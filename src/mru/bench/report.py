"""Benchmark results as Markdown tables and JSON, with the machine they were measured on."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import torch

TITLES = {
    "scan": "Scans alone (B=8, T=4096, units=128, fp32)",
    "layers": "Layers of width 128 (B=8, T=4096, fp32)",
    "baselines": "Real linear scan vs pure-PyTorch scans (B=16, units=256, fp32), forward+backward",
    "step": "Step-mode latency per token",
    "sweep": "BMRU scan sweep over T and batch x units",
}


def machine() -> dict:
    info = {"python": platform.python_version(), "torch": torch.__version__, "cpu": platform.processor() or
            platform.machine(), "cores": os.cpu_count(), "threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    try:
        import numba

        info["numba"] = numba.__version__
    except ImportError:
        pass
    return info


def table(rows: list[dict]) -> str:
    if not rows:
        return "(no rows)"
    cols = list(dict.fromkeys(k for r in rows for k in r))
    fmt = lambda v: "" if v is None else (f"{v:g}" if isinstance(v, float) else str(v))  # noqa: E731
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def markdown(results: dict[str, list[dict]], command: str, quick: bool = False) -> str:
    m = machine()
    head = [f"Measured with `{command}` on {m['cores']} cores ({m['cpu']}), torch {m['torch']}"
            + (f", numba {m['numba']}" if "numba" in m else "") + (f", GPU {m['gpu']}" if "gpu" in m else "")
            + (" — quick smoke shapes, not the quoted figures" if quick else "") + "."]
    for name, rows in results.items():
        title = TITLES.get(name, name) if not quick else name
        head += ["", f"### {title}", "", table(rows)]
    return "\n".join(head) + "\n"


def write(results, out_dir, command: str, quick: bool = False) -> tuple[Path, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md, js = out / "bench.md", out / "bench.json"
    md.write_text(markdown(results, command, quick), encoding="utf-8")
    js.write_text(json.dumps({"command": command, "machine": machine(), "quick": quick, "results": results},
                             indent=2), encoding="utf-8")
    return md, js
