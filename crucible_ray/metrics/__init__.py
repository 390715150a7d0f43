"""Ranking metrics over tiered negatives (pure numpy; see docs/metrics.md)."""

from crucible_ray.metrics._scores import BundleScores, score_bundles
from crucible_ray.metrics._tiers import (
    QUANTILES,
    TIER_SETS,
    all_tier_metrics,
    margin_distribution,
    margins,
    positive_ranks,
    tier_metrics,
)

__all__ = [
    "QUANTILES",
    "TIER_SETS",
    "BundleScores",
    "all_tier_metrics",
    "margin_distribution",
    "margins",
    "positive_ranks",
    "score_bundles",
    "tier_metrics",
]
