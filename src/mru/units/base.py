"""The interface every mru unit shares, modelled on ``torch.nn.GRU`` (DESIGN §4, §6).

    unit = BMRU(input_size, hidden_size, num_layers=1, batch_first=True, dropout=0.0, ...)
    y, h_n = unit(x, h0=None)           # parallel over the sequence (training)
    y_t, state = unit.step(x_t, state)  # one step, O(1) per token (streaming inference)
    state = unit.initial_state(batch)

Shapes: ``x`` is (batch, time, input_size) with ``batch_first=True`` (the default), (time, batch,
input_size) with ``batch_first=False``, or unbatched (time, input_size). ``y`` is (..., hidden_size).
``h0``/``h_n``/``state`` are (num_layers, batch, state_size) — (num_layers, state_size) when unbatched —
exactly as ``nn.GRU``'s ``h_0``/``h_n``.

Deliberate deviations from ``nn.GRU``:
- ``batch_first=True`` by default: sequence libraries and the tasks here are batch-major.
- ``h0=None`` means the unit's own initial state (for the BMRU a *learned* binary state), not zeros.
- ``step`` exists: the explicit one-token recurrence with the same results as ``forward``.
- The state is the unit's internal state, which is not always its output (BMRU: s, output α ⊙ s;
  LRU: complex x, output Re(C x) + D u). ``state_size`` tells its size and ``state_dtype`` its dtype.
"""

from __future__ import annotations

import torch
from torch import nn


def _check_positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _check_bool(name: str, value) -> bool:
    # a string such as "false" would silently read as True
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


class RecurrentLayer(nn.Module):
    """One layer of a unit: (batch, time, in) -> (batch, time, out) with an explicit state."""

    input_size: int
    hidden_size: int
    state_size: int

    def state_dtype(self) -> torch.dtype:
        return self.reference_parameter().dtype

    def reference_parameter(self) -> torch.Tensor:
        return next(self.parameters())

    def initial_state(self, batch: int) -> torch.Tensor:
        p = self.reference_parameter()
        return torch.zeros(batch, self.state_size, device=p.device, dtype=self.state_dtype())

    def forward(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, T, in), state (B, S) -> outputs (B, T, out), final state (B, S)."""
        raise NotImplementedError

    def step(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, in), state (B, S) -> output (B, out), new state (B, S)."""
        raise NotImplementedError


