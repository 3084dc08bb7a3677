"""Deployment (issue 5, "Export and streaming"): a model's one-token step exported with ``torch.export``
gives the same outputs as the Python ``model.step``, and a streaming state saved in one process continues
in another with the same outputs as an uninterrupted stream.

- Exported step vs ``model.step``: every unit alone and the BMRU + LRU hybrid, heads per_step / last / mean,
  float and token inputs, 20 steps (the full product with ``-m slow``, a covering subset by default). The
  comparison is exact (``torch.equal``, bit for bit): the exported program runs the same ATen kernels as
  the eager step on the same machine.
- Across processes: the first half of a stream runs in one subprocess, which saves the state; a second
  subprocess restores it and runs the second half, with the Python model and with the exported step. Both
  match the uninterrupted stream of this process exactly.
- Missing, foreign, truncated and corrupt files raise FileNotFoundError or a ValueError that says which.

``torch.export`` rather than ONNX or TorchScript because it covers every unit as it is written: the LRU's
complex state, ``nn.GRU`` / ``nn.LSTM`` inside a step, and the BMRU's step functions all export without a
rewrite, and the exported program runs with plain PyTorch.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import pytest
import torch
from torch.utils import _pytree as pytree

from mru.deploy import load_exported_step, load_stream_state, save_exported_step, save_stream_state
from mru.nets import ModelConfig, SequenceModel
from mru.registry import UNITS

pytestmark = pytest.mark.filterwarnings(
    # torch.export notes that nn.GRU/LSTM re-assign their flat weight list while tracing; harmless here
    "ignore:The tensor attributes .*_flat_weights.*:UserWarning")

IN, OUT, VOCAB, D_MODEL, BATCH, STEPS = 3, 2, 7, 8, 2, 20
UNIT_SETS = [(u,) for u in sorted(UNITS)] + [("bmru", "lru")]
HEADS = ["per_step", "last", "mean"]


def make_model(units, head="per_step", tokens=False, seed=0, d_model=D_MODEL, n_layers=2):
    torch.manual_seed(seed)
    cfg = ModelConfig(input_size=IN, output_size=OUT, units=units, d_model=d_model, n_layers=n_layers, head=head,
                      vocab_size=VOCAB if tokens else None)
    return SequenceModel(cfg).eval()


def make_inputs(model, steps=STEPS, seed=1):
    """(steps, batch, ...) inputs; scaled so that the BMRUs both write and hold."""
    g = torch.Generator().manual_seed(seed)
    if model.config.vocab_size is not None:
        return torch.randint(0, model.config.vocab_size, (steps, BATCH), generator=g)
    return 3 * torch.randn(steps, BATCH, IN, generator=g)


def leaves(state):
    return [torch.as_tensor(v) for v in pytree.tree_flatten(state)[0]]


# -- exported step == Python step ---------------------------------------------------------------------------

def _export_cases():
    """Every unit set x head x input kind. The head and the input kind touch only the model's ends, the units
    only its mixers, so the default run takes a covering subset — every unit with float and with token
    inputs, every head with both kinds, and every combination for the hybrid — and marks the rest slow."""
    for i, units in enumerate(UNIT_SETS):
        for k, tokens in enumerate((False, True)):
            for h, head in enumerate(HEADS):
                covering = units == ("bmru", "lru") or h == (i + k) % len(HEADS)
                kind = "tokens" if tokens else "float"
                yield pytest.param(units, head, tokens, id=f"{'+'.join(units)}-{head}-{kind}",
                                   marks=() if covering else pytest.mark.slow)


@pytest.mark.parametrize("units, head, tokens", list(_export_cases()))
def test_exported_step_equals_python_step(tmp_path, units, head, tokens):
    model = make_model(units, head, tokens)
    stepper = load_exported_step(save_exported_step(model, tmp_path / "step.pt2", batch=BATCH))
    assert all(torch.equal(a, b) for a, b in zip(leaves(stepper.initial_state()), leaves(model.initial_state(BATCH))))
    py_state, ex_state = None, None
    with torch.no_grad():
        for t, x in enumerate(make_inputs(model)):
            y_py, py_state = model.step(x, py_state)
            y_ex, ex_state = stepper.step(x, ex_state)
            assert torch.equal(y_ex, y_py), f"step {t}: exported output differs by {(y_ex - y_py).abs().max():.3g}"
    for a, b in zip(leaves(ex_state), leaves(py_state)):
        assert torch.equal(a, b.to(a.dtype)), "the final states differ"
    assert int(ex_state["count"]) == py_state["count"] == STEPS


PLAIN_TORCH = r"""
import sys
import torch
program = torch.export.load(sys.argv[1])
args, _ = program.example_inputs          # (x_t, *initial state leaves), as exported
out = program.module()(*args)
assert not any(name == "mru" or name.startswith("mru.") for name in sys.modules), "mru was imported"
torch.save(list(out), sys.argv[2])
print("done")
"""


def test_exported_step_runs_without_mru(tmp_path):
    """The .pt2 file is a plain torch.export archive: a process that never imports mru loads and runs it,
    (x_t, *state_leaves) -> (y_t, *new_state_leaves), with the same results as model.step."""
    model = make_model(("bmru", "lru"), head="mean")
    path = save_exported_step(model, tmp_path / "step.pt2", batch=BATCH)
    proc = subprocess.run([sys.executable, "-c", PLAIN_TORCH, str(path), str(tmp_path / "out.pt")],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0 and "done" in proc.stdout, proc.stderr[-4000:]
    out = torch.load(tmp_path / "out.pt")
    x = torch.zeros(BATCH, IN)
    y, new = model.step(x, model.initial_state(BATCH))
    assert torch.equal(out[0], y)
    assert all(torch.equal(a, b.to(a.dtype)) for a, b in zip(out[1:], leaves(new)))


# -- stream state across processes --------------------------------------------------------------------------

CHILD = r"""
import json, sys
import torch
from mru.deploy import load_exported_step, load_stream_state, save_stream_state
from mru.nets import ModelConfig, SequenceModel

