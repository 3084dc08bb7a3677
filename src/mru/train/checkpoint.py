"""Checkpoints that resume exactly and never leave a half-written file behind.

A checkpoint named ``NAME`` (the trainer keeps ``last`` and ``best``) in a run folder is two files:

    NAME-<step>-<hash>.safetensors   every tensor: the model ("model.*") and the optimizer state ("optim.*")
    NAME.json                        everything else: step, config, RNG states (base64), schedule position,
                                     optimizer hyper-parameters, metrics-history position, loop counters,
                                     and the name, size and sha256 of the tensor file

Writes are atomic: each file goes to a temporary file in the same folder, is fsync'ed, then ``os.replace``d
into place. The tensor file's name carries the step and a hash of its bytes, so it never overwrites the one
the current ``NAME.json`` points to with different bytes; replacing ``NAME.json`` is the single commit point,
after which older tensor files are removed.
A failure at any moment leaves the previous checkpoint complete and valid.

Loading verifies the size and sha256 of the tensor file and raises :class:`CheckpointError`, naming the
file, for anything missing, truncated or corrupt.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

FORMAT = "mru-checkpoint"
VERSION = 1


class CheckpointError(Exception):
    """A checkpoint is missing, truncated, corrupt or incompatible; the message names the file."""


@dataclass
class Checkpoint:
    """A loaded checkpoint: the tensors (by name) and the JSON state."""

    tensors: dict[str, torch.Tensor]
    state: dict
    path: Path  # the NAME.json file

    def model_state(self) -> dict[str, torch.Tensor]:
        return {k[len("model."):]: v for k, v in self.tensors.items() if k.startswith("model.")}

    def optimizer_state(self) -> dict:
        """The optimizer's ``state_dict`` rebuilt from the flattened tensors and the JSON metadata."""
        meta = self.state["optimizer"]
        state: dict[int, dict] = {int(pid): dict(values) for pid, values in meta["state"].items()}
        for key, value in self.tensors.items():
            if key.startswith("optim."):
                _, pid, name = key.split(".", 2)
                state.setdefault(int(pid), {})[name] = value
        groups = [dict(g) for g in meta["param_groups"]]
        for g in groups:
            for k, v in g.items():
                if isinstance(v, list) and k != "params":
                    g[k] = tuple(v)  # e.g. betas
        return {"state": state, "param_groups": groups}


# -- packing -----------------------------------------------------------------------------------------------


def pack(model: torch.nn.Module, optimizer: torch.optim.Optimizer | None) -> tuple[dict[str, torch.Tensor], dict]:
    """Flatten the model and optimizer into named CPU tensors plus JSON-able optimizer metadata."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    meta: dict = {"state": {}, "param_groups": []}
    if optimizer is not None:
        sd = optimizer.state_dict()
        for pid, values in sd["state"].items():
            for name, value in values.items():
                if isinstance(value, torch.Tensor):
                    tensors[f"optim.{pid}.{name}"] = value
                else:
                    meta["state"].setdefault(str(pid), {})[name] = value
        meta["param_groups"] = sd["param_groups"]
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    return tensors, meta


def capture_rng() -> dict[str, object]:
    """Torch's CPU (and, once initialised, CUDA) generator states, as tensors."""
    state: dict[str, object] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def rng_state(captured: dict | None = None) -> dict:
    """Generator states (``captured`` by :func:`capture_rng`, default now), base64-encoded for JSON."""
    captured = capture_rng() if captured is None else captured
    state = {"torch": _b64(captured["torch"])}
    if "cuda" in captured:
        state["cuda"] = [_b64(s) for s in captured["cuda"]]
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(_unb64(state["torch"]))
    if "cuda" in state and torch.cuda.is_available():
        states = [_unb64(s) for s in state["cuda"]]
        if len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states)


def _b64(t: torch.Tensor) -> str:
    return base64.b64encode(t.cpu().numpy().tobytes()).decode("ascii")


def _unb64(s: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(s)), dtype=torch.uint8).clone()


# -- writing -----------------------------------------------------------------------------------------------


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: temporary file in the same folder, fsync, ``os.replace``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def serialize(tensors: dict[str, torch.Tensor]) -> bytes:
    from safetensors.torch import save

    return save(tensors, metadata={"format": FORMAT})


