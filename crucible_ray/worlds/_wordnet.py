"""The WordNet world (the real, default one): noun synsets as anchor/positive pairs.

- anchor: a synset's definition; positive: its lemma names (``dog, domestic dog, Canis familiaris``)
- tier 3 (killers): co-hyponyms, the sister synsets under the same hypernym
- tier 2: synsets of the same lexicographer file (``noun.animal``...) that are not sisters
- tier 1: random synsets from other lexicographer files

Hypernym families are split between legacy and organic, so organic candidates share no parent with
legacy bundles: generalization is measured on genuinely unseen neighbourhoods. The families after the
organic ones form the label-based reference (``organic_reference``): bundles built like the frozen
eval, with their WordNet sisters as killers, that no miner chose and no run trains on, so they measure
generalization independently of the model that mined the organic pool. A fraction of each
legacy family is held back as expansion candidates (near the known killers). Every random choice is
keyed by the seed and the synset offset. A gloss shared by two synsets ("one species") is never an
anchor, so no anchor text has two positives.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from crucible_ray._logging import get_logger
from crucible_ray._rng import rng_for
from crucible_ray.data import Bundle, Candidate, CorpusDoc, Negative
from crucible_ray.errors import ConfigError
from crucible_ray.worlds._wordnet_db import Synset, find_wordnet, read_noun_synsets
from crucible_ray.worlds._world import REFERENCE_SET, WorldContent, file_sha256, write_world

log = get_logger(__name__)


class WordNetWorldConfig(BaseModel):
    """Sizes and sampling of the WordNet world. Defaults keep the demo quick on 2 cores."""

    model_config = ConfigDict(extra="forbid")

    legacy: int = Field(4000, ge=1, description="legacy (core killer) bundles")
    frozen_eval: int = Field(2000, ge=1, description="frozen eval bundles, a fixed subset of legacy")
    expansion: int = Field(2000, ge=0, description="expansion candidates from legacy families")
    expansion_fraction: float = Field(0.25, ge=0.0, lt=1.0, description="share of a legacy family held back")
    organic: int = Field(6000, ge=0, description="organic candidates from families disjoint from legacy")
    reference: int = Field(
        1000,
        ge=0,
        description="label-based generalization reference: bundles from further families, never mined or trained on",
    )
    corpus: int = Field(30000, ge=1, description="corpus size (every world text, then random fill)")
    tier3: int = Field(6, ge=1, le=64, description="max killer (co-hyponym) negatives per bundle")
    tier2: int = Field(2, ge=0, le=64, description="same-lexicographer-file negatives per bundle")
    tier1: int = Field(2, ge=0, le=64, description="random negatives per bundle")
    min_killers: int = Field(2, ge=1, le=64, description="synsets need at least this many sisters")
    seed: int = Field(0, ge=0)
    format: Literal["jsonl", "parquet"] = "jsonl"


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


class _Graph:
    def __init__(self, synsets: dict[str, Synset]) -> None:
        self.synsets = synsets
        self.children: dict[str, list[str]] = defaultdict(list)
        for s in synsets.values():
            for h in s.hypernyms:
                self.children[h].append(s.offset)
        self.by_lexfile: dict[int, list[str]] = defaultdict(list)
        for s in synsets.values():
            self.by_lexfile[s.lexfile].append(s.offset)
        self.all = list(synsets)
        self._sisters: dict[str, list[str]] = {}

    def sisters(self, offset: str) -> list[str]:
        """Co-hyponyms with a different text; computed once per synset (asked for up to three times)."""
        cached = self._sisters.get(offset)
        if cached is not None:
            return cached
        own = self.synsets[offset]
        out: dict[str, None] = {}
        for h in own.hypernyms:
            for c in self.children[h]:
                if c != offset and _norm(self.synsets[c].text) != _norm(own.text):
                    out[c] = None
        self._sisters[offset] = list(out)
        return self._sisters[offset]


def _pick(
    rng: np.random.Generator,
    pool: list[str],
    k: int,
    exclude: set[str],
    texts_seen: set[str],
    graph: _Graph,
    reject_lexfile: int | None = None,
) -> list[str]:
    """Up to ``k`` distinct offsets from ``pool`` whose texts are new; bounded tries."""
    out: list[str] = []
    if k == 0 or not pool:
        return out
    for _ in range(20 * k):
        o = pool[int(rng.integers(len(pool)))]
        t = _norm(graph.synsets[o].text)
        if o in exclude or t in texts_seen or graph.synsets[o].lexfile == reject_lexfile:
            continue
        out.append(o)
        exclude.add(o)
        texts_seen.add(t)
        if len(out) == k:
            break
    return out


def _negatives(offset: str, graph: _Graph, cfg: WordNetWorldConfig) -> list[Negative]:
    s = graph.synsets[offset]
    rng = rng_for(cfg.seed, "wordnet-negatives", offset)
    sisters = graph.sisters(offset)
    texts_seen = {_norm(s.text)}
    exclude = {offset, *sisters}
    order = rng.permutation(len(sisters))
    tier3 = []
    for i in order:
        t = _norm(graph.synsets[sisters[i]].text)
        if t not in texts_seen:
            tier3.append(sisters[i])
            texts_seen.add(t)
        if len(tier3) == cfg.tier3:
            break
    tier2 = _pick(rng, graph.by_lexfile[s.lexfile], cfg.tier2, exclude, texts_seen, graph)
    tier1 = _pick(rng, graph.all, cfg.tier1, exclude, texts_seen, graph, reject_lexfile=s.lexfile)
    return (
        [Negative(text=graph.synsets[o].text, tier=3) for o in tier3]
        + [Negative(text=graph.synsets[o].text, tier=2) for o in tier2]
        + [Negative(text=graph.synsets[o].text, tier=1) for o in tier1]
    )


def build_wordnet_content(cfg: WordNetWorldConfig, wordnet_dir: Path) -> WorldContent:
    """Select synsets and build every pool, eval set, candidate file and the corpus."""
    synsets = read_noun_synsets(wordnet_dir)
    graph = _Graph(synsets)
    eligible = {
        o for o, s in synsets.items() if s.definition and s.hypernyms and len(graph.sisters(o)) >= cfg.min_killers
    }
    # A gloss shared by several synsets ("one species") would be one anchor with several positives, in
    # one pool or across pools: none of them is an anchor. Counted over every synset that could be one,
    # so every anchor the world emits (pools, eval sets, candidates) has a text no other anchor has.
    gloss_count = Counter(_norm(synsets[o].definition) for o in eligible)
    shared = {o for o in eligible if gloss_count[_norm(synsets[o].definition)] > 1}
    if shared:
        log.debug("WordNet: %d synsets share their gloss with another; none of them is an anchor", len(shared))
        eligible -= shared
    # Families by primary hypernym, visited in a seeded order.
    families: dict[str, list[str]] = defaultdict(list)
    for o in sorted(eligible):
        families[synsets[o].hypernyms[0]].append(o)
    fam_ids = sorted(families)
    fam_order = rng_for(cfg.seed, "wordnet-families").permutation(len(fam_ids))
    legacy: list[str] = []
    expansion: list[str] = []
    organic: list[str] = []
    reference: list[str] = []
    taken: set[str] = set()
    for fi in fam_order:
        members = [m for m in families[fam_ids[fi]] if m not in taken]
        if not members:
            continue
        members = [members[i] for i in rng_for(cfg.seed, "wordnet-family", fam_ids[fi]).permutation(len(members))]
        taken.update(members)
        if len(legacy) < cfg.legacy:
            n_hold = int(len(members) * cfg.expansion_fraction) if len(expansion) < cfg.expansion else 0
            expansion.extend(members[:n_hold])
            legacy.extend(members[n_hold:])
        elif len(organic) < cfg.organic:
            organic.extend(members)
        elif len(reference) < cfg.reference:
            reference.extend(members)  # whole families: none shares a parent with a mined or trained anchor
        else:
            break
    legacy, expansion, organic = legacy[: cfg.legacy], expansion[: cfg.expansion], organic[: cfg.organic]
    reference = reference[: cfg.reference]
    if not legacy:
        raise ConfigError(
            f"no WordNet synset can be a legacy anchor with these options (min_killers={cfg.min_killers}); "
            "lower min_killers"
        )
    if len(legacy) < cfg.legacy:
        log.warning("WordNet has only %d eligible legacy synsets (asked for %d)", len(legacy), cfg.legacy)

    def bundle(o: str, pool: str) -> Bundle:
        s = synsets[o]
        return Bundle(
            bundle_id=s.synset_id, anchor=s.definition, positive=s.text, negatives=_negatives(o, graph, cfg), pool=pool
        )

    legacy_bundles = [bundle(o, "legacy") for o in legacy]
    frozen = legacy_bundles[: cfg.frozen_eval]
    eval_sets = {"frozen_eval": frozen}
    if reference:
        eval_sets[REFERENCE_SET] = [bundle(o, REFERENCE_SET) for o in reference]

    def candidate(o: str, with_negatives: bool) -> Candidate:
        s = synsets[o]
        negs = [n.text for n in _negatives(o, graph, cfg)] if with_negatives else None
        return Candidate(candidate_id=s.synset_id, anchor=s.definition, positive=s.text, negatives=negs)

    expansion_candidates = [candidate(o, True) for o in expansion]
    organic_candidates = [candidate(o, False) for o in organic]

    # Corpus: every text the world uses (and each used synset's sisters), then random fill.
    corpus_ids: dict[str, None] = {}
    for o in [*legacy, *expansion, *organic]:
        corpus_ids[o] = None
        for sis in graph.sisters(o):
            corpus_ids[sis] = None
    fill = rng_for(cfg.seed, "wordnet-corpus").permutation(len(graph.all))
    for i in fill:
        if len(corpus_ids) >= cfg.corpus:
            break
        corpus_ids.setdefault(graph.all[i], None)
    corpus = [CorpusDoc(id=synsets[o].synset_id, text=synsets[o].text) for o in list(corpus_ids)[: max(cfg.corpus, 1)]]
    return WorldContent(
        bundles={"legacy": legacy_bundles, **eval_sets},
        candidates={"expansion_candidates": expansion_candidates, "organic_candidates": organic_candidates},
        corpus=corpus,
    )


def build_wordnet_world(
    out: str | Path, config: WordNetWorldConfig | None = None, *, wordnet_dir: str | Path | None = None
) -> Path:
    """Build the WordNet world into ``out`` and return it.

    Raises:
        DataError: WordNet is not found (the message names the three ways to supply it).
    """
    cfg = config or WordNetWorldConfig()
    wn = find_wordnet(wordnet_dir)
    log.info("reading WordNet from %s", wn)
    content = build_wordnet_content(cfg, wn)
    source = {"kind": "wordnet", "dir": str(wn), "data.noun.sha256": file_sha256(wn / "data.noun")}
    return write_world(out, content, world="wordnet", config=cfg.model_dump(), source=source, fmt=cfg.format)