job = json.load(open(sys.argv[1]))
for m in job["models"]:
    model = SequenceModel(ModelConfig.from_dict(m["config"]))
    model.load_state_dict(torch.load(m["weights"]))
    model.eval()
    xs = torch.load(m["inputs"])
    half = xs.shape[0] // 2
    outs = {}
    with torch.no_grad():
        if job["phase"] == "first":
            state = None
            ys = []
            for x in xs[:half]:
                y, state = model.step(x, state)
                ys.append(y)
            save_stream_state(state, m["state"])
            outs["python"] = torch.stack(ys)
        else:
            for kind in ("python", "exported"):
                stepper = model if kind == "python" else load_exported_step(m["export"])
                state = load_stream_state(m["state"])
                ys = []
                for x in xs[half:]:
                    y, state = stepper.step(x, state)
                    ys.append(y)
                outs[kind] = torch.stack(ys)
    torch.save(outs, m["outputs"] + "." + job["phase"])
print("done")
"""


def run_child(job: dict, folder) -> None:
    path = folder / f"job_{job['phase']}.json"
    path.write_text(json.dumps(job))
    proc = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and "done" in proc.stdout, f"child process failed:\n{proc.stderr[-4000:]}"


STREAM_MODELS = {
    # every unit side by side (each kind of state: binary, integer, complex, [h | c]), mean-pooled head
    "all_units_mean": dict(units=tuple(sorted(UNITS)), head="mean", tokens=False),
    "hybrid_tokens_per_step": dict(units=("bmru", "lru"), head="per_step", tokens=True),
}


def test_stream_state_continues_in_another_process(tmp_path):
    """Process A runs the first 10 tokens and saves the state; process B restores it and runs the next 10,
    with the Python model and with the exported step: the outputs equal those of one uninterrupted stream
    in this process, exactly."""
    jobs, expected = [], {}
    for name, spec in STREAM_MODELS.items():
        model = make_model(spec["units"], spec["head"], spec["tokens"])
        xs = make_inputs(model)
        files = {k: str(tmp_path / f"{name}.{k}") for k in ("weights", "inputs", "state", "outputs")}
        files["export"] = str(save_exported_step(model, tmp_path / f"{name}.pt2", batch=BATCH))
        torch.save(model.state_dict(), files["weights"])
        torch.save(xs, files["inputs"])
        jobs.append({"config": model.config.to_dict(), **files})
        state, ys = None, []
        with torch.no_grad():
            for x in xs:
                y, state = model.step(x, state)
                ys.append(y)
        expected[name] = torch.stack(ys)
    run_child({"phase": "first", "models": jobs}, tmp_path)
    run_child({"phase": "second", "models": jobs}, tmp_path)
    half = STEPS // 2
    for name, job in zip(STREAM_MODELS, jobs):
        first = torch.load(job["outputs"] + ".first")
        second = torch.load(job["outputs"] + ".second")
        assert torch.equal(first["python"], expected[name][:half]), f"{name}: first half differs"
        assert torch.equal(second["python"], expected[name][half:]), f"{name}: restored stream differs"
        assert torch.equal(second["exported"], expected[name][half:]), f"{name}: exported restored stream differs"


def test_stream_state_roundtrip_keeps_every_leaf(tmp_path):
    """Complex LRU states, the LSTM's [h | c], integer-valued CMRU states, the pooled sum and the int count
    come back with their dtypes and values."""
    model = make_model(tuple(sorted(UNITS)), head="mean")
    state = None
    for x in make_inputs(model)[:5]:
        _, state = model.step(x, state)
    back = load_stream_state(save_stream_state(state, tmp_path / "s.safetensors"))
    flat, spec = pytree.tree_flatten(state)
    flat_back, spec_back = pytree.tree_flatten(back)
    assert spec == spec_back
    for a, b in zip(flat, flat_back):
        if isinstance(a, torch.Tensor):
            assert a.dtype == b.dtype and torch.equal(a, b)
        else:
            assert type(a) is type(b) and a == b
    assert any(t.is_complex() for t in flat if isinstance(t, torch.Tensor))


def test_saving_is_atomic_and_replaces(tmp_path):
    """A save goes to a temporary file in the same folder and is renamed over the target: the folder holds
    only the target afterwards, and saving again replaces it."""
    model = make_model(("bmru", "lru"), head="mean")
    state = model.initial_state(BATCH)
    path = tmp_path / "s.safetensors"
    save_stream_state(state, path)
    _, state2 = model.step(make_inputs(model)[0], state)
    save_stream_state(state2, path)
    save_exported_step(model, tmp_path / "step.pt2", batch=BATCH)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.safetensors", "step.pt2"]
    assert load_stream_state(path)["count"] == 1


# -- missing, foreign and corrupt files ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("saved")
    model = make_model(("bmru", "lru"), head="mean")
    state = None
    for x in make_inputs(model)[:3]:
        _, state = model.step(x, state)
    return {"folder": folder, "model": model, "state": state,
            "state_path": save_stream_state(state, folder / "stream.safetensors"),
            "export_path": save_exported_step(model, folder / "step.pt2", batch=BATCH)}


def test_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no stream state file at"):
        load_stream_state(tmp_path / "absent.safetensors")
    with pytest.raises(FileNotFoundError, match="no exported model at"):
        load_exported_step(tmp_path / "absent.pt2")
    with pytest.raises(FileNotFoundError):
        load_stream_state(tmp_path)  # a folder is not a state file


def test_foreign_files(saved, tmp_path):
    from safetensors.torch import save_file

    with pytest.raises(ValueError, match="corrupt or not an mru stream state"):
        load_stream_state(saved["export_path"])
    with pytest.raises(ValueError, match="not a readable exported mru model"):
        load_exported_step(saved["state_path"])
    text = tmp_path / "notes.txt"
    text.write_text("a bistable unit\n")
    with pytest.raises(ValueError, match="corrupt or not an mru stream state"):
        load_stream_state(text)
    with pytest.raises(ValueError, match="not a readable exported mru model"):
        load_exported_step(text)
    plain = tmp_path / "weights.safetensors"
    save_file({"w": torch.zeros(3)}, str(plain))
    with pytest.raises(ValueError, match=r"not an mru stream state \(format None, expected 'mru-stream-state/2'\)"):
        load_stream_state(plain)
    old = tmp_path / "old.safetensors"
    save_file({"t0": torch.zeros(3)}, str(old), metadata={"format": "mru-stream-state/1"})
    with pytest.raises(ValueError, match="format 'mru-stream-state/1'"):
        load_stream_state(old)
    other = tmp_path / "other.pt2"
    torch.export.save(torch.export.export(torch.nn.Linear(3, 2), (torch.zeros(1, 3),)), str(other))
    with pytest.raises(ValueError, match="not an mru step export"):
        load_exported_step(other)


def _flip(path, offset, out):
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0x10
    out.write_bytes(bytes(raw))
    return out


def test_corrupt_stream_state(saved, tmp_path):
    """A flipped bit in the tensor data fails the sha256 check; a truncated file fails to parse."""
    raw = saved["state_path"].read_bytes()
    header = 8 + int.from_bytes(raw[:8], "little")
    for offset in (header, len(raw) - 1):  # first and last byte of the tensor data
        with pytest.raises(ValueError, match="does not match its sha256 checksum"):
            load_stream_state(_flip(saved["state_path"], offset, tmp_path / "flipped.safetensors"))
    for cut in (0, 7, header - 1, len(raw) - 1):
        (tmp_path / "cut.safetensors").write_bytes(raw[:cut])
        with pytest.raises(ValueError, match="cut.safetensors is corrupt"):
            load_stream_state(tmp_path / "cut.safetensors")


def test_corrupt_exported_step(saved, tmp_path):
    """A flipped bit inside a weight fails the archive's CRC-32 check (torch's reader would load it); a
    truncated archive is not readable."""
    path = saved["export_path"]
    with zipfile.ZipFile(path) as archive:
        info = next(i for i in archive.infolist() if "/data/weights/weight_" in i.filename and i.file_size >= 16)
    raw = path.read_bytes()
    local = info.header_offset  # local file header: 30 bytes, the name, then an extra field (alignment padding)
    data_start = local + 30 + int.from_bytes(raw[local + 26:local + 28], "little") \
        + int.from_bytes(raw[local + 28:local + 30], "little")
    with pytest.raises(ValueError, match=r"fails its CRC-32 check"):
        load_exported_step(_flip(path, data_start + 5, tmp_path / "flipped.pt2"))
    for cut in (0, 100, len(raw) // 2, len(raw) - 1):
        (tmp_path / "cut.pt2").write_bytes(raw[:cut])
        with pytest.raises(ValueError, match="not a readable exported mru model"):
            load_exported_step(tmp_path / "cut.pt2")


def test_state_of_another_model_is_rejected(saved, tmp_path):
    """A restored state that does not fit the model (another width, another batch, another set of units)
    is refused by step with a ValueError naming the state."""
    state = load_stream_state(saved["state_path"])
    wider = make_model(("bmru", "lru"), head="mean", d_model=16)
    with pytest.raises(ValueError, match="state"):
        wider.step(make_inputs(wider)[0], state)
    other_units = make_model(("gru",), head="mean")
    with pytest.raises(ValueError, match="state"):
        other_units.step(make_inputs(other_units)[0], state)
    model = saved["model"]
    with pytest.raises(ValueError, match="state"):
        model.step(torch.zeros(BATCH + 1, IN), state)
    stepper = load_exported_step(save_exported_step(wider, tmp_path / "wider.pt2", batch=BATCH))
    with pytest.raises(ValueError, match="ExportedStepper: state tensor"):
        stepper.step(make_inputs(wider)[0], state)


def test_bad_paths_and_devices(saved, tmp_path):
    with pytest.raises(ValueError, match="device must name a torch device"):
        load_stream_state(saved["state_path"], device="tpu7")
    with pytest.raises(TypeError, match="path must be a file path"):
        load_stream_state(None)
    with pytest.raises(TypeError, match="path must be a file path"):
        load_exported_step(3)
    with pytest.raises(ValueError, match="is a folder"):
        save_stream_state(saved["state"], tmp_path)
    with pytest.raises(ValueError, match="is a folder"):
        save_exported_step(saved["model"], tmp_path)
    with pytest.raises(ValueError, match="batch must be a positive integer"):
        save_exported_step(saved["model"], tmp_path / "x.pt2", batch=0)
    with pytest.raises(TypeError, match="model must be a mru SequenceModel"):
        save_exported_step(torch.nn.Linear(2, 2), tmp_path / "x.pt2")
