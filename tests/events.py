"""TensorBoard event files read with TensorBoard's own reader (docs/training.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# Scalars every training run logs (train/* each step; eval sets at each eval point).
TRAINING_SCALARS = (
    "train/loss",
    "train/lr",
    "train/tier3_accuracy",
    "eval/retention",
    "eval/generalization",
    "frozen_eval/tier3/accuracy",
    "organic_holdout/tier3/margin_p50",
)


def read_events(folder: Path) -> Any:
    """An ``EventAccumulator`` over ``folder`` with every scalar and histogram loaded."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "histograms": 0})
    acc.Reload()
    return acc
