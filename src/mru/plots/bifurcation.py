"""From a continuous bistable cell to the BMRU (DESIGN §1).

The cell h <- tanh(w h + u) with gain w > 1 is bistable for small |u|. Iterating it N times per input
("internal clock") and sweeping u up then down shows, as N grows, the state settling on the equilibrium
branch it was on: the hysteresis loop of the convergent RNN, which the BMRU map s = sign(c) when
|c| >= |beta|, else hold, keeps exactly (up to the saturation level tanh of the equilibrium, ~1 for large w).
"""

from __future__ import annotations

import torch

from .figure import new_figure, save_png


def bistable_cell_sweep(n_iter: int, gain: float = 3.0, u_max: float = 3.0, n: int = 300):
    """Sweep u up then down; after each input, iterate h <- tanh(gain h + u) ``n_iter`` times.
    Returns (u, h), each of length 2n."""
    up = torch.linspace(-u_max, u_max, n, dtype=torch.float64)
    u = torch.cat([up, up.flip(0)])
    h = torch.tensor(-1.0, dtype=torch.float64)
    out = torch.empty_like(u)
    for i, ui in enumerate(u):
        for _ in range(n_iter):
            h = torch.tanh(gain * h + ui)
        out[i] = h
    return u, out


def plot_bifurcation(out, n_iters=(1, 3, 10, 100, 1000), gain: float = 2.0, title: str | None = None):
    """The swept cell for several N, beside the BMRU map with the threshold of the N -> infinity loop."""
    import math

    fig, axes = new_figure(1, width=6.0, height=4.2)
    ax = axes[0]
    for N in n_iters:
        u, h = bistable_cell_sweep(N, gain)
        ax.plot(u.numpy(), h.numpy(), lw=1.2, label=f"N = {N} iterations per input")
    # saddle-node points of tanh(g h + u) = h: the loop edges |u*| = g sqrt(1-1/g) ... exact formula:
    hs = math.sqrt(1 - 1 / gain)
    u_star = math.atanh(hs) - gain * hs
    u = torch.linspace(-3, 3, 600, dtype=torch.float64)
    up = torch.where(u >= -u_star, 1.0, -1.0)
    down = torch.where(u <= u_star, -1.0, 1.0)
    ax.plot(u.numpy(), up.numpy(), "k:", lw=1.0, label=f"BMRU map, |beta| = {abs(u_star):.2f}")
    ax.plot(u.numpy(), down.numpy(), "k:", lw=1.0)
    ax.set_xlabel("input u (candidate c)")
    ax.set_ylabel("state after the input")
    ax.set_title(title or f"bistable cell h <- tanh({gain:g} h + u): N -> inf gives the BMRU")
    ax.legend(fontsize=7, loc="upper left")
    return save_png(fig, out)
