"""Shared fixtures: small worlds and the MiniLM encoder, built once per session."""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Before Ray is imported anywhere: token auth on (explicit) with a token of this session, which every
# node and every driver subprocess inherits; quiet output; fast Train health checks.
os.environ.setdefault("RAY_AUTH_MODE", "token")
_OWN_TOKEN = "RAY_AUTH_TOKEN" not in os.environ  # ours alone: it marks the processes this session starts
os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.25")
# No embedding cache unless a test names one: every run embeds what it mines and scores (tests that
# break an encoder on purpose must reach it), and nothing is written to the user's ~/.cache.
os.environ["CRUCIBLE_RAY_EMBEDDING_CACHE"] = "off"

import crucible_ray as cr  # noqa: E402 - after the environment above


@pytest.fixture(scope="session")
def synthetic_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default synthetic world (read-only: copy before changing it)."""
    return cr.build_world("synthetic", tmp_path_factory.mktemp("synthetic"), seed=0)


@pytest.fixture(scope="session")
def wordnet_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small WordNet world (needs Debian's wordnet-base, which `make` installs)."""
    return cr.build_world(
        "wordnet",
        tmp_path_factory.mktemp("wordnet"),
        legacy=300,
        frozen_eval=100,
        expansion=60,
        organic=200,
        reference=100,
        corpus=1500,
        seed=0,
    )


@pytest.fixture(scope="session")
def minilm() -> cr.Encoder:
    """all-MiniLM-L6-v2, frozen backbone + identity head (needs the `st` extra)."""
    return cr.build_encoder("minilm:mode=frozen-head", device="cpu")


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[Any]:
    """The session's Ray instance: a multi-node cluster on this machine (``ray.cluster_utils.Cluster``).

    A head with no CPUs (as on a real cluster, it only coordinates) and two worker nodes of 1 CPU each,
    token authentication on. Tests that need more nodes, or kill one, add and remove worker nodes and
    leave two behind. crucible-ray reuses the connection; driver subprocesses reach it by ``RAY_ADDRESS``.
    """
    import logging

    import ray
    from ray.cluster_utils import Cluster

    # Metrics exported every second (default 10 s) so a short mining run shows on the endpoint.
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 0,
            "include_dashboard": True,
            "_system_config": {"metrics_report_interval_ms": 1000},
        },
    )
    for _ in range(2):
        cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False, logging_level=logging.WARNING)
    yield cluster
    ray.shutdown()
    cluster.shutdown()
    _stop_leftovers()


def _stop_leftovers() -> None:
    """Stop processes of this session's Ray that outlived ``cluster.shutdown()``.

    A worker on a node that a test removed without draining can be orphaned (seen: a
    ``ray::TrainController`` still running half an hour after the suite). They carry this session's
    token in their environment; nothing else does, unless the token was given from outside (then
    nothing is touched).
    """
    import sys

    import psutil

    if not _OWN_TOKEN:
        return
    token = os.environ["RAY_AUTH_TOKEN"]
    me = psutil.Process()
    spared = {me.pid, *(p.pid for p in me.parents())}
    left: list[psutil.Process] = []
    for p in psutil.process_iter(["name"]):
        try:
            if p.pid not in spared and p.environ().get("RAY_AUTH_TOKEN") == token:
                p.terminate()
                left.append(p)
        except psutil.Error:  # gone meanwhile, or not ours to read
            continue
    if not left:
        return
    sys.stderr.write(f"\nstopped {len(left)} leftover Ray process(es): {sorted({p.info['name'] for p in left})}\n")
    _, alive = psutil.wait_procs(left, timeout=5)
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            pass


@pytest.fixture(scope="session")
def ray_local(ray_cluster: Any) -> Iterator[None]:
    """Tests that only need Ray running (the session's cluster)."""
    yield


# After the last test, the session's exit status is final: leave without interpreter finalisation.
# Native threads Ray starts inside this process outlive ray.shutdown(); on a fresh clone, after all 371
# tests had passed and pytest had printed its summary, interpreter finalisation crashed in one of them
# (a segfault in a non-main thread, dmesg), and the crash replaced pytest's exit status. Finalisation
# here only tears down the process: everything pytest writes is written by then (trylast).
_EXIT_STATUS: list[int] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _EXIT_STATUS.append(int(exitstatus))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    if _EXIT_STATUS and "ray" in sys.modules:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_EXIT_STATUS[-1])
