"""Fault injection shared by the Ray tests: SIGKILL a Ray Train worker while a run is in progress."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any


def kill_a_train_worker_when(ready: Callable[[], bool], work: Callable[[], Any], times: int = 1) -> dict[str, Any]:
    """Run ``work`` in a thread; SIGKILL a Ray Train worker ``times`` times once ``ready()``."""
    from ray.util.state import list_actors

    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = work()
        except Exception as e:  # surfaced by the caller's assertions
            result["error"] = e

    t = threading.Thread(target=target)
    t.start()
    killed: list[int] = []
    deadline = time.monotonic() + 240
    while len(killed) < times and time.monotonic() < deadline and t.is_alive():
        if ready():
            alive = [a for a in list_actors(filters=[("state", "=", "ALIVE")]) if "RayTrainWorker" in a.class_name]
            fresh = [a for a in alive if a.pid not in killed]
            if fresh:
                os.kill(fresh[0].pid, signal.SIGKILL)
                killed.append(fresh[0].pid)
        time.sleep(0.05)
    t.join(timeout=400)
    result["killed"] = len(killed)
    return result
