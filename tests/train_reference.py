"""The training loop in this process, without Ray: the reference a Ray Train run is compared with.

A Ray Train run of one worker executes this same loop (``train_worker``) inside its worker, with the same
data and seeds, so its scoreboards are equal to these bit for bit; the tests that compare a killed and
resumed run with this reference therefore also check that Ray Train adds nothing to the numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import crucible_ray as cr
from crucible_ray.training import TrainConfig, WorkerContext, prepare_training, train_worker


def train_in_process(world: Path, out: Path, **options: Any) -> Path:
    """Train as ``cr.train(world, output_dir=out, **options)`` would with one worker; returns ``out``."""
    cfg = TrainConfig(**options)
    train_worker(cfg, prepare_training(world, cfg).data, out, WorkerContext())
    return out


def board(path: Path) -> dict[str, Any]:
    """A scoreboard's content, without the path of its checkpoint (which names the run's folder)."""
    doc = cr.Scoreboard.read(path).to_dict()
    doc.pop("checkpoint")
    return doc
