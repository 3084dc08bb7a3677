"""Schedules as pure functions of the optimiser step (0-based: the step about to be taken).

- learning rate: linear warm-up, then a cosine from ``lr`` down to ``min_lr`` at the last step;
- ε (DESIGN §3): hold ``start`` for ``hold`` steps, then a linear anneal to ``end`` over ``anneal`` steps,
  then ``end`` — the BMRU recipe is start = 1 (CMRU), end = 0 (BMRU);
- γ (DESIGN §2, slope of the arctan surrogate): geometric interpolation from ``start`` to ``end`` over the run.

Being functions of the step alone, they need no state in a checkpoint: resuming at step k recomputes them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .config import TrainConfig


def lr_at(step: int, lr: float, min_lr: float, warmup: int, total: int) -> float:
    """Warm-up from lr/warmup to lr over ``warmup`` steps, then cosine decay to ``min_lr`` at step total-1."""
    if step < warmup:
        return lr * (step + 1) / warmup
    span = total - 1 - warmup
    if span <= 0:
        return lr
    progress = min(1.0, (step - warmup) / span)
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * progress))


def eps_at(step: int, start: float, end: float, hold: int, anneal: int) -> float:
    """ε at ``step``: ``start`` until ``hold``, linear to ``end`` over ``anneal`` steps, then ``end``."""
    if step < hold:
        return start
    if anneal <= 0 or step >= hold + anneal:
        return end
    return start + (end - start) * (step - hold) / anneal


def gamma_at(step: int, start: float, end: float | None, total: int) -> float:
    """γ at ``step``: constant ``start`` when ``end`` is None, else geometric from ``start`` (step 0) to
    ``end`` (step total-1)."""
    if end is None or total <= 1:
        return start if end is None else end
    progress = min(1.0, max(0.0, step / (total - 1)))
    return start * (end / start) ** progress


@dataclass(frozen=True)
class EpsSchedule:
    """A resolved ε schedule (all steps absolute). ``settled(step)``: ε has reached its final value."""

    start: float
    end: float
    hold: int
    anneal: int

    def __call__(self, step: int) -> float:
        return eps_at(step, self.start, self.end, self.hold, self.anneal)

    def settled(self, step: int) -> bool:
        return step >= self.hold + self.anneal or self.start == self.end


def eps_schedule(config: TrainConfig, units: tuple[str, ...], total: int) -> EpsSchedule | None:
    """The ε schedule of a run, or None when ε is left at each unit's own value.

    ``eps_start=None`` means the DESIGN §3 recipe for models with a BMRU (ε from 1 to ``eps_end``, holding
    for 20 % of the run and annealing over the next 50 %), and no schedule for other models (a CMRU keeps
    ε = 1). The schedule is applied with ``SequenceModel.set_eps``, i.e. to every BMRU/CMRU unit of the model.
    """
    start = config.eps_start
    if start is None:
        if "bmru" not in units or "cmru" in units:
            return None
        start = 1.0
    hold = round(0.2 * total) if config.eps_hold is None else config.eps_hold
    anneal = round(0.5 * total) if config.eps_anneal_steps is None else config.eps_anneal_steps
    return EpsSchedule(float(start), float(config.eps_end), int(hold), int(anneal))
