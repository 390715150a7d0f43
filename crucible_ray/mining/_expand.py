"""Tier-3 expansion: generate candidates near the known killers, then vet them like any mined candidate.

A generator is any callable ``generator(world, limit) -> Iterable[Candidate]``. Built in:

- ``wordnet``: candidates from the synsets behind the legacy pool's killers (it lives with the WordNet
  world: :func:`crucible_ray.worlds.wordnet_killer_neighbours`).
- ``world``: the candidates the world builder set aside (``expansion_candidates``), for any world.

Your own: ``--generator my_package.my_module:make_candidates`` (importable where the driver runs).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator

from crucible_ray.data import Candidate, read_candidates
from crucible_ray.errors import ConfigError
from crucible_ray.worlds import World, wordnet_killer_neighbours

CandidateGenerator = Callable[[World, int], Iterable[Candidate]]


def world_candidates(world: World, limit: int) -> Iterator[Candidate]:
    """The world's own ``expansion_candidates`` file."""
    for i, c in enumerate(read_candidates(world.path("expansion_candidates"))):
        if i >= limit:
            return
        yield c


GENERATORS: dict[str, CandidateGenerator] = {"wordnet": wordnet_killer_neighbours, "world": world_candidates}


def resolve_generator(name: str | CandidateGenerator | None, world: World) -> tuple[str, CandidateGenerator]:
    """A generator by name, ``module:function``, or callable; default: ``wordnet`` on WordNet worlds, else ``world``."""
    if callable(name):
        return getattr(name, "__name__", "custom"), name
    if name is None:
        name = "wordnet" if world.name == "wordnet" else "world"
    if name in GENERATORS:
        return name, GENERATORS[name]
    if ":" not in name:
        raise ConfigError(f"unknown generator {name!r}; use one of {sorted(GENERATORS)} or 'package.module:function'")
    module_name, _, attr = name.partition(":")
    try:
        fn = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"cannot load generator {name!r}: {e}") from None
    if not callable(fn):
        raise ConfigError(f"generator {name!r} is not callable")
    return name, fn
