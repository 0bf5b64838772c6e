"""Learning-rate schedule as a pure function of the step (no scheduler state to checkpoint)."""

from __future__ import annotations

import math


def lr_at(
    step: int, total_steps: int, base_lr: float, schedule: str, warmup_steps: int = 0
) -> float:
    """Learning rate at ``step`` (0-based) of a stage of ``total_steps`` steps.

    Linear warm-up over ``warmup_steps``, then ``constant`` or half-cosine decay to 0.
    """
    if warmup_steps > 0 and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return base_lr
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * progress))
