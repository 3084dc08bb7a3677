"""mru.train: schedules, config, checkpoints (atomic, verified), exact resume, interruption, evaluation."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal

import pytest
import torch

from mru.tasks import LatchTask
from mru.train import CheckpointError, TrainConfig, evaluate, load_run, train
from mru.train import checkpoint as ckpt
from mru.train.config import read_config_file
from mru.train.loop import METRICS_JSONL, evaluate_data
from mru.train.schedules import EpsSchedule, eps_at, eps_schedule, gamma_at, lr_at

# a run of a few hundred milliseconds: latch at length 20, a 1-block d=8 model, dropout on (so the resume
# tests also check that the RNG state is restored)
TINY = dict(task="latch", length=20, n_train=64, n_val=32, n_test=32, model="bmru", d_model=8, n_layers=1,
            batch_size=16, steps=12, eval_every=4, warmup=2, dropout=0.1, device="cpu")


def tiny(tmp_path, name="run", **kw) -> TrainConfig:
    return TrainConfig(**{**TINY, "out_dir": str(tmp_path / name), **kw})


def rows_without_time(run_dir) -> list[dict]:
    """metrics.jsonl rows without the wall-clock column, the one field a rerun cannot reproduce."""
    rows = [json.loads(line) for line in open(os.path.join(run_dir, METRICS_JSONL))]
    for r in rows:
        r.pop("elapsed_s")
    return rows


def final_tensors(run_dir) -> dict[str, torch.Tensor]:
    return ckpt.load_checkpoint(ckpt.checkpoint_path(run_dir, "last")).tensors


def assert_same_tensors(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The reference run: TINY trained for 12 steps without stopping."""
    path = tmp_path_factory.mktemp("ref")
    config = tiny(path)
    result = train(config, quiet=True)
    return config, result


# -- schedules ------------------------------------------------------------------------------------------------


def test_lr_warmup_then_cosine():
    lrs = [lr_at(s, lr=1.0, min_lr=0.1, warmup=4, total=20) for s in range(20)]
    assert lrs[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert lrs[4] == pytest.approx(1.0)
    assert lrs[-1] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(lrs[4:], lrs[5:]))  # monotone decay after warm-up
    mid = 4 + (20 - 1 - 4) / 2
    assert lr_at(int(mid), 1.0, 0.1, 4, 20) == pytest.approx(0.55, abs=0.06)
    assert lr_at(0, 1.0, 0.1, 0, 1) == 1.0  # a one-step run


def test_eps_hold_linear_anneal_then_end():
    assert [eps_at(s, 1.0, 0.0, hold=2, anneal=4) for s in range(8)] == pytest.approx(
        [1.0, 1.0, 1.0, 0.75, 0.5, 0.25, 0.0, 0.0])
    sched = EpsSchedule(1.0, 0.0, hold=2, anneal=4)
    assert [sched.settled(s) for s in (0, 5, 6, 7)] == [False, False, True, True]
    assert EpsSchedule(0.3, 0.3, 5, 5).settled(0)


def test_eps_schedule_default_is_the_design_recipe_for_bmru_only():
    cfg = TrainConfig(steps=100)
    bmru = eps_schedule(cfg, ("bmru",), 100)
    assert (bmru.start, bmru.end, bmru.hold, bmru.anneal) == (1.0, 0.0, 20, 50)
    assert eps_schedule(cfg, ("bmru", "lru"), 100) is not None
    assert eps_schedule(cfg, ("cmru",), 100) is None  # a CMRU keeps eps = 1
    assert eps_schedule(cfg, ("lru",), 100) is None
    explicit = eps_schedule(TrainConfig(eps_start=0.5, eps_end=0.1, eps_hold=3, eps_anneal_steps=7), ("cmru",), 100)
    assert (explicit.start, explicit.end, explicit.hold, explicit.anneal) == (0.5, 0.1, 3, 7)