class RecurrentUnit(nn.Module):
    """A stack of ``num_layers`` :class:`RecurrentLayer` with ``nn.GRU``'s calling convention."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, batch_first: bool = True,
                 dropout: float = 0.0, **layer_kwargs):
        super().__init__()
        self.input_size = _check_positive_int("input_size", input_size)
        self.hidden_size = _check_positive_int("hidden_size", hidden_size)
        self.num_layers = _check_positive_int("num_layers", num_layers)
        if not (isinstance(dropout, (int, float)) and 0.0 <= dropout < 1.0):
            raise ValueError(f"dropout must be a probability in [0, 1), got {dropout!r}")
        self.batch_first = _check_bool("batch_first", batch_first)
        self.dropout = float(dropout)
        self.layers = nn.ModuleList(
            self.make_layer(input_size if i == 0 else hidden_size, hidden_size, **layer_kwargs)
            for i in range(num_layers)
        )
        self.drop = nn.Dropout(dropout)

    def make_layer(self, input_size: int, hidden_size: int, **kwargs) -> RecurrentLayer:
        raise NotImplementedError

    # -- state -------------------------------------------------------------------------------------
    @property
    def state_size(self) -> int:
        return self.layers[0].state_size

    @property
    def state_dtype(self) -> torch.dtype:
        return self.layers[0].state_dtype()

    def initial_state(self, batch: int | None = None) -> torch.Tensor:
        """The state before the first token: (num_layers, batch, state_size), or (num_layers, state_size)
        for ``batch=None`` (unbatched)."""
        b = 1 if batch is None else _check_positive_int("batch", batch)
        h = torch.stack([layer.initial_state(b) for layer in self.layers])
        return h[:, 0] if batch is None else h

    # -- checks ------------------------------------------------------------------------------------
    def _reference(self) -> torch.Tensor:
        """A parameter whose dtype and device are the unit's."""
        return self.layers[0].reference_parameter()

    def _param_dtype(self) -> torch.dtype:
        return self._reference().dtype

    def _check_input(self, x, ranks: tuple[int, ...], what: str) -> None:
        name = type(self).__name__
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name}: input must be a torch.Tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise TypeError(f"{name}: input must be floating point, got {x.dtype}")
        if x.dtype != self._param_dtype():
            raise TypeError(f"{name}: input dtype {x.dtype} does not match the parameters' {self._param_dtype()}; "
                            f"cast the input or the module (e.g. module.to({x.dtype}))")
        p = self._reference()
        if x.device != p.device:
            raise ValueError(f"{name}: input is on {x.device} but the parameters are on {p.device}")
        if x.dim() not in ranks or x.shape[-1] != self.input_size:
            raise ValueError(f"{name}: expected input of shape {what.format(n=self.input_size)}, got {tuple(x.shape)}")

    def _check_batch(self, batch: int) -> None:
        if batch == 0:
            raise ValueError(f"{type(self).__name__}: input has an empty batch (batch size 0); "
                             f"expected at least one sequence")

    def _check_state(self, h, batch: int, unbatched: bool) -> None:
        name = type(self).__name__
        want = (self.num_layers, self.state_size) if unbatched else (self.num_layers, batch, self.state_size)
        if not isinstance(h, torch.Tensor):
            raise TypeError(f"{name}: state must be a torch.Tensor of shape {want}, got {type(h).__name__}")
        if tuple(h.shape) != want:
            raise ValueError(f"{name}: expected state of shape (num_layers, batch, state_size) = {want}, "
                             f"got {tuple(h.shape)}")
        if not (h.is_floating_point() or h.is_complex()) or (h.is_complex() and not self.state_dtype.is_complex):
            raise TypeError(f"{name}: state must be a {'complex' if self.state_dtype.is_complex else 'real'} "
                            f"floating-point tensor (the unit's state dtype is {self.state_dtype}), got {h.dtype}")
        p = self._reference()
        if h.device != p.device:
            raise ValueError(f"{name}: state is on {h.device} but the parameters are on {p.device}")

    # -- execution ---------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, h0: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        layout = "(batch, time, {n})" if self.batch_first else "(time, batch, {n})"
        self._check_input(x, (2, 3), f"{layout} or unbatched (time, {{n}})")
        if x.shape[-2 if x.dim() == 2 else (1 if self.batch_first else 0)] == 0:
            raise ValueError(f"{type(self).__name__}: input has an empty time axis (shape {tuple(x.shape)})")
        unbatched = x.dim() == 2
        if unbatched:
            x = x.unsqueeze(0)
        elif not self.batch_first:
            x = x.transpose(0, 1)
        batch = x.shape[0]
        self._check_batch(batch)
        if h0 is None:
            h0 = self.initial_state(batch)
        else:
            self._check_state(h0, batch, unbatched)
            if unbatched:
                h0 = h0.unsqueeze(1)
        finals = []
        for i, layer in enumerate(self.layers):
            x, h_n = layer(x, h0[i].to(layer.state_dtype()))
            finals.append(h_n)
            if i + 1 < self.num_layers and self.dropout > 0:
                x = self.drop(x)
        h_n = torch.stack(finals)
        if unbatched:
            return x[0], h_n[:, 0]
        return (x if self.batch_first else x.transpose(0, 1)), h_n

    def step(self, x_t: torch.Tensor, state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One token: ``x_t`` (batch, input_size) or (input_size,) -> (output, new state)."""
        self._check_input(x_t, (1, 2), "(batch, {n}) or unbatched ({n},)")
        unbatched = x_t.dim() == 1
        if unbatched:
            x_t = x_t.unsqueeze(0)
        batch = x_t.shape[0]
        self._check_batch(batch)
        if state is None:
            state = self.initial_state(batch)
        else:
            self._check_state(state, batch, unbatched)
            if unbatched:
                state = state.unsqueeze(1)
        new = []
        for i, layer in enumerate(self.layers):
            x_t, s = layer.step(x_t, state[i].to(layer.state_dtype()))
            new.append(s)
            if i + 1 < self.num_layers and self.dropout > 0:
                x_t = self.drop(x_t)
        state = torch.stack(new)
        return (x_t[0], state[:, 0]) if unbatched else (x_t, state)

    def extra_repr(self) -> str:
        return (f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, "
                f"batch_first={self.batch_first}, dropout={self.dropout}")

