"""Export a model's one-token step with ``torch.export`` for deployment.

``torch.export`` is used (not ONNX) because it covers every unit as-is: the LRU's complex state and
``nn.GRU``/``nn.LSTM`` steps export without rewriting, and the exported program runs with plain PyTorch.
The exported function is ``(x_t, *state_leaves) -> (y_t, *new_state_leaves)``: the nested streaming state
is flattened with ``torch.utils._pytree``, and its layout is saved next to the program so
:class:`ExportedStepper` can offer the same ``step(x_t, state)`` call as the model.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch
from torch.utils import _pytree as pytree


class _FlatStep(torch.nn.Module):
    """``model.step`` with a flat argument list, as ``torch.export`` wants it."""

    def __init__(self, model, spec):
        super().__init__()
        self.model, self.spec = model, spec

    def forward(self, x, *leaves):
        state = pytree.tree_unflatten(list(leaves), self.spec)
        y, new = self.model.step(x, state)
        return (y, *pytree.tree_flatten(new)[0])


def _example(model, batch: int):
    state = model.initial_state(batch)
    state["count"] = torch.zeros((), dtype=torch.float32)  # a tensor, so the exported graph carries it
    cfg = model.config
    if cfg.vocab_size is not None:
        x = torch.zeros(batch, dtype=torch.long)
    else:
        x = torch.zeros(batch, cfg.input_size, dtype=model.head.weight.dtype)
    return x, state


def export_step(model, batch: int = 1):
    """Export ``model.step`` for a fixed batch size; returns (ExportedProgram, state treespec)."""
    model = model.eval()
    x, state = _example(model, batch)
    leaves, spec = pytree.tree_flatten(state)
    program = torch.export.export(_FlatStep(model, spec), (x, *leaves))
    return program, spec


def save_exported_step(model, path, batch: int = 1) -> Path:
    """Export and save to ``path`` (.pt2) with the state layout and the initial state inside."""
    program, spec = export_step(model, batch)
    _, state = _example(model, batch)
    leaves = [t.detach() for t in pytree.tree_flatten(state)[0]]
    extra = {"mru_state_spec": pytree.treespec_dumps(spec), "mru_batch": json.dumps(batch)}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".pt2")
    os.close(fd)
    try:
        torch.export.save(program, tmp, extra_files={**extra, "mru_initial_state": _leaves_json(leaves)})
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _leaves_json(leaves) -> str:
    return json.dumps([{"dtype": str(t.dtype), "shape": list(t.shape),
                        "data": (torch.view_as_real(t) if t.is_complex() else t).flatten().tolist()}
                       for t in leaves])


def _leaves_from_json(text: str):
    out = []
    for d in json.loads(text):
        dtype = getattr(torch, d["dtype"].replace("torch.", ""))
        if dtype.is_complex:
            real = torch.tensor(d["data"], dtype=torch.float64).view(*d["shape"], 2)
            out.append(torch.view_as_complex(real.to(torch.float32 if dtype == torch.complex64 else torch.float64)))
        else:
            out.append(torch.tensor(d["data"], dtype=dtype).view(d["shape"]))
    return out


class ExportedStepper:
    """A loaded exported step: ``y_t, state = stepper.step(x_t, state)``, ``stepper.initial_state()``."""

    def __init__(self, program, spec, initial_leaves, batch: int):
        self.program, self.spec, self.batch = program, spec, batch
        self._module = program.module()
        self._initial = initial_leaves

    def initial_state(self):
        return pytree.tree_unflatten([t.clone() for t in self._initial], self.spec)

    def step(self, x_t, state=None):
        state = self.initial_state() if state is None else state
        leaves = pytree.tree_flatten(state)[0]
        leaves = [torch.as_tensor(v, dtype=torch.float32) if not isinstance(v, torch.Tensor) else v for v in leaves]
        out = self._module(x_t, *leaves)
        return out[0], pytree.tree_unflatten(list(out[1:]), self.spec)


def load_exported_step(path) -> ExportedStepper:
    """Load a file written by :func:`save_exported_step`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no exported model at {path}")
    extra = {"mru_state_spec": "", "mru_batch": "", "mru_initial_state": ""}
    try:
        program = torch.export.load(str(path), extra_files=extra)
    except Exception as e:  # torch raises several types for a foreign or damaged archive
        raise ValueError(f"{path} is not a readable exported mru model: {e}") from e
    if not extra["mru_state_spec"]:
        raise ValueError(f"{path} is an exported program but not an mru step export (no state layout inside)")
    spec = pytree.treespec_loads(extra["mru_state_spec"])
    return ExportedStepper(program, spec, _leaves_from_json(extra["mru_initial_state"]), json.loads(extra["mru_batch"]))
