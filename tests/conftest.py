"""Shared fixtures: small worlds and the MiniLM encoder, built once per session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# Before Ray is imported anywhere: token auth on (explicit), quiet output, fast Train health checks.
os.environ.setdefault("RAY_AUTH_MODE", "token")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.25")

import crucible_ray as cr


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
        corpus=1500,
        seed=0,
    )


@pytest.fixture(scope="session")
def minilm() -> cr.Encoder:
    """all-MiniLM-L6-v2, frozen backbone + identity head (needs the `st` extra)."""
    return cr.build_encoder("minilm:mode=frozen-head", device="cpu")


@pytest.fixture(scope="session")
def ray_local() -> Iterator[None]:
    """One local Ray instance (2 CPUs) for the whole test session; crucible-ray reuses it."""
    import logging

    import ray

    # Metrics exported every second (default 10 s) so a short mining run shows on the endpoint.
    ray.init(
        num_cpus=2,
        log_to_driver=False,
        logging_level=logging.WARNING,
        include_dashboard=True,
        _system_config={"metrics_report_interval_ms": 1000},
    )
    yield
    ray.shutdown()
