"""Save and restore a streaming state (``SequenceModel.step``'s state) across processes.

The state's tensors go to a safetensors file (complex tensors stored as their real view), its layout and
scalars to a JSON sidecar embedded in the safetensors metadata, with a sha256 of the layout and of every
tensor's bytes; the file is written atomically. Loading verifies the checksum, so a damaged file raises
``ValueError`` instead of restoring a silently different state.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import torch
from torch.utils import _pytree as pytree

FORMAT = "mru-stream-state/2"


def _flatten(state):
    leaves, spec = pytree.tree_flatten(state)
    return leaves, spec


def _as_path(path, what: str) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{what}: path must be a file path (str or os.PathLike), got {type(path).__name__}")
    return Path(path)


def _digest(spec: str, leaves: str, tensors: dict[str, torch.Tensor]) -> str:
    """sha256 of the layout and of each tensor's name, dtype, shape and bytes."""
    h = hashlib.sha256()
    for part in (FORMAT, spec, leaves):
        h.update(part.encode())
        h.update(b"\0")
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        h.update(f"{name}|{t.dtype}|{list(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def save_stream_state(state, path) -> Path:
    """Write ``state`` (tensors, lists, dicts and Python numbers) to ``path`` atomically."""
    from safetensors.torch import save_file

    path = _as_path(path, "save_stream_state")
    if path.is_dir():
        raise ValueError(f"save_stream_state: {path} is a folder; give a file path")
    leaves, spec = _flatten(state)
    tensors, kinds = {}, []
    for i, leaf in enumerate(leaves):
        if isinstance(leaf, torch.Tensor):
            t = leaf.detach().cpu()
            kinds.append({"kind": "tensor", "complex": t.is_complex()})
            tensors[f"t{i}"] = (torch.view_as_real(t) if t.is_complex() else t).contiguous()
        elif isinstance(leaf, (int, float, bool)) or leaf is None:
            kinds.append({"kind": "scalar", "value": leaf})
        else:
            raise TypeError(f"cannot save a stream state leaf of type {type(leaf).__name__}")
    meta = {"format": FORMAT, "spec": pytree.treespec_dumps(spec), "leaves": json.dumps(kinds)}
    meta["sha256"] = _digest(meta["spec"], meta["leaves"], tensors)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=meta)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load_stream_state(path, device: str | torch.device = "cpu"):
    """Read a state written by :func:`save_stream_state`.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for a file that is not an mru stream
    state, is truncated, or fails its checksum.
    """
    from safetensors import safe_open

    path = _as_path(path, "load_stream_state")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"load_stream_state: device must name a torch device such as 'cpu', got {device!r}") from e
    if not path.is_file():
        raise FileNotFoundError(f"no stream state file at {path}")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            if meta.get("format") != FORMAT:
                raise ValueError(f"{path} is not an mru stream state (format {meta.get('format')!r}, "
                                 f"expected {FORMAT!r})")
            tensors = {name: f.get_tensor(name) for name in f.keys()}
        if _digest(meta["spec"], meta["leaves"], tensors) != meta["sha256"]:
            raise ValueError(f"{path} is corrupt: its content does not match its sha256 checksum")
        kinds = json.loads(meta["leaves"])
        spec = pytree.treespec_loads(meta["spec"])
        leaves = []
        for i, k in enumerate(kinds):
            if k["kind"] == "scalar":
                leaves.append(k["value"])
                continue
            t = tensors[f"t{i}"]
            leaves.append(torch.view_as_complex(t) if k["complex"] else t)
        state = pytree.tree_unflatten(leaves, spec)
    except ValueError as e:
        if str(e).startswith(str(path)):
            raise
        raise ValueError(f"{path} is corrupt or not an mru stream state: {e}") from e
    except Exception as e:  # safetensors and pytree raise several types for a damaged or foreign file
        raise ValueError(f"{path} is corrupt or not an mru stream state: {type(e).__name__}: {e}") from e
    if device.type == "cpu":
        return state
    try:
        return pytree.tree_map(lambda v: v.to(device) if isinstance(v, torch.Tensor) else v, state)
    except (RuntimeError, AssertionError) as e:  # e.g. a CUDA device on a machine without one
        raise ValueError(f"load_stream_state: cannot move the state to device {device}: {e}") from e
