"""The memory demo: a BMRU holds a written bit through 100,000 steps of distractors; an LRU forgets it.

Both units get the same two input channels: channel 0 carries the bit (+1 or -1) at t = 0 and zero after,
channel 1 carries uniform distractors in [-1, 1] at every step. Weights are set by hand:

- BMRU (DESIGN §2): c = 5 x_0 + 0.1 x_1, beta = 1. The write gate |c| >= |beta| opens at the bit
  (|c| = 5) and never for a distractor (|c| <= 0.1), so the state holds sign(bit) for ever.
- LRU (DESIGN §4): a real eigenvalue lambda = 0.999 (the long-memory ring's upper end), B = [1, 0.01]:
  the bit's trace decays like lambda^t, below the accumulated distractors after a few thousand steps.

Accuracy is the fraction of sequences whose output sign equals the bit.
"""

from __future__ import annotations

import math
import time

import torch

from .units import BMRU, LRU

DELAYS = (1, 10, 100, 1_000, 10_000, 100_000)


def hand_set_bmru() -> BMRU:
    unit = BMRU(2, 1, learn_initial_state=False)
    layer = unit.layers[0]
    with torch.no_grad():
        layer.candidate.weight.copy_(torch.tensor([[5.0, 0.1]]))
        layer.candidate.bias.zero_()
        layer.threshold.weight.zero_()
        layer.threshold.bias.fill_(1.0)
        layer.alpha.fill_(1.0)
    return unit


def hand_set_lru(lam: float = 0.999) -> LRU:
    unit = LRU(2, 1, state_size=1)
    layer = unit.layers[0]
    with torch.no_grad():
        layer.nu_log.fill_(math.log(-math.log(lam)))
        layer.theta_log.fill_(-40.0)              # phase exp(-40) ~ 0: a real eigenvalue
        layer.gamma_log.fill_(0.0)
        layer.B_re.copy_(torch.tensor([[1.0, 0.01]]))
        layer.B_im.zero_()
        layer.C_re.fill_(1.0)
        layer.C_im.zero_()
        layer.D.zero_()
    return unit


def memory_demo(steps: int = 100_000, batch: int = 64, seed: int = 0) -> list[dict]:
    """Run both units on the same sequences; return one row per delay with both accuracies."""
    g = torch.Generator().manual_seed(seed)
    bits = torch.randint(0, 2, (batch,), generator=g).float() * 2 - 1
    x = torch.zeros(batch, steps, 2)
    x[:, 0, 0] = bits
    x[:, :, 1] = torch.rand(batch, steps, generator=g) * 2 - 1
    bmru, lru = hand_set_bmru(), hand_set_lru()
    lam = lru.layers[0].eigenvalues().abs().item()
    rows = []
    with torch.no_grad():
        y_b, _ = bmru(x)
        y_l, _ = lru(x)
    for d in DELAYS:
        if d > steps:
            break
        rows.append({
            "delay": d,
            "bmru_accuracy": (torch.sign(y_b[:, d - 1, 0]) == bits).float().mean().item(),
            "lru_accuracy": (torch.sign(y_l[:, d - 1, 0]) == bits).float().mean().item(),
            "lru_trace": lam ** (d - 1),
        })
    return rows


def format_table(rows: list[dict]) -> str:
    lines = ["| steps since the write | BMRU accuracy | LRU accuracy | LRU trace of the bit (lambda^t) |",
             "|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['delay']:,} | {r['bmru_accuracy']:.1%} | {r['lru_accuracy']:.1%} | {r['lru_trace']:.1e} |")
    return "\n".join(lines)


def main(steps: int = 100_000, batch: int = 64, seed: int = 0) -> int:
    t0 = time.perf_counter()
    rows = memory_demo(steps, batch, seed)
    print(f"A bit is written at t = 0, then {steps:,} steps of distractors ({batch} sequences).\n")
    print(format_table(rows))
    print(f"\nBMRU: bistable, holds the bit exactly. LRU: |lambda| < 1, the trace fades. "
          f"({time.perf_counter() - t0:.1f} s)")
    return 0