def save_checkpoint(run_dir: str | os.PathLike, name: str, tensors: dict[str, torch.Tensor], state: dict,
                    blob: bytes | None = None) -> Path:
    """Write checkpoint ``name`` into ``run_dir`` (see the module docstring); returns the JSON path.

    ``blob`` is ``serialize(tensors)`` when the caller already has it (to write the same tensors twice)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    blob = serialize(tensors) if blob is None else blob
    step = int(state.get("step", 0))
    digest = hashlib.sha256(blob).hexdigest()
    tensor_file = f"{name}-{step:08d}-{digest[:8]}.safetensors"
    atomic_write(run_dir / tensor_file, blob)
    doc = {
        "format": FORMAT,
        "version": VERSION,
        **state,
        "tensors": tensor_file,
        "tensor_bytes": len(blob),
        "sha256": digest,
    }
    json_path = run_dir / f"{name}.json"
    atomic_write(json_path, (json.dumps(doc, indent=1, allow_nan=True) + "\n").encode())  # commit point
    for old in run_dir.glob(f"{name}-*.safetensors"):
        if old.name != tensor_file:
            old.unlink(missing_ok=True)
    return json_path


def remove_checkpoint(run_dir: str | os.PathLike, name: str) -> None:
    """Delete checkpoint ``name`` of ``run_dir`` (its JSON file first, then its tensor files)."""
    run_dir = Path(run_dir)
    checkpoint_path(run_dir, name).unlink(missing_ok=True)
    for old in run_dir.glob(f"{name}-*.safetensors"):
        old.unlink(missing_ok=True)


# -- reading -----------------------------------------------------------------------------------------------


def checkpoint_path(run_dir: str | os.PathLike, name: str) -> Path:
    return Path(run_dir) / f"{name}.json"


def read_state(json_path: str | os.PathLike) -> dict:
    """The JSON state of a checkpoint, checked for format; raises CheckpointError naming the file."""
    json_path = Path(json_path)
    if not json_path.is_file():
        raise CheckpointError(f"checkpoint {str(json_path)!r} does not exist")
    try:
        state = json.loads(json_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"checkpoint {str(json_path)!r} is corrupt or truncated (invalid JSON: {e})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{str(json_path)!r} is not an mru checkpoint (no 'format': '{FORMAT}' entry)")
    if state.get("version") != VERSION:
        raise CheckpointError(f"checkpoint {str(json_path)!r} has format version {state.get('version')!r}; "
                              f"this mru reads version {VERSION}")
    for key in ("tensors", "sha256", "tensor_bytes", "step"):
        if key not in state:
            raise CheckpointError(f"checkpoint {str(json_path)!r} is incomplete: no {key!r} entry")
    tensors = state["tensors"]
    if not isinstance(tensors, str) or not tensors or Path(tensors).name != tensors or tensors in (".", ".."):
        # a file name in the run folder, never a path elsewhere
        raise CheckpointError(f"checkpoint {str(json_path)!r} is corrupt: 'tensors' must name a file in its "
                              f"folder, got {tensors!r}")
    for key in ("tensor_bytes", "step"):
        if isinstance(state[key], bool) or not isinstance(state[key], int) or state[key] < 0:
            raise CheckpointError(f"checkpoint {str(json_path)!r} is corrupt: {key!r} must be a non-negative "
                                  f"integer, got {state[key]!r}")
    if not isinstance(state["sha256"], str):
        raise CheckpointError(f"checkpoint {str(json_path)!r} is corrupt: 'sha256' must be a string, "
                              f"got {state['sha256']!r}")
    return state


def load_checkpoint(json_path: str | os.PathLike) -> Checkpoint:
    """Load and verify a checkpoint (its JSON file and the tensor file it names)."""
    json_path = Path(json_path)
    state = read_state(json_path)
    tensor_path = json_path.parent / state["tensors"]
    if not tensor_path.is_file():
        raise CheckpointError(f"checkpoint tensors {str(tensor_path)!r} are missing (named by {str(json_path)!r})")
    blob = tensor_path.read_bytes()
    if len(blob) != state["tensor_bytes"]:
        raise CheckpointError(f"checkpoint tensors {str(tensor_path)!r} are truncated or corrupt: "
                              f"{len(blob)} bytes, expected {state['tensor_bytes']}")
    digest = hashlib.sha256(blob).hexdigest()
    if digest != state["sha256"]:
        raise CheckpointError(f"checkpoint tensors {str(tensor_path)!r} are corrupt: sha256 {digest[:16]}..., "
                              f"expected {state['sha256'][:16]}...")
    from safetensors.torch import load

    try:
        tensors = load(blob)
    except Exception as e:  # the checksum matched, so this is a file written by something else
        raise CheckpointError(f"checkpoint tensors {str(tensor_path)!r} cannot be read: {e}") from None
    return Checkpoint(tensors, state, json_path)
