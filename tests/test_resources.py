"""Resource plans (pure): trials and actors never ask for more than the cluster has."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crucible_ray.distributed._resources import TRIAL_CPU, plan_trials
from crucible_ray.errors import ConfigError


@given(
    cpus=st.integers(1, 64),
    gpus=st.integers(0, 8),
    workers=st.integers(1, 8),
    cap=st.one_of(st.none(), st.integers(1, 16)),
    use_gpu=st.sampled_from([None, False]),
)
def test_running_trials_always_fit_the_cluster(
    cpus: int, gpus: int, workers: int, cap: int | None, use_gpu: bool | None
) -> None:
    if use_gpu is None and gpus and gpus < workers:
        with pytest.raises(ConfigError, match="GPU"):
            plan_trials(cpus, gpus, workers=workers, use_gpu=use_gpu, max_concurrent=cap)
        return
    plan = plan_trials(cpus, gpus, workers=workers, use_gpu=use_gpu, max_concurrent=cap)
    assert plan.concurrency >= 1 and plan.cpus_per_worker > 0
    # Every trial running at once has all its workers placed: no deadlock.
    assert plan.concurrency * (TRIAL_CPU + workers * plan.cpus_per_worker) <= cpus + 1e-9
    assert plan.concurrency * workers * plan.gpus_per_worker <= gpus
    if cap is not None:
        assert plan.concurrency <= cap
    assert plan.threads >= 1


def test_two_cpus_run_two_one_worker_trials() -> None:
    plan = plan_trials(2, 0, workers=1)
    assert (plan.concurrency, plan.cpus_per_worker, plan.threads, plan.use_gpu) == (2, 0.99, 1, False)
    gpu = plan_trials(16, 4, workers=2)
    assert (gpu.concurrency, gpu.gpus_per_worker, gpu.use_gpu) == (2, 1.0, True)
    with pytest.raises(ConfigError, match="no GPU|GPUs"):
        plan_trials(4, 0, workers=1, use_gpu=True)


def test_a_worker_never_asks_for_more_cpus_than_one_node_has() -> None:
    # One trial at a time on two 1-CPU nodes: a worker of 1.99 CPUs could never be placed (it hung).
    assert plan_trials(2, 0, workers=1, max_concurrent=1).cpus_per_worker == 1.99
    capped = plan_trials(2, 0, workers=1, max_concurrent=1, node_cpus=1.0)
    assert capped.cpus_per_worker == 0.99 and capped.threads == 1
    assert plan_trials(16, 0, workers=2, max_concurrent=1, node_cpus=8.0).cpus_per_worker == 7.99
