"""Backend registry and automatic choice (DESIGN §5).

Order of preference for ``backend="auto"``:
  cuda tensors -> "triton" (fused GPU kernels), else "torch";
  cpu tensors  -> "numba" (compiled loop, parallel over batch x units), else "torch".
Short sequences take "torch", whose plain loop is cheapest there: T <= the preferred backend's
``short_sequence`` (default ``SHORT_SEQUENCE`` = 16; numba's measured break-even is T = 2, one call's
overhead being about that of two torch ops).
The environment variable ``MRU_SCAN_BACKEND`` overrides "auto" (e.g. ``MRU_SCAN_BACKEND=torch``).
"reference" is the autograd-through-a-loop specification (``reference.py``), never chosen automatically.
"""

from __future__ import annotations

import difflib
import importlib
import os

from .backend import ScanBackend
from .torch_ops import SHORT_SEQUENCE, TorchOpsBackend

#: name -> "module:Class" of backends loaded on first use (their packages are optional)
_LAZY = {
    "numba": "mru.scan.numba_cpu:NumbaBackend",
    "triton": "mru.scan.triton_gpu:TritonBackend",
}
_LOADED: dict[str, ScanBackend] = {"torch": TorchOpsBackend()}
_UNAVAILABLE: dict[str, str] = {}

BACKEND_NAMES = ("reference", "torch", *_LAZY)


def _load(name: str) -> ScanBackend | None:
    if name in _LOADED:
        return _LOADED[name]
    if name in _UNAVAILABLE or name not in _LAZY:
        return None
    mod_name, cls_name = _LAZY[name].split(":")
    try:
        backend = getattr(importlib.import_module(mod_name), cls_name)()
        reason = backend.availability()
    except ImportError as e:  # the optional package is not installed
        backend, reason = None, f"{e}"
    if reason is not None:
        _UNAVAILABLE[name] = reason
        return None
    _LOADED[name] = backend
    return backend


def available_backends() -> dict[str, str]:
    """Every backend name with ``"available"`` or the reason it is not."""
    out = {"reference": "available"}
    for name in BACKEND_NAMES[1:]:
        out[name] = "available" if _load(name) is not None else _UNAVAILABLE.get(name, "unavailable")
    return out


def _check_name(name: str) -> None:
    if name not in BACKEND_NAMES and name != "auto":
        close = difflib.get_close_matches(name, [*BACKEND_NAMES, "auto"], n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown scan backend {name!r}; expected one of {('auto', *BACKEND_NAMES)}.{hint}")


def resolve_backend(name: str | None, x) -> ScanBackend | str:
    """The backend object to run on tensor ``x`` (or the string "reference")."""
    if name is None or name == "auto":
        name = os.environ.get("MRU_SCAN_BACKEND", "auto") or "auto"
    _check_name(name)
    if name == "reference":
        return "reference"
    if name != "auto":
        backend = _load(name)
        if backend is None:
            raise RuntimeError(f"scan backend {name!r} is not available: {_UNAVAILABLE.get(name)}")
        if not backend.supports(x):
            raise RuntimeError(
                f"scan backend {name!r} does not run on {x.device.type} tensors; "
                f"use backend='auto' or one of {backend.device_types}"
            )
        return backend
    preferred = "triton" if x.device.type == "cuda" else "numba" if x.device.type == "cpu" else None
    if preferred is not None and x.shape[1] > 1:
        backend = _load(preferred)
        if (backend is not None and backend.supports(x)
                and x.shape[1] > getattr(backend, "short_sequence", SHORT_SEQUENCE)):
            return backend
    return _LOADED["torch"]
