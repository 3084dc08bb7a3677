"""Export a model's one-token step with ``torch.export`` for deployment.

``torch.export`` is used (not ONNX) because it covers every unit as-is: the LRU's complex state and
``nn.GRU``/``nn.LSTM`` steps export without rewriting, and the exported program runs with plain PyTorch.
The exported function is ``(x_t, *state_leaves) -> (y_t, *new_state_leaves)``: the nested streaming state
is flattened with ``torch.utils._pytree``, and its layout is saved next to the program so
:class:`ExportedStepper` can offer the same ``step(x_t, state)`` call as the model.

Loading checks the CRC-32 of every member of the archive before ``torch.export.load`` reads it, so a damaged
file raises ``ValueError`` rather than running with silently altered weights; ``ExportedStepper.step`` checks
the input and state against the shapes and dtypes the program was exported for.
"""

from __future__ import annotations

import json
import numbers
import os
import tempfile
import zipfile
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


def _as_path(path, what: str) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{what}: path must be a file path (str or os.PathLike), got {type(path).__name__}")
    return Path(path)


def _check_model(model, batch) -> None:
    from ..nets import SequenceModel

    if not isinstance(model, SequenceModel):
        raise TypeError(f"export_step: model must be a mru SequenceModel, got {type(model).__name__}")
    if isinstance(batch, bool) or not isinstance(batch, numbers.Integral) or batch < 1:
        raise ValueError(f"export_step: batch must be a positive integer, got {batch!r}")


def export_step(model, batch: int = 1):
    """Export ``model.step`` for a fixed batch size; returns (ExportedProgram, state treespec)."""
    _check_model(model, batch)
    model = model.eval()
    x, state = _example(model, batch)
    leaves, spec = pytree.tree_flatten(state)
    program = torch.export.export(_FlatStep(model, spec), (x, *leaves))
    return program, spec


def save_exported_step(model, path, batch: int = 1) -> Path:
    """Export and save to ``path`` (.pt2) with the state layout and the initial state inside."""
    path = _as_path(path, "save_exported_step")
    if path.is_dir():
        raise ValueError(f"save_exported_step: {path} is a folder; give a file path")
    program, spec = export_step(model, batch)
    _, state = _example(model, batch)
    leaves = [t.detach() for t in pytree.tree_flatten(state)[0]]
    extra = {"mru_state_spec": pytree.treespec_dumps(spec), "mru_batch": json.dumps(batch)}
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
        # the shapes and dtypes the program was exported for: x_t, then the state leaves
        names = [s.arg.name for s in program.graph_signature.input_specs if s.kind.name == "USER_INPUT"]
        nodes = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
        self._inputs = [(tuple(nodes[n].meta["val"].shape), nodes[n].meta["val"].dtype) for n in names]
        self.device = nodes[names[0]].meta["val"].device if names else torch.device("cpu")
        if len(self._inputs) != 1 + len(initial_leaves):
            raise ValueError(f"the exported program takes {len(self._inputs)} inputs, but its state layout "
                             f"has {len(initial_leaves)} leaves besides x_t")

    def initial_state(self):
        return pytree.tree_unflatten([t.clone() for t in self._initial], self.spec)

    def _check(self, x_t, leaves) -> None:
        (shape, dtype), specs = self._inputs[0], self._inputs[1:]
        if not isinstance(x_t, torch.Tensor):
            raise TypeError(f"ExportedStepper: x_t must be a tensor of shape {shape}, got {type(x_t).__name__}")
        if tuple(x_t.shape) != shape or x_t.dtype != dtype:
            raise ValueError(f"ExportedStepper: expected x_t of shape {shape} and dtype {dtype} (exported for "
                             f"batch {self.batch}), got shape {tuple(x_t.shape)} and dtype {x_t.dtype}")
        for name, t in (("x_t", x_t), *((f"state tensor {i}", v) for i, v in enumerate(leaves))):
            if isinstance(t, torch.Tensor) and t.device != self.device:
                raise ValueError(f"ExportedStepper: {name} is on {t.device} but the program runs on {self.device}")
        if len(leaves) != len(specs):
            raise ValueError(f"ExportedStepper: state must have the layout of initial_state() "
                             f"({len(specs)} tensors), got {len(leaves)}")
        for i, (leaf, (shape, dtype)) in enumerate(zip(leaves, specs)):
            if not isinstance(leaf, torch.Tensor) or tuple(leaf.shape) != shape or leaf.dtype != dtype:
                got = f"{tuple(leaf.shape)} {leaf.dtype}" if isinstance(leaf, torch.Tensor) else type(leaf).__name__
                raise ValueError(f"ExportedStepper: state tensor {i} must have shape {shape} and dtype {dtype} "
                                 f"(as in initial_state()), got {got}")

    def step(self, x_t, state=None):
        state = self.initial_state() if state is None else state
        leaves, spec = pytree.tree_flatten(state)
        if spec != self.spec:
            raise ValueError("ExportedStepper: state must have the layout of initial_state() (the dict of "
                             "'blocks', 'sum' and 'count' of the exported model)")
        leaves = [torch.as_tensor(v, dtype=torch.float32)
                  if isinstance(v, numbers.Real) and not isinstance(v, bool) else v for v in leaves]
        self._check(x_t, leaves)
        out = self._module(x_t, *leaves)
        return out[0], pytree.tree_unflatten(list(out[1:]), self.spec)


def load_exported_step(path) -> ExportedStepper:
    """Load a file written by :func:`save_exported_step`.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for a file that is not an exported mru
    step, is truncated, or fails a CRC-32 check.
    """
    path = _as_path(path, "load_exported_step")
    if not path.is_file():
        raise FileNotFoundError(f"no exported model at {path}")
    try:  # torch's reader does not check the members' CRC-32: a flipped weight bit would load silently
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except Exception as e:  # zipfile raises several types for a foreign or damaged archive
        raise ValueError(f"{path} is not a readable exported mru model: {type(e).__name__}: {e}") from e
    if bad is not None:
        raise ValueError(f"{path} is corrupt: member {bad!r} fails its CRC-32 check")
    extra = {"mru_state_spec": "", "mru_batch": "", "mru_initial_state": ""}
    try:
        program = torch.export.load(str(path), extra_files=extra)
    except Exception as e:  # torch raises several types for a foreign or damaged archive
        raise ValueError(f"{path} is not a readable exported mru model: {e}") from e
    if not extra["mru_state_spec"]:
        raise ValueError(f"{path} is an exported program but not an mru step export (no state layout inside)")
    try:
        spec = pytree.treespec_loads(extra["mru_state_spec"])
        stepper = ExportedStepper(program, spec, _leaves_from_json(extra["mru_initial_state"]),
                                  json.loads(extra["mru_batch"]))
    except Exception as e:  # a damaged layout: json, pytree and torch raise several types
        raise ValueError(f"{path} holds a damaged mru state layout: {type(e).__name__}: {e}") from e
    return stepper
