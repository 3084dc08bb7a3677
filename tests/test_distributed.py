"""Data-parallel training under torchrun (mru.train.distributed): a 2-process gloo job on CPU gives the
results of one process with the same global batch, rank 0 alone writes, and the pieces it rests on (batch
slicing, the loss's global normalisation) are exact."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from mru.tasks import TASKS, get_task
from mru.train import TrainConfig, train
from mru.train import checkpoint as ckpt
from mru.train import distributed
from mru.train.distributed import Dist
from mru.train.loop import METRICS_JSONL

# latch scores only its read steps, so the two halves of a batch hold different numbers of scored elements:
# equal results need the loss normalised by the global count. Batch 9 splits unevenly (5 + 4). No dropout:
# each rank draws its masks from its own copy of the random stream.
BASE = dict(task="latch", length=30, n_train=90, n_val=40, n_test=40, model="bmru+lru", d_model=8, n_layers=1,
            batch_size=9, steps=16, eval_every=4, warmup=2, dropout=0.0, device="cpu")


def torchrun(args: list[str], cwd, timeout: int = 300) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc-per-node 2 -m mru ARGS`` with one thread per process (2 cores in CI)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "mru",
           *args]
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"torchrun failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


def config_file(tmp_path, **kw):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**BASE, **kw}))
    return str(path)


def rows(run_dir) -> list[dict]:
    out = [json.loads(line) for line in open(os.path.join(run_dir, METRICS_JSONL))]
    for r in out:
        r.pop("elapsed_s")
    return out


def assert_close_runs(a, b, tol=1e-4):
    """Same metrics rows (floats to ``tol``, relative) and same final weights (to ``tol``, absolute)."""
    ra, rb = rows(a), rows(b)
    assert len(ra) == len(rb) > 0
    for x, y in zip(ra, rb):
        assert x.keys() == y.keys()
        for k in x:
            if isinstance(x[k], float):
                assert y[k] == pytest.approx(x[k], rel=tol, abs=1e-7), (x["step"], k)
            else:
                assert x[k] == y[k], (x["step"], k)
    wa = ckpt.load_checkpoint(ckpt.checkpoint_path(a, "last")).tensors
    wb = ckpt.load_checkpoint(ckpt.checkpoint_path(b, "last")).tensors
    assert wa.keys() == wb.keys()
    worst = max((wa[k].double() - wb[k].double()).abs().max().item() for k in wa if wa[k].is_floating_point())
    assert worst < tol, worst


# -- the pieces ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("world", [1, 2, 3, 4, 7])
@pytest.mark.parametrize("n", [0, 1, 5, 9, 64, 100])
def test_shards_partition_the_batch_in_order(world, n):
    parts = [list(range(n))[Dist(r, world).shard(n)] for r in range(world)]
    assert sum(parts, []) == list(range(n))
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1


@pytest.mark.parametrize("name", sorted(set(TASKS) - {"smnist", "psmnist"}))
def test_loss_parts_and_count_agree_with_the_loss(name, tmp_path):
    """Per-rank sums divided by the global count are the global mean loss, for every task."""
    if name == "charlm":
        (tmp_path / "text.txt").write_text("the quick brown fox jumps over the lazy dog. " * 40)
        task = get_task(name, path=str(tmp_path / "text.txt"), length=24)
    elif getattr(TASKS[name], "supports_length_override", True):
        task = get_task(name, length=24)
    else:
        task = get_task(name)
    data = task.dataset("train", n=9)
    shape = (9, task.output_size) if task.readout == "last" else (9, data.length, task.output_size)
    pred = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    total, count = task.loss_parts(pred, data)
    assert count == task.loss_count(data)
    assert float(total / count) == pytest.approx(float(task.loss(pred, data)), rel=1e-6)
    halves = [data[:5], data[5:]]
    sums = [task.loss_parts(pred[:5], halves[0])[0], task.loss_parts(pred[5:], halves[1])[0]]
    assert float(sum(sums) / task.loss_count(data)) == pytest.approx(float(task.loss(pred, data)), rel=1e-6)


def test_environment_is_read_and_checked(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert distributed.from_env() == Dist(2, 4, 0)
    assert not distributed.is_main_process()
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(ValueError, match="inconsistent torchrun environment"):
        distributed.from_env()
    monkeypatch.setenv("RANK", "two")
    with pytest.raises(ValueError, match="RANK='two' must be an integer"):
        distributed.from_env()
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name)
    assert distributed.from_env() == distributed.SINGLE and distributed.is_main_process()


def test_a_global_batch_smaller_than_the_job_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(distributed, "setup", lambda device: (Dist(0, 4, 0), torch.device("cpu")))
    config = TrainConfig(**{**BASE, "batch_size": 3, "out_dir": str(tmp_path / "run")})
    with pytest.raises(ValueError, match="global batch .3 sequences. is smaller than the 4 processes"):
        train(config, quiet=True)


# -- 2-process gloo jobs ---------------------------------------------------------------------------------------


def test_two_process_gloo_training_equals_one_process(tmp_path):
    """`torchrun --nproc-per-node 2 -m mru train` = `mru train` with the same global batch: same metrics rows
    (to float rounding), same weights; one log, one set of files."""
    penalty = dict(write_rate_penalty=0.05, write_rate_norm="l2")  # the l2 penalty needs the global rate
    single = train(TrainConfig(**{**BASE, **penalty, "out_dir": str(tmp_path / "single")}), quiet=True)
    proc = torchrun(["train", "--config", config_file(tmp_path, **penalty), "--out-dir", str(tmp_path / "multi")],
                    tmp_path)
    assert proc.stdout.count("latch bmru+lru seed 0: test accuracy") == 1, proc.stdout  # rank 0 alone prints
    assert proc.stdout.count("x 2 processes") == 1
    assert_close_runs(tmp_path / "single", tmp_path / "multi")
    summary = json.loads((tmp_path / "multi" / "summary.json").read_text())
    assert summary["world_size"] == 2 and single.world_size == 1
    assert summary["test_metric"] == pytest.approx(single.test_metric, abs=1e-6)
    assert summary["best_step"] == single.best_step


def test_a_single_process_checkpoint_resumes_under_torchrun(tmp_path):
    """Stop a one-process run half-way, resume it with 2 processes: it ends where an uninterrupted one-process
    run ends (the global batch, data order and schedules do not depend on the number of processes)."""
    penalty = dict(write_rate_penalty=0.05, write_rate_norm="l1")
    train(TrainConfig(**{**BASE, **penalty, "out_dir": str(tmp_path / "whole")}), quiet=True)
    half = TrainConfig(**{**BASE, **penalty, "out_dir": str(tmp_path / "resumed")})
    assert train(half, quiet=True, stop_at=8).status == "stopped"
    torchrun(["train", "--resume", str(tmp_path / "resumed"), "--quiet"], tmp_path)
    assert_close_runs(tmp_path / "whole", tmp_path / "resumed")


def test_compare_under_torchrun_writes_one_table(tmp_path):
    proc = torchrun(["compare", "--models", "bmru,gru", "--tasks", "latch", "--config", config_file(tmp_path),
                     "--steps", "4", "--eval-lengths", "1,2", "--no-plots", "--out-dir", str(tmp_path / "cmp")],
                    tmp_path)
    assert proc.stdout.count("wrote ") == 1, proc.stdout
    results = json.loads((tmp_path / "cmp" / "results.json").read_text())
    assert results["environment"]["processes"] == 2
    assert [r["model"] for r in results["runs"]] == ["bmru", "gru"]
    assert all(0.0 <= r["test"]["2"] <= 1.0 for r in results["runs"])
