"""Save and restore a streaming state (``SequenceModel.step``'s state) across processes.

The state's tensors go to a safetensors file (complex tensors stored as their real view), its layout and
scalars to a JSON sidecar embedded in the safetensors metadata; the file is written atomically.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch
from torch.utils import _pytree as pytree

FORMAT = "mru-stream-state/1"


def _flatten(state):
    leaves, spec = pytree.tree_flatten(state)
    return leaves, spec


def save_stream_state(state, path) -> Path:
    """Write ``state`` (tensors, lists, dicts and Python numbers) to ``path`` atomically."""
    from safetensors.torch import save_file

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
    path = Path(path)
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
    """Read a state written by :func:`save_stream_state`; clear errors for missing or foreign files."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no stream state file at {path}")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            if meta.get("format") != FORMAT:
                raise ValueError(f"{path} is not an mru stream state (format {meta.get('format')!r}, "
                                 f"expected {FORMAT!r})")
            kinds = json.loads(meta["leaves"])
            spec = pytree.treespec_loads(meta["spec"])
            leaves = []
            for i, k in enumerate(kinds):
                if k["kind"] == "scalar":
                    leaves.append(k["value"])
                    continue
                t = f.get_tensor(f"t{i}")
                leaves.append((torch.view_as_complex(t) if k["complex"] else t).to(device))
    except (SafetensorError, json.JSONDecodeError, KeyError) as e:
        raise ValueError(f"{path} is corrupt or not an mru stream state: {e}") from e
    return pytree.tree_unflatten(leaves, spec)
