"""Fault injection shared by the Ray tests: a Ray Train worker SIGKILLed, a node taken away, mid-run."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any


def _start(work: Callable[[], Any], result: dict[str, Any]) -> threading.Thread:
    """Run ``work`` in a thread; its return value lands in ``result["value"]``, an exception in ``"error"``."""

    def target() -> None:
        try:
            result["value"] = work()
        except Exception as e:  # surfaced by the caller's assertions
            result["error"] = e

    t = threading.Thread(target=target)
    t.start()
    return t


def kill_a_train_worker_when(
    ready: Callable[[], bool], work: Callable[[], Any], times: int = 1, actor: str = "RayTrainWorker"
) -> dict[str, Any]:
    """Run ``work`` in a thread; SIGKILL a live ``actor`` (class name contains it; default a Ray Train
    worker) ``times`` times once ``ready()``."""
    from ray.util.state import list_actors

    result: dict[str, Any] = {}
    t = _start(work, result)
    killed: list[int] = []
    deadline = time.monotonic() + 240
    while len(killed) < times and time.monotonic() < deadline and t.is_alive():
        if ready():
            alive = [a for a in list_actors(filters=[("state", "=", "ALIVE")]) if actor in a.class_name]
            fresh = [a for a in alive if a.pid not in killed]
            if fresh:
                os.kill(fresh[0].pid, signal.SIGKILL)
                killed.append(fresh[0].pid)
        time.sleep(0.05)
    t.join(timeout=400)
    result["killed"] = len(killed)
    return result


def remove_a_node_when(
    cluster: Any, eligible: Callable[[list[Any]], list[Any]], work: Callable[[], Any], actor: str
) -> dict[str, Any]:
    """Run ``work`` in a thread; take away (no graceful drain) the worker node of a live ``actor`` (class
    name contains it) of ``cluster`` (``ray.cluster_utils.Cluster``) as soon as ``eligible`` keeps one of
    the live ones (``ray.util.state`` actor states; an empty list means not yet).

    A replacement node of 1 CPU joins right after, so the cluster keeps its size for later tests. The result
    has ``value`` or ``error``, ``removed`` (the node id, or None), ``lost_actors`` (ids of the actors
    alive on it when it went) and ``nodes`` (ids of every node an ``actor`` of this run lived on: those
    seen alive while polling, and, after the run, every one the state API lists, dead ones included, so
    an actor that started and ended between two polls counts too).
    """
    from ray.util.state import list_actors

    def ours() -> list[Any]:
        return [a for a in list_actors(limit=10_000, raise_on_missing_output=False) if actor in a.class_name]

    before = {a.actor_id for a in ours()}
    result: dict[str, Any] = {"removed": None, "nodes": set()}
    t = _start(work, result)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and t.is_alive():
        alive = [a for a in list_actors(filters=[("state", "=", "ALIVE")]) if actor in a.class_name]
        result["nodes"] |= {a.node_id for a in alive}
        if result["removed"] is None and alive:
            workers = {n.node_id: n for n in cluster.worker_nodes}
            victims = [workers[a.node_id] for a in eligible(alive) if a.node_id in workers]
            if victims:
                cluster.remove_node(victims[0], allow_graceful=False)
                result["removed"] = victims[0].node_id
                result["lost_actors"] = [a.actor_id for a in alive if a.node_id == result["removed"]]
                cluster.add_node(num_cpus=1)  # after: starting a raylet takes seconds, the run goes on
        time.sleep(0.1)
    t.join(timeout=400)
    run = [a for a in ours() if a.actor_id not in before]
    result["nodes"] |= {a.node_id for a in run if a.node_id}
    result["actors"] = [(a.actor_id[:8], a.node_id[:8] if a.node_id else None, a.state) for a in run]
    return result
