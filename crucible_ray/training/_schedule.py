"""The learning rate as a pure function of the step (so a resumed run needs no scheduler state)."""

from __future__ import annotations

import math


def lr_at(step: int, *, base: float, warmup: int, total: int, schedule: str) -> float:
    """Learning rate for optimizer step ``step`` (0-based): linear warm-up, then cosine/linear decay or constant.

    Example:
        >>> lr_at(0, base=1.0, warmup=10, total=100, schedule="cosine")
        0.1
        >>> lr_at(99, base=1.0, warmup=0, total=100, schedule="linear")
        0.01
    """
    if warmup and step < warmup:
        return base * (step + 1) / warmup
    if schedule == "constant" or total <= warmup:
        return base
    progress = (step - warmup) / max(1, total - warmup)  # in [0, 1)
    if schedule == "linear":
        return base * (1.0 - progress)
    return base * 0.5 * (1.0 + math.cos(math.pi * progress))
