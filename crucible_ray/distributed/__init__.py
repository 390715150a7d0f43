"""The Ray layer: sessions, resource plans, and the Ray Data pipelines around the pure kernels.

Nothing here computes results; it moves data to actors and back. Names are imported on first use,
so that a Ray worker loading the miner's actors does not also load Ray Tune and Ray Train.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from crucible_ray._shell import lazy_names

if TYPE_CHECKING:
    from crucible_ray.distributed._execute import execute_mining
    from crucible_ray.distributed._expand import expand
    from crucible_ray.distributed._mine import MINE_BATCH, MiningResult, mine
    from crucible_ray.distributed._resources import ActorPlan, plan_actors
    from crucible_ray.distributed._session import quiet_ray_environment, ray_session
    from crucible_ray.distributed._sweep import sweep
    from crucible_ray.distributed._train import TrainResult, train

_HOMES: dict[str, str] = {
    "ActorPlan": "crucible_ray.distributed._resources",
    "MINE_BATCH": "crucible_ray.distributed._mine",
    "MiningResult": "crucible_ray.distributed._mine",
    "TrainResult": "crucible_ray.distributed._train",
    "execute_mining": "crucible_ray.distributed._execute",
    "expand": "crucible_ray.distributed._expand",
    "mine": "crucible_ray.distributed._mine",
    "plan_actors": "crucible_ray.distributed._resources",
    "quiet_ray_environment": "crucible_ray.distributed._session",
    "ray_session": "crucible_ray.distributed._session",
    "sweep": "crucible_ray.distributed._sweep",
    "train": "crucible_ray.distributed._train",
}

__all__ = [
    "ActorPlan",
    "MINE_BATCH",
    "MiningResult",
    "TrainResult",
    "execute_mining",
    "expand",
    "mine",
    "plan_actors",
    "quiet_ray_environment",
    "ray_session",
    "sweep",
    "train",
]


__getattr__, __dir__ = lazy_names(__name__, _HOMES)
