"""The hysteresis loop c ↦ s of a BMRU unit (DESIGN §2): for -|beta| <= c <= |beta| both states are stable,
so sweeping c up then down traces a loop of width 2|beta|."""

from __future__ import annotations

import torch

from ..scan import bmru_scan
from .figure import new_figure, save_png


def bmru_sweep(beta: torch.Tensor, c_max: float | None = None, n: int = 400):
    """Sweep c from -c_max up to +c_max and back down with a fixed threshold per unit; return (c, s),
    each (2n, units). States come from :func:`mru.scan.bmru_scan`, starting at s_0 = -1."""
    beta = torch.as_tensor(beta, dtype=torch.float32).flatten()
    c_max = c_max or 2.0 * float(beta.abs().max().clamp_min(0.5))
    up = torch.linspace(-c_max, c_max, n)
    c = torch.cat([up, up.flip(0)]).unsqueeze(1).expand(-1, beta.numel())
    b = beta.expand_as(c)
    s = bmru_scan(c.unsqueeze(0).contiguous(), b.unsqueeze(0).contiguous(), -torch.ones(1, beta.numel()))
    return c, s[0]


def plot_hysteresis(beta, out, labels=None, title: str = "BMRU hysteresis loop"):
    """One loop per threshold in ``beta`` (a sequence of floats, e.g. trained units' |beta|)."""
    c, s = bmru_sweep(beta)
    n = c.shape[0] // 2
    fig, axes = new_figure(1)
    ax = axes[0]
    labels = labels or [f"|beta| = {abs(float(b)):.2f}" for b in torch.as_tensor(beta).flatten()]
    for i in range(c.shape[1]):
        offset = 0.04 * i  # separate overlapping loops slightly
        line, = ax.plot(c[:n, i], s[:n, i] + offset, label=f"{labels[i]} (c rising)")
        ax.plot(c[n:, i], s[n:, i] + offset, ls="--", color=line.get_color(), label=f"{labels[i]} (c falling)")
    ax.set_xlabel("candidate c")
    ax.set_ylabel("state s")
    ax.set_title(title)
    ax.legend(fontsize=7)
    return save_png(fig, out)


def mean_thresholds(model, x) -> list[torch.Tensor]:
    """Mean |beta_t| per unit (units,) of every BMRU/CMRU layer of ``model`` while it reads ``x``: the
    half-width of each unit's hysteresis loop on that data."""
    from .raster import on_bmru_layers

    return on_bmru_layers(model, x, lambda layer, x_in, _s0: layer.threshold(x_in).abs().mean(dim=(0, 1)))
