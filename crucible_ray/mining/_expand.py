"""Tier-3 expansion: generate candidates near the known killers, then vet them like any mined candidate.

A generator is any callable ``generator(world, limit) -> Iterable[Candidate]``. Built in:

- ``wordnet``: for each legacy bundle of a WordNet world, its killer negatives (co-hyponyms of the
  anchor's synset) become new candidates: the killer synset's definition as anchor, its lemma names as
  positive, and its own tiered neighbourhood as negatives. Synsets already in the legacy pool, the
  frozen eval or the organic candidates are skipped, so nothing leaks into the eval sets.
- ``world``: the candidates the world builder set aside (``expansion_candidates``), for any world.

Your own: ``--generator my_package.my_module:make_candidates`` (importable where the driver runs).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from crucible_ray.data import Candidate, read_bundles, read_candidates
from crucible_ray.errors import ConfigError
from crucible_ray.worlds import World

CandidateGenerator = Callable[[World, int], Iterable[Candidate]]


def world_candidates(world: World, limit: int) -> Iterator[Candidate]:
    """The world's own ``expansion_candidates`` file."""
    for i, c in enumerate(read_candidates(world.path("expansion_candidates"))):
        if i >= limit:
            return
        yield c


def wordnet_killer_neighbours(world: World, limit: int) -> Iterator[Candidate]:
    """New candidates from the synsets behind the legacy pool's killer negatives (WordNet worlds)."""
    from crucible_ray.worlds._wordnet import WordNetWorldConfig, _Graph, _negatives, _norm
    from crucible_ray.worlds._wordnet_db import find_wordnet, read_noun_synsets

    if world.name != "wordnet":
        raise ConfigError(f"the 'wordnet' generator needs a WordNet world, but {world.root} is {world.name!r}")
    source_dir = world.manifest.get("source", {}).get("dir")
    synsets = read_noun_synsets(find_wordnet(source_dir if source_dir and Path(source_dir).is_dir() else None))
    graph = _Graph(synsets)
    cfg = WordNetWorldConfig.model_validate(world.manifest.get("config", {}))
    by_text: dict[str, list[str]] = {}
    for o, s in synsets.items():
        by_text.setdefault(_norm(s.text), []).append(o)
    taken: set[str] = set()
    for stem in ("legacy", "frozen_eval", "organic_holdout", "organic"):
        if world.has(stem):
            taken.update(b.bundle_id for b in read_bundles(world.path(stem)))
    if world.has("organic_candidates"):
        taken.update(c.candidate_id for c in read_candidates(world.path("organic_candidates")))
    emitted = 0
    for bundle in read_bundles(world.path("legacy")):
        for neg in bundle.negatives:
            if neg.tier != 3:
                continue
            for o in sorted(by_text.get(_norm(neg.text), [])):
                s = synsets[o]
                if s.synset_id in taken or not s.definition or len(graph.sisters(o)) < 1:
                    continue
                taken.add(s.synset_id)
                negatives = [n.text for n in _negatives(o, graph, cfg)]
                yield Candidate(candidate_id=s.synset_id, anchor=s.definition, positive=s.text, negatives=negatives)
                emitted += 1
                if emitted >= limit:
                    return


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
