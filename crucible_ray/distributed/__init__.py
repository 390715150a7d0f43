"""The Ray layer: sessions, resource plans, and the Ray Data pipelines around the pure kernels.

Nothing here computes results; it moves data to actors and back.
"""

from crucible_ray.distributed._execute import execute_mining
from crucible_ray.distributed._expand import expand
from crucible_ray.distributed._mine import MINE_BATCH, MiningResult, mine
from crucible_ray.distributed._resources import ActorPlan, plan_actors
from crucible_ray.distributed._session import quiet_ray_environment, ray_session
from crucible_ray.distributed._sweep import sweep
from crucible_ray.distributed._train import TrainResult, train

__all__ = [
    "MINE_BATCH",
    "ActorPlan",
    "MiningResult",
    "expand",
    "mine",
    "plan_actors",
    "quiet_ray_environment",
    "ray_session",
    "sweep",
    "TrainResult",
    "execute_mining",
    "train",
]
