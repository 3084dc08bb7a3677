"""A raster of BMRU states over time: which units hold which bit, and when they are rewritten (DESIGN §2)."""

from __future__ import annotations

import torch

from ..scan import bmru_scan
from ..units.bmru import BMRULayer
from .figure import new_figure, save_png


@torch.no_grad()
def on_bmru_layers(model, x, fn) -> list:
    """Run ``model(x)`` and collect ``fn(layer, layer_input, s0)`` for every BMRU/CMRU layer it calls."""
    captured = []
    layers = [m for m in model.modules() if isinstance(m, BMRULayer)]
    if not layers:
        raise ValueError("the model has no BMRU or CMRU layer")
    handles = [m.register_forward_hook(lambda layer, inputs, _out: captured.append(fn(layer, *inputs)))
               for m in layers]
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
    return captured


def bmru_states(model, x) -> list[torch.Tensor]:
    """The states s (batch, time, units) of every BMRU/CMRU layer of ``model`` while it reads ``x``."""
    return on_bmru_layers(model, x, lambda layer, x_in, s0: bmru_scan(
        layer.candidate(x_in), layer.threshold(x_in), s0, layer.eps, layer.gamma))


def plot_state_raster(states, out, title: str = "BMRU states", max_units: int = 64, inputs=None):
    """``states``: (time, units) for one sequence. Units on the y axis, time on the x axis, s = +1 red,
    -1 blue (CMRU integer states on a symmetric colour scale). ``inputs`` (time,) optional, drawn above."""
    s = torch.as_tensor(states, dtype=torch.float32).cpu()
    if s.dim() != 2:
        raise ValueError(f"states must have shape (time, units), got {tuple(s.shape)}")
    s = s[:, :max_units]
    fig, axes = new_figure(1, width=8.0, height=4.2)
    ax = axes[0]
    lim = max(1.0, float(s.abs().max()))
    im = ax.imshow(s.T.numpy(), aspect="auto", interpolation="nearest", cmap="coolwarm", vmin=-lim, vmax=lim)
    ax.set_xlabel("time step")
    ax.set_ylabel("unit")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label="state s")
    if inputs is not None:
        ax2 = ax.twinx()
        ax2.plot(torch.as_tensor(inputs).cpu().numpy(), color="k", lw=0.6, alpha=0.5)
        ax2.set_yticks([])
    return save_png(fig, out)
