"""`mru stream`: token-by-token inference from a file, and a stream continued across two calls."""

from __future__ import annotations

import pytest

from mru.cli import main

TINY = ["--task", "latch", "--length", "20", "--n-train", "64", "--n-val", "32", "--n-test", "32",
        "--d-model", "8", "--n-layers", "1", "--batch-size", "16", "--steps", "4", "--eval-every", "2", "--quiet"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("stream") / "bmru"
    assert main(["train", *TINY, "--model", "bmru+lru", "--out-dir", str(d)]) == 0
    return d


def test_stream_prints_one_prediction_per_step_and_continues_across_calls(tmp_path, run_dir, capsys):
    lines = ["1 0 1", "0 0 0", "0 1 0", "1 0 0", "0 0 0", "0 1 0"]
    whole, first, second = tmp_path / "all.txt", tmp_path / "a.txt", tmp_path / "b.txt"
    whole.write_text("\n".join(lines) + "\n")
    first.write_text("\n".join(lines[:3]) + "\n")
    second.write_text("\n".join(lines[3:]) + "\n")
    assert main(["stream", str(run_dir), "--input", str(whole)]) == 0
    out_whole = capsys.readouterr().out.split()
    assert len(out_whole) == len(lines) and set(out_whole) <= {"0", "1"}
    state = tmp_path / "state.safetensors"
    assert main(["stream", str(run_dir), "--input", str(first), "--state-out", str(state)]) == 0
    out_a = capsys.readouterr().out.split()
    assert main(["stream", str(run_dir), "--input", str(second), "--state-in", str(state)]) == 0
    out_b = capsys.readouterr().out.split()
    assert out_a + out_b == out_whole


@pytest.mark.parametrize("content, message", [
    ("1 0\n", "expected 3 numbers"),
    ("1 x 0\n", "expected 3 numbers"),
])
def test_bad_input_lines_get_one_clear_line(tmp_path, run_dir, capsys, content, message):
    f = tmp_path / "in.txt"
    f.write_text(content)
    assert main(["stream", str(run_dir), "--input", str(f)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_missing_files_get_clear_errors(tmp_path, run_dir, capsys):
    assert main(["stream", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["stream", str(run_dir), "--input", str(tmp_path / "nope.txt")]) == 2
    assert "cannot read" in capsys.readouterr().err
