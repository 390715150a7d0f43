"""How many actors and which resources each gets, so that a pipeline can never starve itself.

Ray Data deadlocks silently when its actors hold every CPU (the other operators wait forever), so on
CPU an actor reserves a fraction of a CPU and the pool leaves at least one CPU free; torch threads are
set separately so the actors still use the cores they share.
"""

from __future__ import annotations

from dataclasses import dataclass

from crucible_ray.errors import ConfigError


@dataclass(frozen=True)
class ActorPlan:
    """Size of an actor pool and the resources of each actor."""

    actors: int
    num_cpus: float
    num_gpus: float
    threads: int

    @property
    def use_gpu(self) -> bool:
        return self.num_gpus > 0

    def describe(self) -> str:
        where = f"{self.num_gpus:g} GPU" if self.use_gpu else f"{self.threads} torch thread(s)"
        return f"{self.actors} actor(s), each {self.num_cpus:g} CPU + {where}"


def plan_actors(
    cluster_cpus: float,
    cluster_gpus: float,
    *,
    actors: int | None = None,
    use_gpu: bool | None = None,
    gpus_per_actor: float = 1.0,
) -> ActorPlan:
    """Choose the pool: GPUs when the cluster has them (unless ``use_gpu=False``), else CPUs.

    Raises:
        ConfigError: ``use_gpu=True`` on a cluster without GPUs, or a non-positive actor count.
    """
    if actors is not None and actors < 1:
        raise ConfigError(f"actors must be >= 1, but got {actors}")
    if not 0 < gpus_per_actor <= 8:
        raise ConfigError(f"gpus_per_actor must be in (0, 8], but got {gpus_per_actor}")
    gpu = cluster_gpus > 0 if use_gpu is None else use_gpu
    if gpu and cluster_gpus <= 0:
        raise ConfigError("use_gpu was requested but the Ray cluster has no GPUs; drop --gpu or add GPU nodes")
    if gpu:
        n = actors or max(1, int(cluster_gpus // gpus_per_actor))
        return ActorPlan(n, 1.0 if cluster_cpus >= n + 1 else max(0.05, (cluster_cpus - 1) / n), gpus_per_actor, 1)
    n = actors or max(1, int(cluster_cpus // 4))
    spare = max(cluster_cpus - 1.0, 0.5)
    num_cpus = round(min(1.0, max(0.05, spare / n)), 3)
    threads = max(1, int(cluster_cpus // n))
    return ActorPlan(n, num_cpus, 0.0, threads)
