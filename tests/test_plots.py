"""Every `mru plot` kind and the comparison figures write a valid PNG; bad arguments get clear errors."""

from __future__ import annotations

import json

import pytest

from mru.cli import main

pytest.importorskip("matplotlib")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TINY = ["--task", "latch", "--length", "20", "--n-train", "64", "--n-val", "32", "--n-test", "32",
        "--d-model", "8", "--n-layers", "1", "--batch-size", "16", "--steps", "4", "--eval-every", "2", "--quiet"]


def assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path} is not a PNG"
    import matplotlib.image

    img = matplotlib.image.imread(str(path))
    assert img.shape[0] > 100 and img.shape[1] > 100


@pytest.fixture(scope="module")
def bmru_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "bmru"
    assert main(["train", *TINY, "--model", "bmru+lru", "--out-dir", str(run_dir)]) == 0
    return run_dir


def test_bifurcation_and_hysteresis_without_a_run(tmp_path):
    assert main(["plot", "bifurcation", "--iterations", "1,10", "--out", str(tmp_path / "b.png")]) == 0
    assert_png(tmp_path / "b.png")
    assert main(["plot", "hysteresis", "--beta", "0.5,1.5", "--out", str(tmp_path / "h.png")]) == 0
    assert_png(tmp_path / "h.png")


def test_plots_of_a_trained_run(tmp_path, bmru_run):
    for kind, extra in (("curves", []), ("raster", ["--length", "60"]), ("hysteresis", ["--units", "0,1"])):
        out = tmp_path / f"{kind}.png"
        assert main(["plot", kind, str(bmru_run), *extra, "--out", str(out)]) == 0
        assert_png(out)


def test_compare_figures(tmp_path, bmru_run):
    from mru.plots import compare_figures
    from mru.train.compare import run_folder

    # lay the trained run out as `mru compare` would
    target = run_folder(tmp_path, "latch", "bmru+lru", 0)
    target.parent.mkdir(parents=True)
    import shutil

    shutil.copytree(bmru_run, target)
    written = compare_figures(tmp_path, ["latch"], ["bmru+lru", "gru"], seed=0)
    assert {p.name for p in written} == {"curves.png", "raster-bmru_lru.png", "hysteresis-bmru_lru.png"}
    for p in written:
        assert_png(p)


def test_learning_curves_skip_a_torn_last_line(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    rows = [{"step": s, "train_loss": 1.0 / (s + 1), "val_metric": s / 10} for s in range(5)]
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + '\n{"step": 5, "tra')
    from mru.plots import read_metrics

    assert len(read_metrics(run)) == 5
    assert main(["plot", "curves", str(run), "--out", str(tmp_path / "c.png")]) == 0
    assert_png(tmp_path / "c.png")


@pytest.mark.parametrize("argv, message", [
    (["plot", "hysteresis"], "give a run folder or --beta"),
    (["plot", "hysteresis", "--beta", "a,b"], "comma-separated finite numbers"),
    (["plot", "bifurcation", "--gain", "0.5"], "--gain must be a finite number > 1"),
    (["plot", "bifurcation", "--iterations", "0"], "positive integers"),
    (["plot", "curves", "/nonexistent/run"], "no metrics file"),
    (["plot", "raster", "/nonexistent/run"], "does not exist"),
])
def test_bad_arguments_get_one_clear_line(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_raster_needs_a_memory_unit(tmp_path, capsys):
    run_dir = tmp_path / "gru"
    assert main(["train", *TINY, "--model", "gru", "--out-dir", str(run_dir)]) == 0
    assert main(["plot", "raster", str(run_dir), "--out", str(tmp_path / "r.png")]) == 2
    assert "no BMRU or CMRU layer" in capsys.readouterr().err
