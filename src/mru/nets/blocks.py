"""Building blocks of mru networks (DESIGN §6): the mixer of units side by side, the GLU MLP, and the
pre-norm residual block

    x = x + Dropout(Mixer(Norm(x)))
    x = x + Dropout(GLU-MLP(Norm(x)))

A *hybrid* mixer holds an SSM (LRU: transient, fading memory) and an MRU (BMRU/CMRU: persistent memory)
side by side, so the network has both kinds of memory and stays parallelisable.
Every block runs in two modes with the same results: ``forward`` over a whole sequence, ``step`` on one token.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..registry import make_unit, unknown_name_error

COMBINES = ("sum", "concat")
NORMS = ("layer", "rms")


def make_norm(kind: str, d: int) -> nn.Module:
    if kind == "layer":
        return nn.LayerNorm(d)
    if kind == "rms":
        return nn.RMSNorm(d)
    raise unknown_name_error("norm", kind, NORMS)


class GLUMLP(nn.Module):
    """Gated MLP: W_out (SiLU(W_gate x) * W_up x), hidden width ``ratio * d``."""

    def __init__(self, d: int, ratio: float = 2.0):
        super().__init__()
        hidden = max(1, int(round(ratio * d)))
        self.gate_up = nn.Linear(d, 2 * hidden)
        self.out = nn.Linear(hidden, d)

    def forward(self, x):
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.out(F.silu(gate) * up)


class Mixer(nn.Module):
    """Units side by side on the same input; outputs summed, or concatenated then projected back to d.

    ``unit_kwargs`` maps a unit name to extra constructor arguments, e.g. ``{"lru": {"r_min": 0.9}}``.
    The state is a list with one state tensor per unit.
    """

    def __init__(self, d: int, units: tuple[str, ...], combine: str = "sum", unit_kwargs: dict | None = None):
        super().__init__()
        if combine not in COMBINES:
            raise unknown_name_error("combine mode", combine, COMBINES)
        if not units:
            raise ValueError("a mixer needs at least one unit, got units=()")
        unit_kwargs = unit_kwargs or {}
        self.names = tuple(units)
        self.units = nn.ModuleList(make_unit(u, d, d, **unit_kwargs.get(u, {})) for u in units)
        self.combine = combine
        self.proj = nn.Linear(d * len(units), d) if combine == "concat" and len(units) > 1 else None

    def _combine(self, ys):
        if len(ys) == 1:
            return ys[0]
        if self.combine == "sum":
            return torch.stack(ys).sum(0)
        return self.proj(torch.cat(ys, dim=-1))

    def initial_state(self, batch: int) -> list[torch.Tensor]:
        return [u.initial_state(batch) for u in self.units]

    def forward(self, x, state=None):
        state = state if state is not None else [None] * len(self.units)
        outs = [u(x, s) for u, s in zip(self.units, state)]
        return self._combine([y for y, _ in outs]), [h for _, h in outs]

    def step(self, x, state):
        outs = [u.step(x, s) for u, s in zip(self.units, state)]
        return self._combine([y for y, _ in outs]), [h for _, h in outs]


class Block(nn.Module):
    """Pre-norm residual block: mixer then GLU MLP, each with dropout on the residual branch."""

    def __init__(self, d: int, units: tuple[str, ...], combine: str = "sum", mlp_ratio: float = 2.0,
                 dropout: float = 0.0, norm: str = "layer", unit_kwargs: dict | None = None):
        super().__init__()
        self.norm1, self.norm2 = make_norm(norm, d), make_norm(norm, d)
        self.mixer = Mixer(d, units, combine, unit_kwargs)
        self.mlp = GLUMLP(d, mlp_ratio) if mlp_ratio > 0 else None
        self.drop = nn.Dropout(dropout)

    def initial_state(self, batch: int):
        return self.mixer.initial_state(batch)

    def _mlp(self, x):
        return x if self.mlp is None else x + self.drop(self.mlp(self.norm2(x)))

    def forward(self, x, state=None):
        y, state = self.mixer(self.norm1(x), state)
        return self._mlp(x + self.drop(y)), state

    def step(self, x, state):
        y, state = self.mixer.step(self.norm1(x), state)
        return self._mlp(x + self.drop(y)), state
