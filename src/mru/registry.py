"""Units and models by name. A typo gets an error that names the closest match.

    make_unit("bmru", 16, 32)          -> BMRU(16, 32)
    model_units("bmru+lru")            -> ("bmru", "lru")       the hybrid of DESIGN §6
"""

from __future__ import annotations

import difflib

from .units import BMRU, BRC, CMRU, GRU, LRU, LSTM, NBRC, MinGRU, RecurrentUnit

#: unit name -> (class, one-line description)
UNITS: dict[str, tuple[type[RecurrentUnit], str]] = {
    "bmru": (BMRU, "bistable memory recurrent unit: binary state, persistent memory, parallel scan"),
    "cmru": (CMRU, "cumulative memory recurrent unit (BMRU with eps=1): integer state, no gradient blocking"),
    "lru": (LRU, "linear recurrent unit: complex diagonal SSM, fading memory, parallel scan"),
    "mingru": (MinGRU, "minGRU: gated linear recurrence, parallel scan"),
    "brc": (BRC, "bistable recurrent cell: nonlinear, sequential"),
    "nbrc": (NBRC, "neuromodulated bistable recurrent cell: nonlinear, sequential"),
    "gru": (GRU, "torch.nn.GRU behind the mru interface"),
    "lstm": (LSTM, "torch.nn.LSTM behind the mru interface"),
}

#: named models (sequence models whose mixers hold these units side by side); any "a+b" of unit names works too
MODELS: dict[str, tuple[tuple[str, ...], str]] = {
    **{name: ((name,), desc) for name, (_, desc) in UNITS.items()},
    "bmru+lru": (("bmru", "lru"), "hybrid: BMRU (persistent memory) beside LRU (transient memory) in each block"),
    "cmru+lru": (("cmru", "lru"), "hybrid: CMRU beside LRU in each block"),
}


def unknown_name_error(kind: str, name: str, choices) -> ValueError:
    """A ValueError for an unknown name that suggests the closest known one and lists all."""
    choices = sorted(choices)
    close = difflib.get_close_matches(str(name), choices, n=1, cutoff=0.5)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return ValueError(f"unknown {kind} {name!r}.{hint} Known {kind}s: {', '.join(choices)}")


def unit_class(name: str) -> type[RecurrentUnit]:
    key = str(name).lower()
    if key not in UNITS:
        raise unknown_name_error("unit", name, UNITS)
    return UNITS[key][0]


def make_unit(name: str, input_size: int, hidden_size: int, **kwargs) -> RecurrentUnit:
    """Build a unit by name, e.g. ``make_unit("lru", 16, 64, r_min=0.9)``."""
    return unit_class(name)(input_size, hidden_size, **kwargs)


def model_units(name: str) -> tuple[str, ...]:
    """The unit names of a named model: a key of MODELS, or unit names joined by '+' (e.g. 'bmru+lru')."""
    key = str(name).lower()
    if key in MODELS:
        return MODELS[key][0]
    parts = tuple(p.strip() for p in key.split("+"))
    if len(parts) > 1 and all(p in UNITS for p in parts):
        return parts
    bad = next((p for p in parts if p not in UNITS), key) if len(parts) > 1 else key
    if len(parts) > 1:
        raise unknown_name_error("unit", bad, UNITS)
    raise unknown_name_error("model", name, MODELS)
