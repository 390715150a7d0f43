"""Connecting to Ray: a local instance by default, a cluster with ``address`` or ``RAY_ADDRESS``.

Quiet by default (the CLI owns the terminal), token authentication on, the dashboard on localhost.
A Ray instance that is already initialised (a driver script, a test session) is reused and left running.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from crucible_ray._logging import get_logger
from crucible_ray.errors import ConfigError

log = get_logger(__name__)


def quiet_ray_environment() -> None:
    """Environment settings that must be in place before Ray is imported (only where the user set none).

    Ray reads ``RAY_AUTH_MODE`` when it is imported, so it is only set here if Ray is not imported yet;
    a driver script that imports Ray first keeps whatever it chose.
    """
    if "ray" not in sys.modules:
        os.environ.setdefault("RAY_AUTH_MODE", "token")  # explicit: keeps auth on and silences the notice
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")


@contextmanager
def ray_session(address: str | None = None, *, num_cpus: int | None = None, **init_kwargs: Any) -> Iterator[None]:
    """Use the running Ray instance, or start/connect one for the duration of the block.

    Args:
        address: ``"auto"``, ``"ray://host:10001"``, ``"host:6379"``; default: ``RAY_ADDRESS`` if set,
            else a new local instance.
        num_cpus: CPUs of a new local instance (default: all).
    """
    quiet_ray_environment()
    import ray

    if ray.is_initialized():
        yield
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    kwargs: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING, **init_kwargs}
    if address is None:
        kwargs.setdefault("num_cpus", num_cpus)
        kwargs.setdefault("dashboard_host", "127.0.0.1")
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, ray.exceptions.AuthenticationError) as e:
        raise ConfigError(_connect_message(address, e)) from None
    log.info("Ray %s: %s", "cluster" if address else "local instance", _describe(ray.cluster_resources()))
    try:
        yield
    finally:
        ray.shutdown()


_TOKEN_HINT = "supply the cluster's token as RAY_AUTH_TOKEN, a file named by RAY_AUTH_TOKEN_PATH, or ~/.ray/auth_token"


def _connect_message(address: str | None, error: BaseException) -> str:
    """One line for a failed ``ray.init``: a missing or rejected token says so and how to supply it."""
    import ray

    chain: list[BaseException] = []
    e: BaseException | None = error
    while e is not None and e not in chain:  # ray.init wraps the authentication error it met
        chain.append(e)
        e = e.__cause__ or e.__context__
    auth = any(isinstance(x, ray.exceptions.AuthenticationError) or "InvalidAuthToken" in str(x) for x in chain)
    where = f"the Ray cluster at {address!r}" if address else "a local Ray instance"
    if auth:
        has_token = bool(os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH"))
        has_token = has_token or os.path.exists(os.path.expanduser("~/.ray/auth_token"))
        what = "rejected the authentication token" if has_token else "requires an authentication token"
        return f"{where} {what}: {_TOKEN_HINT}"
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return f"cannot connect to {where}: {first}"


def _describe(resources: dict[str, float]) -> str:
    cpus, gpus = resources.get("CPU", 0), resources.get("GPU", 0)
    return f"{cpus:g} CPUs, {gpus:g} GPUs"


def cluster_cpus_gpus() -> tuple[float, float]:
    """CPUs and GPUs of the connected cluster."""
    import ray

    r = ray.cluster_resources()
    return float(r.get("CPU", 0.0)), float(r.get("GPU", 0.0))
