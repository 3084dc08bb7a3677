"""The ``mru`` command line: every subcommand end to end (in process, tiny sizes), its help, and its errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mru.cli import main

TINY = ["--task", "latch", "--length", "20", "--n-train", "64", "--n-val", "32", "--n-test", "32",
        "--d-model", "8", "--n-layers", "1", "--batch-size", "16", "--steps", "6", "--eval-every", "3",
        "--device", "cpu"]


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_python_dash_m_mru_help_in_a_subprocess():
    proc = subprocess.run([sys.executable, "-m", "mru", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for command in ("train", "eval", "compare", "tasks", "models"):
        assert command in proc.stdout


@pytest.mark.parametrize("command", ["train", "eval", "compare", "tasks", "models"])
def test_every_subcommand_has_help_with_examples(capsys, command):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and f"mru {command}" in out


def test_train_then_eval_then_resume(capsys, tmp_path):
    run_dir = tmp_path / "run"
    code, out, err = run(capsys, "train", *TINY, "--model", "bmru", "--out-dir", run_dir, "--task-option",
                         "write_prob=0.05")
    assert code == 0, err
    assert "test accuracy" in out and (run_dir / "best.json").is_file()
    assert json.loads((run_dir / "config.json").read_text())["task_options"] == {"write_prob": 0.05}

    code, out, err = run(capsys, "eval", run_dir, "--factor", "1,2", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert [r["length"] for r in report["results"]] == [20, 40]
    assert all(0.0 <= r["test_accuracy"] <= 1.0 for r in report["results"])
    summary = json.loads((run_dir / "summary.json").read_text())
    assert report["results"][0]["test_accuracy"] == summary["test_metric"]  # same checkpoint, same test set

    code, out, err = run(capsys, "eval", run_dir, "--length", "30", "--split", "val")
    assert code == 0 and "val accuracy" in out and "length 30" in out

    code, _, err = run(capsys, "train", *TINY, "--out-dir", run_dir)  # the folder holds a run
    assert code == 2 and "--resume" in err
    code, _, err = run(capsys, "train", "--resume", run_dir, "--lr", "0.1")
    assert code == 2 and "cannot change --lr" in err
    code, _, err = run(capsys, "train", "--resume", run_dir, "--quiet")  # already finished: nothing to do
    assert code == 0, err


def test_train_from_a_toml_config_with_flag_overrides(capsys, tmp_path):
    config = tmp_path / "run.toml"
    config.write_text('task = "latch"\nlength = 20\nn_train = 64\nn_val = 32\nn_test = 32\nd_model = 8\n'
                      'n_layers = 1\nbatch_size = 16\nsteps = 100\neval_every = 3\ndevice = "cpu"\n'
                      'model = "lru"\n[unit_options.lru]\nr_min = 0.9\n')
    code, _, err = run(capsys, "train", "--config", config, "--steps", "3", "--out-dir", tmp_path / "r", "-q")
    assert code == 0, err
    saved = json.loads((tmp_path / "r" / "config.json").read_text())
    assert saved["steps"] == 3 and saved["model"] == "lru" and saved["unit_options"] == {"lru": {"r_min": 0.9}}


def test_compare_writes_a_table(capsys, tmp_path):
    out_dir = tmp_path / "cmp"
    args = ["compare", *TINY[2:], "--tasks", "latch", "--models", "bmru,lru", "--seeds", "0,1",
            "--eval-lengths", "1,3", "--eval-tokens", "200", "--out-dir", out_dir]
    code, out, err = run(capsys, *args)
    assert code == 0, err
    results = json.loads((out_dir / "results.json").read_text())
    assert len(results["runs"]) == 4 and results["eval_lengths"] == ["1", "3"]
    assert {r["model"] for r in results["runs"]} == {"bmru", "lru"}
    table = (out_dir / "results.md").read_text()
    assert "| `bmru` |" in table and "3× (T=60)" in table and " ± " in table
    assert (out_dir / "latch" / "bmru" / "seed1" / "summary.json").is_file()

    code, out, err = run(capsys, *args)  # a rerun reuses the finished runs
    assert code == 0 and out.count("reusing") == 4


def test_tasks_and_models_list_names_and_descriptions(capsys):
    code, out, _ = run(capsys, "tasks")
    assert code == 0 and any(line.startswith("latch ") and "flip-flop" in line for line in out.splitlines())
    code, out, _ = run(capsys, "tasks", "latch")
    assert code == 0 and "write_prob" in out and "accuracy" in out
    code, out, _ = run(capsys, "models")
    assert code == 0 and any(line.startswith("bmru+lru ") for line in out.splitlines())


@pytest.mark.parametrize("argv, message", [
    (["train", "--task", "lach"], "Did you mean 'latch'?"),
    (["train", "--model", "bmur"], "Did you mean 'bmru'?"),
    (["train", "--model", "bmru+lrux"], "Did you mean 'lru'?"),
    (["compare", "--models", "bmru,gur"], "Did you mean 'gru'?"),
    (["compare", "--tasks", "lacth"], "Did you mean 'latch'?"),
    (["tasks", "coppy_first"], "Did you mean 'copy_first'?"),
    (["train", "--lr", "-0.1"], "lr must be > 0"),
    (["train", "--steps", "0"], "steps must be a positive integer"),
    (["train", "--batch-size", "-4"], "batch_size must be a positive integer"),
    (["train", "--task-option", "write_prb=0.1"], "did you mean 'write_prob'?"),
    (["train", "--unit-option", "lru.rmin=0.9", "--model", "lru"], "Did you mean 'r_min'?"),
    (["train", "--config", "missing.toml"], "missing.toml"),
    (["eval", "no/such/run"], "does not exist"),
])
def test_user_mistakes_are_one_clear_line(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_eval_of_a_corrupt_checkpoint_names_the_file(capsys, tmp_path):
    run_dir = tmp_path / "run"
    assert run(capsys, "train", *TINY, "--model", "lru", "--out-dir", run_dir, "-q")[0] == 0
    state = json.loads((run_dir / "best.json").read_text())
    tensors = run_dir / state["tensors"]
    tensors.write_bytes(tensors.read_bytes()[:100])
    code, _, err = run(capsys, "eval", run_dir, "--checkpoint", "best")
    assert code == 2 and str(tensors) in err and "truncated" in err


def test_bad_flag_values_are_argparse_errors(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--steps", "many"])
    assert e.value.code == 2
    assert "expected an integer" in capsys.readouterr().err
