"""Training throughput of one process against a torchrun job of several, for the same global batch.

    python benchmarks/ddp_scaling.py                                  # latch, bmru+lru, 1 vs 2 processes on CPU
    python benchmarks/ddp_scaling.py --procs 1,2,4 --device cuda      # a multi-GPU node
    python benchmarks/ddp_scaling.py --length 1000 --d-model 128 --batch-size 128 --steps 60

Each configuration runs ``mru train`` (through ``torchrun --standalone`` when there is more than one process)
in a scratch folder and reads the training loop's own clock from metrics.jsonl (start-up and the test
evaluation excluded); on CPU the cores are split evenly between the processes (OMP_NUM_THREADS /
NUMBA_NUM_THREADS). Prints a Markdown table: seconds per step, the speed-up over one process, and the final
validation metric (which should agree across rows: the global batch is the same). docs/scaling.md quotes
its output.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def run(procs: int, args, folder: Path) -> dict:
    cores = args.cores or os.cpu_count() or 1
    threads = max(1, cores // procs)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "NUMBA_NUM_THREADS": str(threads)}
    out = folder / f"p{procs}"
    train = ["train", "--task", args.task, "--model", args.model, "--length", str(args.length),
             "--d-model", str(args.d_model), "--n-layers", str(args.n_layers), "--batch-size", str(args.batch_size),
             "--steps", str(args.steps), "--eval-every", str(args.steps), "--device", args.device,
             "--out-dir", str(out), "--quiet"]
    if procs == 1:
        cmd = [sys.executable, "-m", "mru", *train]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(procs),
               "-m", "mru", *train]
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    summary = json.loads((out / "summary.json").read_text())
    last = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    # the loop's own clock (training steps and the one evaluation), not start-up or the test evaluation
    return {"procs": procs, "threads": threads, "s_per_step": last["elapsed_s"] / summary["steps"],
            "val": summary["final_val"], "metric": summary["metric_name"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--procs", default="1,2", help="process counts to compare (default 1,2)")
    p.add_argument("--task", default="latch")
    p.add_argument("--model", default="bmru+lru")
    p.add_argument("--length", type=int, default=1000)
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--n-layers", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=64, help="the global batch")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--cores", type=int, default=None, help="CPU cores to split between processes (default all)")
    args = p.parse_args()
    procs = [int(x) for x in args.procs.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        rows = [run(n, args, Path(tmp)) for n in procs]
    base = rows[0]["s_per_step"]
    print(f"{args.task}, {args.model}, length {args.length}, d_model {args.d_model}, {args.n_layers} blocks, "
          f"global batch {args.batch_size}, {args.steps} steps, device {args.device}\n")
    print(f"| processes | threads each | s / step | speed-up | val {rows[0]['metric']} |")
    print("|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['procs']} | {r['threads']} | {r['s_per_step']:.4f} | {base / r['s_per_step']:.2f}× | "
              f"{r['val']:.4f} |")


if __name__ == "__main__":
    main()