def test_gamma_constant_or_geometric():
    assert gamma_at(7, 2.0, None, 10) == 2.0
    g = [gamma_at(s, 1.0, 100.0, 5) for s in range(5)]
    assert g == pytest.approx([1.0, 10 ** 0.5, 10.0, 10 ** 1.5, 100.0])


# -- config ---------------------------------------------------------------------------------------------------


def test_config_from_toml_and_json_with_overrides(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text('task = "latch"\nmodel = "bmru+lru"\nsteps = 300\n[unit_options.lru]\nr_min = 0.9\n')
    cfg = TrainConfig.from_file(toml, steps=50)
    assert (cfg.model, cfg.steps, cfg.unit_options) == ("bmru+lru", 50, {"lru": {"r_min": 0.9}})
    js = tmp_path / "c.json"
    js.write_text(json.dumps({"train": {"lr": 1e-3, "epochs": 2}}))
    cfg = TrainConfig.from_file(js)
    assert cfg.lr == 1e-3 and cfg.total_steps(n_train=640) == 2 * 640 // cfg.batch_size
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg  # round trip


@pytest.mark.parametrize("kwargs, message", [
    ({"stepz": 3}, "Did you mean 'steps'"),
    ({"model": "bmr"}, "Did you mean 'bmru'"),
    ({"task": "lach"}, "Did you mean 'latch'"),
    ({"lr": -1.0}, "lr must be > 0"),
    ({"steps": 0}, "steps must be a positive integer"),
    ({"steps": 10, "epochs": 1}, "not both"),
    ({"eps_start": 1.5}, "eps_start must be in [0, 1]"),
    ({"device": "gpu"}, "device must be one of"),
    ({"unit_options": {"lru": {"rmin": 0.9}}}, "Did you mean 'r_min'"),
])
def test_config_errors_say_what_is_wrong(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        TrainConfig.from_dict(kwargs)


def test_config_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.toml"):
        read_config_file(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("steps = = 3")
    with pytest.raises(ValueError, match="not valid TOML"):
        read_config_file(bad)


# -- checkpoints ----------------------------------------------------------------------------------------------


def _save(run_dir, step, value):
    tensors = {"model.w": torch.full((4, 4), float(value))}
    return ckpt.save_checkpoint(run_dir, "last", tensors, {"step": step, "note": value})


def test_checkpoint_roundtrip_and_old_tensor_files_removed(tmp_path):
    _save(tmp_path, 1, 1.0)
    path = _save(tmp_path, 2, 2.0)
    c = ckpt.load_checkpoint(path)
    assert c.state["step"] == 2 and torch.equal(c.tensors["model.w"], torch.full((4, 4), 2.0))
    assert len(list(tmp_path.glob("last-*.safetensors"))) == 1


def test_truncated_or_corrupt_checkpoint_names_the_file(tmp_path):
    path = _save(tmp_path, 1, 1.0)
    tensor_file = tmp_path / json.loads(path.read_text())["tensors"]
    data = tensor_file.read_bytes()

    tensor_file.write_bytes(data[: len(data) // 2])                      # truncated
    with pytest.raises(CheckpointError, match="truncated") as e:
        ckpt.load_checkpoint(path)
    assert str(tensor_file) in str(e.value)

    tensor_file.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))        # one byte flipped
    with pytest.raises(CheckpointError, match="corrupt") as e:
        ckpt.load_checkpoint(path)
    assert str(tensor_file) in str(e.value)

    tensor_file.unlink()                                                 # missing
    with pytest.raises(CheckpointError, match="missing") as e:
        ckpt.load_checkpoint(path)
    assert str(tensor_file) in str(e.value)

    path.write_text(path.read_text()[:40])                               # truncated JSON
    with pytest.raises(CheckpointError, match="corrupt or truncated") as e:
        ckpt.load_checkpoint(path)
    assert str(path) in str(e.value)

    with pytest.raises(CheckpointError, match="does not exist"):
        ckpt.load_checkpoint(tmp_path / "best.json")


class _DiskFull:
    """A file object that writes half of what it is given, then fails."""

    def __init__(self, f):
        self.f = f

    def write(self, data):
        self.f.write(data[: len(data) // 2])
        raise OSError(28, "No space left on device")

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


@pytest.mark.parametrize("failure", ["tensor file write", "json commit"])
def test_failed_write_leaves_the_old_checkpoint_valid(tmp_path, monkeypatch, failure):
    path = _save(tmp_path, 1, 1.0)
    real_fdopen, real_replace = os.fdopen, os.replace
    if failure == "tensor file write":
        monkeypatch.setattr(ckpt.os, "fdopen", lambda fd, mode: _DiskFull(real_fdopen(fd, mode)))
    else:
        def replace(src, dst):
            if str(dst).endswith(".json"):
                raise OSError(5, "I/O error")
            return real_replace(src, dst)
        monkeypatch.setattr(ckpt.os, "replace", replace)
    with pytest.raises(OSError):
        _save(tmp_path, 2, 2.0)
    monkeypatch.undo()
    c = ckpt.load_checkpoint(path)
    assert c.state["step"] == 1 and torch.equal(c.tensors["model.w"], torch.full((4, 4), 1.0))
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind


# -- the loop -------------------------------------------------------------------------------------------------


def test_run_writes_metrics_checkpoints_and_summary(uninterrupted):
    config, result = uninterrupted
    run = config.run_dir
    assert result.status == "completed" and result.steps == 12
    for name in ("config.json", "metrics.jsonl", "metrics.csv", "last.json", "summary.json"):
        assert (run / name).is_file(), name
    rows = rows_without_time(run)
    assert [r["step"] for r in rows] == [4, 8, 12]
    csv_lines = (run / "metrics.csv").read_text().splitlines()
    assert csv_lines[0].startswith("step,") and len(csv_lines) == 4
    assert 0.0 <= result.test_metric <= 1.0
    assert json.loads((run / "summary.json").read_text())["test_metric"] == result.test_metric


def test_best_checkpoint_only_once_eps_reached_zero(uninterrupted):
    config, result = uninterrupted
    rows = rows_without_time(config.run_dir)
    # 12 steps: eps = 1 for steps 0-1 (20 %), annealed over steps 2-7 (50 %), 0 from step 8 on; each row
    # logs the eps of the last step trained (3, 7, 11), and only the last row has eps = 0
    assert [r["eps"] for r in rows] == pytest.approx([1 - 1 / 6, 1 - 5 / 6, 0.0])
    assert [r["best"] for r in rows] == [False, False, True]
    assert result.best_step == 12
    best = ckpt.read_state(ckpt.checkpoint_path(config.run_dir, "best"))
    assert best["step"] == result.best_step and best["schedule"]["eps"] == 0.0


def test_resume_continues_exactly(tmp_path, uninterrupted):
    ref_config, _ = uninterrupted
    config = tiny(tmp_path)
    stopped = train(config, quiet=True, stop_at=6)  # between two evaluations
    assert stopped.status == "stopped" and stopped.steps == 6
    assert ckpt.read_state(ckpt.checkpoint_path(config.run_dir, "last"))["step"] == 6
    resumed = train(config, resume=True, quiet=True)
    assert resumed.steps == 12
    assert rows_without_time(config.run_dir) == rows_without_time(ref_config.run_dir)
    assert_same_tensors(final_tensors(config.run_dir), final_tensors(ref_config.run_dir))


def test_keyboard_interrupt_saves_a_checkpoint_that_resumes_exactly(tmp_path, monkeypatch, uninterrupted):
    ref_config, _ = uninterrupted
    config = tiny(tmp_path)
    calls = {"n": 0}
    real_loss = LatchTask.loss

    def loss(self, pred, data):
        calls["n"] += 1
        if calls["n"] == 10:  # Ctrl-C during step 10, before its update
            raise KeyboardInterrupt
        return real_loss(self, pred, data)

    monkeypatch.setattr(LatchTask, "loss", loss)
    with pytest.raises(KeyboardInterrupt):
        train(config, quiet=True)
    monkeypatch.undo()
    assert ckpt.read_state(ckpt.checkpoint_path(config.run_dir, "last"))["step"] == 9
    train(config, resume=True, quiet=True)
    assert rows_without_time(config.run_dir) == rows_without_time(ref_config.run_dir)
    assert_same_tensors(final_tensors(config.run_dir), final_tensors(ref_config.run_dir))


@pytest.mark.skipif(os.name != "posix", reason="sends SIGINT to its own process")
def test_ctrl_c_finishes_the_step_then_saves(tmp_path, monkeypatch, uninterrupted):
    """A real SIGINT during step 10: the step completes, "last" is saved at step 10, resume is exact."""
    ref_config, _ = uninterrupted
    config = tiny(tmp_path)
    calls = {"n": 0}
    real_loss = LatchTask.loss

    def loss(self, pred, data):
        calls["n"] += 1
        if calls["n"] == 10:
            os.kill(os.getpid(), signal.SIGINT)
        return real_loss(self, pred, data)

    monkeypatch.setattr(LatchTask, "loss", loss)
    with pytest.raises(KeyboardInterrupt):
        train(config, quiet=True)
    monkeypatch.undo()
    assert ckpt.read_state(ckpt.checkpoint_path(config.run_dir, "last"))["step"] == 10
    train(config, resume=True, quiet=True)
    assert rows_without_time(config.run_dir) == rows_without_time(ref_config.run_dir)
    assert_same_tensors(final_tensors(config.run_dir), final_tensors(ref_config.run_dir))


def test_resume_refuses_a_different_config_and_fresh_runs_refuse_an_existing_folder(tmp_path):
    config = tiny(tmp_path, steps=4)
    train(config, quiet=True, stop_at=2)
    with pytest.raises(CheckpointError, match="lr"):
        train(dataclasses.replace(config, lr=0.1), resume=True, quiet=True)
    with pytest.raises(FileExistsError, match="already holds a run"):
        train(config, quiet=True)
    assert train(config, overwrite=True, quiet=True).steps == 4


def test_early_stop_at_target_metric(tmp_path):
    result = train(tiny(tmp_path, model="lru", target_metric=0.0), quiet=True)  # any accuracy reaches 0
    assert result.status == "target" and result.steps == 4


def test_write_rate_penalty_and_gamma_schedule_run(tmp_path):
    result = train(tiny(tmp_path, model="cmru", write_rate_penalty=0.1, write_rate_norm="l2",
                        gamma_start=1.0, gamma_end=4.0), quiet=True)
    rows = rows_without_time(result.run_dir)
    assert all(0.0 <= r["write_rate"] <= 1.0 for r in rows)
    assert rows[-1]["gamma"] == pytest.approx(4.0) and rows[-1]["eps"] is None
    model, _, _, _ = load_run(result.run_dir, "last")
    assert model.memory_units()[0].gamma == pytest.approx(4.0)


def test_head_option_sets_the_readout_of_sequence_level_tasks(tmp_path):
    from mru.train.loop import build_task, model_config

    config = tiny(tmp_path, task="copy_first", head="mean")
    assert model_config(config, build_task(config)).head == "mean"
    config = tiny(tmp_path, task="copy_first")
    assert model_config(config, build_task(config)).head == "last"
    with pytest.raises(ValueError, match="scored at every step"):
        config = tiny(tmp_path, head="mean")  # latch is read at every step
        model_config(config, build_task(config))
    with pytest.raises(ValueError, match="head"):
        tiny(tmp_path, task="copy_first", head="max")
    result = train(tiny(tmp_path, task="copy_first", head="mean", steps=4), quiet=True)
    model, *_ = load_run(result.run_dir)
    assert model.config.head == "mean"


def test_compare_reuses_a_finished_run_whose_summary_predates_a_config_field(tmp_path):
    """A summary written before a config field existed (here: head) holds its default, so the run is reused."""
    from mru.train.compare import _finished_result

    config = tiny(tmp_path, steps=4)
    train(config, quiet=True)
    path = config.run_dir / "summary.json"
    summary = json.loads(path.read_text())
    del summary["config"]["head"]
    path.write_text(json.dumps(summary))
    assert _finished_result(config.run_dir, config) is not None
    assert _finished_result(config.run_dir, dataclasses.replace(config, lr=1e-3)) is None


def test_evaluate_in_chunks_equals_one_batch(uninterrupted):
    config, _ = uninterrupted
    model, task, _, _ = load_run(config.run_dir)
    data = task.dataset("test", n=24, length=50)
    whole = evaluate_data(model, task, data, batch_size=24)
    chunked = evaluate_data(model, task, data, batch_size=24, max_elements=50 * 8 * 3)  # 3 sequences a chunk
    assert whole == pytest.approx(chunked, abs=1e-12)
    assert math.isfinite(evaluate(model, task, "test", length=200, n=8))


def test_nan_loss_stops_with_a_diagnostic_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    """A NaN loss at step 5 stops the run: the message names the step and the parameters with non-finite
    gradients, no update is applied, and the checkpoint written at step 4 stays valid and loadable."""
    from mru.cli import main
    from mru.train.checkpoint import checkpoint_path, load_checkpoint
    from mru.tasks.latch import LatchTask

    run_dir = tmp_path / "run"
    args = ["train", "--task", "latch", "--length", "20", "--n-train", "64", "--n-val", "32", "--n-test", "32",
            "--d-model", "8", "--n-layers", "1", "--batch-size", "16", "--steps", "10", "--eval-every", "4",
            "--device", "cpu", "--quiet", "--out-dir", str(run_dir)]
    calls = {"n": 0}
    real_loss = LatchTask.loss

    def poisoned(self, pred, data):
        calls["n"] += 1
        loss = real_loss(self, pred, data)
        return loss * float("nan") if calls["n"] == 5 and pred.requires_grad else loss

    monkeypatch.setattr(LatchTask, "loss", poisoned)
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "the loss became nan at step 5" in err
    assert "non-finite gradients: encoder.weight" in err and "last good checkpoint" in err
    c = load_checkpoint(checkpoint_path(run_dir, "last"))
    assert c.state["step"] == 4
    for name, t in c.model_state().items():
        assert torch.isfinite(t).all(), name


def test_sigkill_mid_training_resumes_losing_only_the_work_since_the_last_checkpoint(tmp_path):
    """A run killed with SIGKILL (no handler can run) resumes from its last checkpoint and ends exactly
    where an uninterrupted run ends: same metrics rows, same weights."""
    import signal
    import subprocess
    import sys
    import time

    steps = 400
    killed = tiny(tmp_path, "killed", steps=steps)
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps({k: v for k, v in killed.to_dict().items() if k != "out_dir"}))
    proc = subprocess.Popen([sys.executable, "-m", "mru", "train", "--config", str(config_file), "--quiet",
                             "--out-dir", killed.out_dir], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    last = ckpt.checkpoint_path(killed.run_dir, "last")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if last.is_file() and ckpt.read_state(last)["step"] >= 8:
            break
        time.sleep(0.01)
    assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read().decode()[-500:]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    at_kill = ckpt.read_state(last)["step"]
    assert 8 <= at_kill < steps
    resumed = train(killed, resume=True, quiet=True)
    assert resumed.steps == steps
    reference = train(tiny(tmp_path, "reference", steps=steps), quiet=True)
    assert reference.steps == steps
    assert rows_without_time(killed.run_dir) == rows_without_time(tmp_path / "reference")
    assert_same_tensors(final_tensors(killed.run_dir), final_tensors(tmp_path / "reference"))
