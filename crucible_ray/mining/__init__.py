"""The organic miner: multi-lineup validation of candidate hard cases (pure numpy/torch, no Ray).

A candidate is accepted only if it stays dangerous in at least ``min_passes`` of ``lineups``
independent lineups of its negatives, so a lucky draw of one hard negative is not enough.
The Ray Data pipeline around this lives in :mod:`crucible_ray.distributed`.
"""

from crucible_ray.mining._batch import RESULT_SCHEMA, CandidateBatch, embed_texts, mine_batch
from crucible_ray.mining._config import MinerConfig
from crucible_ray.mining._corpus import CorpusIndex, dedupe_corpus, open_embeddings
from crucible_ray.mining._kernel import (
    SCORING,
    LineupVerdict,
    judge_lineups,
    product_tolerance,
    retrieve,
    rowwise_scores,
    settle_near_thresholds,
)
from crucible_ray.mining._lineups import (
    DRAW_SCHEME,
    candidate_key,
    draw_lineup_scalar,
    draw_lineups,
    lineup_randoms,
)
from crucible_ray.mining._text import normalize_text, text_code

__all__ = [
    "DRAW_SCHEME",
    "RESULT_SCHEMA",
    "SCORING",
    "CandidateBatch",
    "CorpusIndex",
    "LineupVerdict",
    "MinerConfig",
    "candidate_key",
    "dedupe_corpus",
    "draw_lineup_scalar",
    "draw_lineups",
    "embed_texts",
    "judge_lineups",
    "lineup_randoms",
    "mine_batch",
    "normalize_text",
    "open_embeddings",
    "product_tolerance",
    "retrieve",
    "rowwise_scores",
    "settle_near_thresholds",
    "text_code",
]
