"""``SequenceModel`` — encoder, N pre-norm residual blocks of units side by side, decoder (DESIGN §6).

    encoder Linear(input -> d_model)  (or Embedding for token inputs)
    N x Block(units, e.g. ("bmru", "lru") for the hybrid)
    final Norm, then a head: per-step (regression / token logits) or pooled (last step / mean) for
    classification

Two execution modes with identical results: ``forward(x)`` in parallel over the sequence (training), and
``step(x_t, state)`` carrying an explicit state (streaming inference, O(1) per token). For pooled heads,
``step`` returns the prediction the model would make if the sequence ended at that token.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from ..registry import model_units, unknown_name_error
from .blocks import COMBINES, NORMS, Block, make_norm

HEADS = ("per_step", "last", "mean")


@dataclass
class ModelConfig:
    """Everything that defines a SequenceModel; plain data, so it round-trips through JSON."""

    input_size: int
    output_size: int
    units: tuple[str, ...] = ("bmru",)
    d_model: int = 64
    n_layers: int = 2
    combine: str = "sum"
    mlp_ratio: float = 2.0
    dropout: float = 0.0
    norm: str = "layer"
    head: str = "per_step"
    vocab_size: int | None = None           # token inputs: Embedding(vocab_size, d_model) instead of Linear
    unit_kwargs: dict = field(default_factory=dict)   # e.g. {"lru": {"r_min": 0.9, "r_max": 0.999}}

    def __post_init__(self):
        if isinstance(self.units, str):
            self.units = model_units(self.units)
        if not isinstance(self.units, (tuple, list)) or not all(isinstance(u, str) for u in self.units):
            raise TypeError(f"ModelConfig.units must be a model name such as 'bmru+lru' or a sequence of unit "
                            f"names such as ('bmru', 'lru'), got {self.units!r}")
        if not self.units:
            raise ValueError("ModelConfig.units is empty: a mixer needs at least one unit, got units=()")
        self.units = tuple(u.lower() for u in self.units)
        for u in self.units:
            if len(model_units(u)) != 1:  # model_units raises with a suggestion on an unknown name
                raise ValueError(f"ModelConfig.units entries are single unit names, got {u!r}; pass "
                                 f"units={u!r} or units={model_units(u)!r} for the units side by side")
        for name in ("input_size", "output_size", "d_model", "n_layers"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"ModelConfig.{name} must be a positive integer, got {v!r}")
        if self.vocab_size is not None and (isinstance(self.vocab_size, bool) or not isinstance(self.vocab_size, int)
                                            or self.vocab_size < 1):
            raise ValueError(f"ModelConfig.vocab_size must be a positive integer or None, got {self.vocab_size!r}")
        if self.head not in HEADS:
            raise unknown_name_error("head", self.head, HEADS)
        if self.combine not in COMBINES:
            raise unknown_name_error("combine mode", self.combine, COMBINES)
        if self.norm not in NORMS:
            raise unknown_name_error("norm", self.norm, NORMS)
        for name in ("dropout", "mlp_ratio"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Real):
                raise TypeError(f"ModelConfig.{name} must be a real number, got {v!r}")
        if not (0.0 <= self.dropout < 1.0):
            raise ValueError(f"ModelConfig.dropout must be in [0, 1), got {self.dropout}")
        if not (self.mlp_ratio >= 0 and math.isfinite(self.mlp_ratio)):
            raise ValueError(f"ModelConfig.mlp_ratio must be >= 0 (0 disables the MLP), got {self.mlp_ratio}")
        kw = self.unit_kwargs
        if not isinstance(kw, Mapping) or not all(isinstance(v, Mapping) for v in kw.values()):
            raise TypeError(f"ModelConfig.unit_kwargs must map unit names to dicts of constructor arguments, "
                            f"e.g. {{'lru': {{'r_min': 0.9}}}}, got {self.unit_kwargs!r}")
        unknown = set(self.unit_kwargs) - set(self.units)
        if unknown:
            raise ValueError(f"ModelConfig.unit_kwargs names units not in the model: {sorted(unknown)} "
                             f"(units are {list(self.units)})")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["units"] = list(self.units)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        if not isinstance(d, Mapping):
            raise TypeError(f"a model config must be a dict, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown model config keys {sorted(unknown, key=str)}; known: {sorted(names)}")
        return cls(**d)


class SequenceModel(nn.Module):
    """A stack of residual blocks whose mixers hold the configured units (DESIGN §6).

    Example (the BMRU + LRU hybrid):
        >>> cfg = ModelConfig(input_size=3, output_size=2, units=("bmru", "lru"), d_model=32, n_layers=2)
        >>> model = SequenceModel(cfg)
        >>> y = model(torch.randn(8, 100, 3))                       # (8, 100, 2)
        >>> state = model.initial_state(8)
        >>> y_t, state = model.step(torch.randn(8, 3), state)       # (8, 2)
    """

    def __init__(self, config: ModelConfig | None = None, **kwargs):
        super().__init__()
        if isinstance(config, Mapping):
            config = ModelConfig.from_dict(config)
        if config is None:
            config = ModelConfig(**kwargs)
        elif not isinstance(config, ModelConfig):
            raise TypeError(f"SequenceModel: config must be a ModelConfig or a dict, got {type(config).__name__}")
        elif kwargs:
            config = dataclasses.replace(config, **kwargs)
        self.config = cfg = config
        self.tokens = cfg.vocab_size is not None
        self.encoder = nn.Embedding(cfg.vocab_size, cfg.d_model) if self.tokens else nn.Linear(cfg.input_size, cfg.d_model)
        self.blocks = nn.ModuleList(
            Block(cfg.d_model, cfg.units, cfg.combine, cfg.mlp_ratio, cfg.dropout, cfg.norm, cfg.unit_kwargs)
            for _ in range(cfg.n_layers)
        )
        self.norm = make_norm(cfg.norm, cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.output_size)

    # -- inputs ------------------------------------------------------------------------------------
    def _check(self, x, step: bool):
        want = ("(batch,)" if step else "(batch, time)") if self.tokens else \
            (f"(batch, {self.config.input_size})" if step else f"(batch, time, {self.config.input_size})")
        rank = (1 if step else 2) if self.tokens else (2 if step else 3)
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"SequenceModel: expected a tensor of shape {want}, got {type(x).__name__}")
        if x.dim() != rank or (not self.tokens and x.shape[-1] != self.config.input_size):
            raise ValueError(f"SequenceModel: expected input of shape {want}, got {tuple(x.shape)}")
        if self.tokens and x.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
            raise TypeError(f"SequenceModel: token inputs must be integer tensors, got {x.dtype}")
        p = self.encoder.weight
        if not self.tokens and x.dtype != p.dtype:
            raise TypeError(f"SequenceModel: expected floating-point input of the parameters' dtype {p.dtype}, "
                            f"got {x.dtype}; cast the input or the model (e.g. model.to({x.dtype}))")
        if x.device != p.device:
            raise ValueError(f"SequenceModel: input is on {x.device} but the parameters are on {p.device}")
        if not step and x.shape[1] == 0:
            raise ValueError(f"SequenceModel: input has an empty time axis (shape {tuple(x.shape)})")
        if x.shape[0] == 0:
            raise ValueError(f"SequenceModel: input has an empty batch (shape {tuple(x.shape)}); "
                             f"expected at least one sequence")
        # (a data-dependent check: skipped while torch.export traces the step, which has no concrete values)
        if self.tokens and x.numel() and not torch.compiler.is_exporting() and (
                x.min() < 0 or x.max() >= self.config.vocab_size):
            raise ValueError(f"SequenceModel: token ids must lie in [0, vocab_size={self.config.vocab_size}), "
                             f"got values in [{x.min().item()}, {x.max().item()}]")

    def _check_state(self, state, batch: int) -> None:
        """``state`` has the layout of ``initial_state(batch)``; the units check their own state tensors."""
        if not isinstance(state, Mapping) or not {"blocks", "sum", "count"} <= set(state):
            raise TypeError(f"SequenceModel: state must be the dict returned by initial_state, step or "
                            f"forward(..., return_state=True), with keys 'blocks', 'sum', 'count'; got "
                            f"{type(state).__name__}{sorted(state, key=str) if isinstance(state, Mapping) else ''}")
        blocks, n_units = state["blocks"], len(self.config.units)
        if not (isinstance(blocks, (list, tuple)) and len(blocks) == len(self.blocks)
                and all(isinstance(b, (list, tuple)) and len(b) == n_units for b in blocks)):
            raise ValueError(f"SequenceModel: state['blocks'] must hold {len(self.blocks)} lists (one per block) "
                             f"of {n_units} unit states (one per unit of {list(self.config.units)})")
        for b in blocks:
            for u in b:
                if not isinstance(u, torch.Tensor):
                    raise TypeError(f"SequenceModel: state['blocks'] must hold unit state tensors, "
                                    f"got {type(u).__name__}")
        pool = state["sum"]
        if not isinstance(pool, torch.Tensor) or tuple(pool.shape) != (batch, self.config.d_model):
            got = tuple(pool.shape) if isinstance(pool, torch.Tensor) else type(pool).__name__
            raise ValueError(f"SequenceModel: state['sum'] must be a tensor of shape (batch, d_model) = "
                             f"{(batch, self.config.d_model)}, got {got}")
        count = state["count"]
        if isinstance(count, torch.Tensor):
            if count.dim() != 0:
                raise ValueError(f"SequenceModel: state['count'] must be a number, got shape {tuple(count.shape)}")
        elif isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"SequenceModel: state['count'] must be the number of tokens seen (an int >= 0), "
                             f"got {count!r}")

    # -- state -------------------------------------------------------------------------------------
    def initial_state(self, batch: int) -> dict:
        """The streaming state: one list of unit states per block, plus running pools for pooled heads."""
        p = self.head.weight
        return {
            "blocks": [b.initial_state(batch) for b in self.blocks],
            "sum": p.new_zeros(batch, self.config.d_model),
            "count": 0,
        }

    # -- execution ---------------------------------------------------------------------------------
    def features(self, x, state=None):
        """Final-norm features (B, T, d_model) and the per-block unit states."""
        self._check(x, step=False)
        if state is not None:
            self._check_state(state, x.shape[0])
        h = self.encoder(x.long() if self.tokens else x)
        states = []
        for i, block in enumerate(self.blocks):
            h, s = block(h, None if state is None else state["blocks"][i])
            states.append(s)
        return self.norm(h), states

    def forward(self, x, state: dict | None = None, return_state: bool = False):
        """Parallel over the sequence. Returns the head output — (B, T, out) for ``head="per_step"``,
        (B, out) for pooled heads — and, with ``return_state=True``, the state to continue from."""
        feats, states = self.features(x, state)
        pool_sum = None
        if self.config.head == "per_step":
            out = self.head(feats)
        elif self.config.head == "last":
            out = self.head(feats[:, -1])
        else:
            prev_sum = 0 if state is None else state["sum"]
            prev_n = 0 if state is None else state["count"]
            pool_sum = prev_sum + feats.sum(1)
            out = self.head(pool_sum / (prev_n + feats.shape[1]))
        if not return_state:
            return out
        count = (0 if state is None else state["count"]) + feats.shape[1]
        if pool_sum is None:
            pool_sum = (0 if state is None else state["sum"]) + feats.sum(1)
        return out, {"blocks": states, "sum": pool_sum, "count": count}

    def step(self, x_t, state: dict | None = None):
        """One token: (B, input_size) floats or (B,) tokens -> (B, out) and the new state."""
        self._check(x_t, step=True)
        if state is None:
            state = self.initial_state(x_t.shape[0])
        else:
            self._check_state(state, x_t.shape[0])
        h = self.encoder(x_t.long() if self.tokens else x_t)
        new = []
        for block, s in zip(self.blocks, state["blocks"]):
            h, s = block.step(h, s)
            new.append(s)
        feats = self.norm(h)
        pool_sum, count = state["sum"] + feats, state["count"] + 1
        out = self.head(pool_sum / count if self.config.head == "mean" else feats)
        return out, {"blocks": new, "sum": pool_sum, "count": count}

    # -- training hooks --------------------------------------------------------------------------------
    def memory_units(self):
        """The BMRU/CMRU units of the model (those with eps, gamma and a write rate)."""
        from ..units import BMRU

        return [u for b in self.blocks for u in b.mixer.units if isinstance(u, BMRU)]

    def set_eps(self, eps: float) -> None:
        for u in self.memory_units():
            u.eps = eps

    def set_gamma(self, gamma: float) -> None:
        for u in self.memory_units():
            u.gamma = gamma

    def track_write_rate(self, on: bool = True) -> None:
        for u in self.memory_units():
            u.track_write_rate = on

    def write_rate(self) -> torch.Tensor | None:
        rates = [u.write_rate for u in self.memory_units() if u.write_rate is not None]
        return torch.stack(rates).mean() if rates else None
