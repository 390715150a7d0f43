"""Shared fixtures: small worlds and the MiniLM encoder, built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

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
