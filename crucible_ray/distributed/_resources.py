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


# What a Tune trial's own process reserves: Ray rejects 0, and a whole CPU per trial driver is what
# deadlocks 2 trials x 1 worker on 2 CPUs (the workers never fit).
TRIAL_CPU = 0.01


@dataclass(frozen=True)
class TrialPlan:
    """How many trials run at once and what each trial's training workers get.

    ``concurrency * (TRIAL_CPU + workers * cpus_per_worker) <= cluster CPUs`` (and the same for GPUs)
    always holds, so every running trial's worker group fits at once: trials beyond ``concurrency``
    wait in Tune's queue instead of holding a trial slot whose workers can never start.
    """

    concurrency: int
    workers: int
    cpus_per_worker: float
    gpus_per_worker: float
    threads: int

    @property
    def use_gpu(self) -> bool:
        return self.gpus_per_worker > 0

    def describe(self) -> str:
        each = f"{self.workers} worker(s) x ({self.cpus_per_worker:g} CPU"
        each += f", {self.gpus_per_worker:g} GPU)" if self.use_gpu else f", {self.threads} torch thread(s))"
        return f"{self.concurrency} trial(s) at a time, each {each}"


def plan_trials(
    cluster_cpus: float,
    cluster_gpus: float,
    *,
    workers: int = 1,
    use_gpu: bool | None = None,
    max_concurrent: int | None = None,
    node_cpus: float | None = None,
) -> TrialPlan:
    """Resources of a sweep's trials that cannot deadlock, whatever the number of trials.

    ``node_cpus`` (the largest node's CPUs) caps what one worker asks for: a worker, and a one-worker
    trial that trains in its own actor, must fit on one node however few trials run at once.

    Raises:
        ConfigError: GPUs asked for on a cluster without enough of them, or non-positive counts.
    """
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, but got {workers}")
    if max_concurrent is not None and max_concurrent < 1:
        raise ConfigError(f"max_concurrent_trials must be >= 1, but got {max_concurrent}")
    if cluster_cpus <= TRIAL_CPU:
        raise ConfigError(f"the Ray cluster has {cluster_cpus:g} CPUs; a sweep needs at least one")
    gpu = cluster_gpus > 0 if use_gpu is None else use_gpu
    if gpu:
        fit = int(cluster_gpus // workers)
        if fit < 1:
            raise ConfigError(
                f"a trial needs {workers} GPU worker(s) but the Ray cluster has {cluster_gpus:g} GPUs; "
                "lower --workers or drop --gpu"
            )
        n = min(fit, max_concurrent or fit)
        cpus = _floor2(min(1.0, (cluster_cpus / n - TRIAL_CPU) / workers))
        return TrialPlan(n, workers, cpus, 1.0, 1)
    fit = max(1, int(cluster_cpus // workers))
    n = min(fit, max_concurrent or fit)
    cpus = _floor2((cluster_cpus / n - TRIAL_CPU) / workers)
    if node_cpus is not None and node_cpus > TRIAL_CPU:
        cpus = min(cpus, _floor2(node_cpus - TRIAL_CPU))
    return TrialPlan(n, workers, cpus, 0.0, max(1, int(cpus + 0.01)))


def _floor2(x: float) -> float:
    return max(0.01, int(x * 100) / 100)
