"""The ``wordnet`` expansion generator: new candidates near the legacy pool's killers, from WordNet.

For each legacy bundle of a WordNet world, its killer negatives (co-hyponyms of the anchor's synset)
become new candidates: the killer synset's definition as anchor, its lemma names as positive, and its
own tiered neighbourhood as negatives. Synsets already in the legacy pool, the eval sets or the organic
candidates are skipped (nothing leaks into an eval set), and so are synsets whose definition another
synset shares (an anchor text belongs to one positive only, as in the world itself).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from crucible_ray.data import Candidate, read_bundles, read_candidates
from crucible_ray.errors import ConfigError
from crucible_ray.worlds._wordnet import WordNetWorldConfig, _Graph, _negatives, _norm
from crucible_ray.worlds._wordnet_db import find_wordnet, read_noun_synsets
from crucible_ray.worlds._world import World


def wordnet_killer_neighbours(world: World, limit: int) -> Iterator[Candidate]:
    """New candidates from the synsets behind the legacy pool's killer negatives (WordNet worlds)."""
    if world.name != "wordnet":
        raise ConfigError(f"the 'wordnet' generator needs a WordNet world, but {world.root} is {world.name!r}")
    source = world.manifest.get("source", {})
    source_dir = source.get("dir") if isinstance(source, dict) else None
    synsets = read_noun_synsets(
        find_wordnet(source_dir if isinstance(source_dir, str) and Path(source_dir).is_dir() else None)
    )
    graph = _Graph(synsets)
    cfg = WordNetWorldConfig.model_validate(world.manifest.get("config", {}))
    by_text: dict[str, list[str]] = {}
    for o, s in synsets.items():
        by_text.setdefault(_norm(s.text), []).append(o)
    glosses = Counter(_norm(s.definition) for s in synsets.values() if s.definition)
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
                if glosses[_norm(s.definition)] > 1:
                    continue
                taken.add(s.synset_id)
                negatives = [n.text for n in _negatives(o, graph, cfg)]
                yield Candidate(candidate_id=s.synset_id, anchor=s.definition, positive=s.text, negatives=negatives)
                emitted += 1
                if emitted >= limit:
                    return
