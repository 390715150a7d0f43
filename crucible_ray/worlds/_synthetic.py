"""The synthetic world: seeded, dependency-free, tiny by default, every pool ready to train on.

A three-level hierarchy (domain > family > item) over invented words. An item's anchor describes it
in one vocabulary (``tovu mirasel that is kelo and bratu``); its positive names it in another, made of
aliases (``zefa quonid lupe dasso``): the domain alias, the family alias, and the aliases of its two
attributes. Sister items share the domain and family aliases and often one attribute, so they are
genuinely confusable (tier 3); items of another family in the same domain share the domain alias
(tier 2); items of other domains share nothing (tier 1). The anchor and positive share no words, so an
untrained encoder is near chance and a trained one must learn the word-to-alias map, which transfers
to unseen attribute combinations (the organic holdout).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from crucible_ray._rng import rng_for, stable_fraction
from crucible_ray.data import Bundle, Candidate, CorpusDoc, Negative
from crucible_ray.worlds._world import WorldContent, write_world

_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "kl", "st", "tr", "qu")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ou")
_CODAS = ("", "", "n", "l", "s", "r", "d")


#: The largest synthetic world (items, and distractor texts): a few hundred MB of files.
MAX_ITEMS = 1_000_000


class SyntheticWorldConfig(BaseModel):
    """Shape and split of the synthetic world."""

    model_config = ConfigDict(extra="forbid")

    domains: int = Field(4, ge=2, le=1000)
    families: int = Field(6, ge=2, le=1000, description="families per domain")
    items: int = Field(8, ge=3, le=10_000, description="items per family")
    attributes: int = Field(40, ge=6, le=100_000, description="shared attribute words")
    tier3: int = Field(4, ge=1, le=64)
    tier2: int = Field(2, ge=0, le=64)
    tier1: int = Field(2, ge=0, le=64)
    legacy_share: float = Field(0.5, gt=0, lt=1)
    expansion_share: float = Field(0.15, ge=0, lt=1)
    organic_share: float = Field(0.2, ge=0, lt=1)
    frozen_eval_share: float = Field(0.5, gt=0, le=1, description="share of legacy in the frozen eval")
    distractors: int = Field(200, ge=0, le=MAX_ITEMS, description="extra corpus texts that name no item")
    seed: int = Field(0, ge=0)
    format: Literal["jsonl", "parquet"] = "jsonl"

    @model_validator(mode="after")
    def _bounded(self) -> SyntheticWorldConfig:
        total = self.domains * self.families * self.items
        if total > MAX_ITEMS:
            raise ValueError(
                f"domains x families x items must be <= {MAX_ITEMS:,}, but got {total:,}; "
                "the synthetic world is for tests and demos (build a large world from real data)"
            )
        return self


@dataclass(frozen=True)
class _Item:
    item_id: str
    domain: int
    family: int
    attrs: tuple[int, int]
    anchor: str
    positive: str


def _words(seed: int, n: int, tag: str, taken: set[str]) -> list[str]:
    rng = rng_for(seed, "synthetic-words", tag)
    out: list[str] = []
    while len(out) < n:
        syllables = int(rng.integers(2, 4))
        w = "".join(
            _ONSETS[rng.integers(len(_ONSETS))]
            + _VOWELS[rng.integers(len(_VOWELS))]
            + _CODAS[rng.integers(len(_CODAS))]
            for _ in range(syllables)
        )
        if w not in taken:
            taken.add(w)
            out.append(w)
    return out


def _items(cfg: SyntheticWorldConfig) -> list[_Item]:
    taken: set[str] = set()
    dom_w, dom_a = _words(cfg.seed, cfg.domains, "domain", taken), _words(cfg.seed, cfg.domains, "domain-alias", taken)
    n_fam = cfg.domains * cfg.families
    fam_w, fam_a = _words(cfg.seed, n_fam, "family", taken), _words(cfg.seed, n_fam, "family-alias", taken)
    att_w, att_a = (
        _words(cfg.seed, cfg.attributes, "attr", taken),
        _words(cfg.seed, cfg.attributes, "attr-alias", taken),
    )
    pairs = list(combinations(range(cfg.attributes), 2))
    items = []
    for d in range(cfg.domains):
        for f in range(cfg.families):
            fam = d * cfg.families + f
            chosen = rng_for(cfg.seed, "synthetic-family", fam).choice(len(pairs), size=cfg.items, replace=False)
            for i, pi in enumerate(sorted(int(x) for x in chosen)):
                a1, a2 = pairs[pi]
                items.append(
                    _Item(
                        item_id=f"syn:{d}.{f}.{i}",
                        domain=d,
                        family=fam,
                        attrs=(a1, a2),
                        anchor=f"{dom_w[d]} {fam_w[fam]} that is {att_w[a1]} and {att_w[a2]}",
                        positive=f"{dom_a[d]} {fam_a[fam]} {att_a[a1]} {att_a[a2]}",
                    )
                )
    return items


def _negatives(item: _Item, items: list[_Item], cfg: SyntheticWorldConfig) -> list[Negative]:
    rng = rng_for(cfg.seed, "synthetic-negatives", item.item_id)
    groups: list[tuple[Literal[1, 2, 3], list[_Item], int]] = [
        (3, [x for x in items if x.family == item.family and x is not item], cfg.tier3),
        (2, [x for x in items if x.domain == item.domain and x.family != item.family], cfg.tier2),
        (1, [x for x in items if x.domain != item.domain], cfg.tier1),
    ]
    out = []
    for tier, pool, k in groups:
        for j in rng.permutation(len(pool))[:k]:
            out.append(Negative(text=pool[int(j)].positive, tier=tier))
    return out


def build_synthetic_content(cfg: SyntheticWorldConfig) -> WorldContent:
    """Build every pool, eval set, candidate file and the corpus of the synthetic world."""
    if cfg.legacy_share + cfg.expansion_share + cfg.organic_share >= 1:
        from crucible_ray.errors import ConfigError

        raise ConfigError(
            "legacy_share + expansion_share + organic_share must leave room for the organic holdout (< 1)."
        )
    items = _items(cfg)
    cuts = [cfg.legacy_share, cfg.expansion_share, cfg.organic_share]
    split: dict[str, list[_Item]] = {"legacy": [], "expansion": [], "organic": [], "organic_holdout": []}
    for it in items:
        u = stable_fraction(cfg.seed, "synthetic-split", it.item_id)
        name = "organic_holdout"
        acc = 0.0
        for pool, share in zip(("legacy", "expansion", "organic"), cuts, strict=True):
            acc += share
            if u < acc:
                name = pool
                break
        split[name].append(it)

    def bundles(pool: str, members: list[_Item]) -> list[Bundle]:
        return [
            Bundle(
                bundle_id=it.item_id,
                anchor=it.anchor,
                positive=it.positive,
                negatives=_negatives(it, items, cfg),
                pool=pool,
            )
            for it in members
        ]

    legacy = bundles("legacy", split["legacy"])
    n_eval = max(1, round(len(legacy) * cfg.frozen_eval_share))
    eval_ids = sorted(legacy, key=lambda b: stable_fraction(cfg.seed, "synthetic-eval", b.bundle_id))[:n_eval]
    keep = {b.bundle_id for b in eval_ids}
    frozen_eval = [b for b in legacy if b.bundle_id in keep]
    out_bundles = {
        "legacy": legacy,
        "expansion": bundles("expansion", split["expansion"]),
        "organic": bundles("organic", split["organic"]),
        "frozen_eval": frozen_eval,
        "organic_holdout": bundles("organic", split["organic_holdout"]),
    }
    out_bundles = {k: v for k, v in out_bundles.items() if v}
    candidates = {
        "expansion_candidates": [
            Candidate(
                candidate_id=it.item_id,
                anchor=it.anchor,
                positive=it.positive,
                negatives=[n.text for n in _negatives(it, items, cfg)],
            )
            for it in split["expansion"]
        ],
        "organic_candidates": [
            Candidate(candidate_id=it.item_id, anchor=it.anchor, positive=it.positive)
            for it in split["organic"] + split["organic_holdout"]
        ],
    }
    candidates = {k: v for k, v in candidates.items() if v}
    corpus = [CorpusDoc(id=it.item_id, text=it.positive) for it in items]
    rng = rng_for(cfg.seed, "synthetic-distractors")
    known = {it.positive for it in items}
    alias_words = sorted({w for it in items for w in it.positive.split()})
    while len(corpus) < len(items) + cfg.distractors:
        text = " ".join(alias_words[int(i)] for i in rng.choice(len(alias_words), size=4, replace=False))
        if text not in known:
            known.add(text)
            corpus.append(CorpusDoc(id=f"syn:x.{len(corpus) - len(items)}", text=text))
    return WorldContent(bundles=out_bundles, candidates=candidates, corpus=corpus)


def build_synthetic_world(out: str | Path, config: SyntheticWorldConfig | None = None) -> Path:
    """Build the synthetic world into ``out`` and return it."""
    cfg = config or SyntheticWorldConfig()
    content = build_synthetic_content(cfg)
    return write_world(
        out, content, world="synthetic", config=cfg.model_dump(), source={"kind": "synthetic"}, fmt=cfg.format
    )
