"""Per-tier ranking metrics of one eval set, vectorised over bundles (pure numpy).

Inputs are cosine scores: ``s_pos[b] = s(a_b, p_b)`` and a padded matrix ``s_neg[b, j] = s(a_b, n_bj)``
with ``tiers[b, j]`` in {1, 2, 3} (0 marks padding). For a tier set ``T``:

- margin ``m_b = s_pos[b] - max_{j: tier in T} s_neg[b, j]``; bundles with no negative in ``T`` are left out
- accuracy = mean of ``m_b > 0`` (a tie fails); danger rate = mean of ``m_b <= delta``
- rank ``r_b = 1 + #{j in T: s_neg[b, j] >= s_pos[b]}``; MRR = mean of ``1 / r_b``
- margin distribution: mean, std (ddof=0), p5, p25, p50, p75, p95 (numpy linear interpolation)
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import numpy as np

TIER_SETS: dict[str, frozenset[int]] = {
    "1": frozenset({1}),
    "2": frozenset({2}),
    "3": frozenset({3}),
    "all": frozenset({1, 2, 3}),
}

QUANTILES: tuple[int, ...] = (5, 25, 50, 75, 95)


def margins(s_pos: np.ndarray, s_neg: np.ndarray, tiers: np.ndarray, tier_set: Collection[int]) -> np.ndarray:
    """Margins ``m_b`` for every bundle; ``nan`` where the bundle has no negative in ``tier_set``.

    Shapes: ``s_pos`` (B,), ``s_neg`` (B, N), ``tiers`` (B, N) -> (B,).
    """
    mask = np.isin(tiers, list(tier_set))  # (B, N)
    masked = np.where(mask, s_neg, -np.inf)
    hardest = masked.max(axis=1) if masked.shape[1] else np.full(len(s_pos), -np.inf)  # (B,)
    out = s_pos - hardest
    out[~mask.any(axis=1)] = np.nan
    return out.astype(np.float64)


def positive_ranks(s_pos: np.ndarray, s_neg: np.ndarray, tiers: np.ndarray, tier_set: Collection[int]) -> np.ndarray:
    """Rank of the positive among itself and the negatives in ``tier_set`` (ties rank below), (B,)."""
    mask = np.isin(tiers, list(tier_set))
    beaten = (s_neg >= s_pos[:, None]) & mask
    return 1 + beaten.sum(axis=1)


def margin_distribution(m: np.ndarray) -> dict[str, float | None]:
    """Mean, std (ddof=0) and the p5..p95 quantiles of the margins (all None for no bundles)."""
    keys = ["mean", "std"] + [f"p{q}" for q in QUANTILES]
    if m.size == 0:
        return dict.fromkeys(keys)
    qs = np.percentile(m, QUANTILES)
    out: dict[str, float | None] = {"mean": float(m.mean()), "std": float(m.std(ddof=0))}
    out.update({f"p{q}": float(v) for q, v in zip(QUANTILES, qs, strict=True)})
    return out


def tier_metrics(
    s_pos: np.ndarray,
    s_neg: np.ndarray,
    tiers: np.ndarray,
    tier_set: Collection[int],
    danger_margin: float,
) -> dict[str, Any]:
    """``n``, ``left_out``, ``accuracy``, ``mrr``, ``danger_rate`` and ``margin`` for one tier set."""
    m_all = margins(s_pos, s_neg, tiers, tier_set)
    kept = ~np.isnan(m_all)
    m = m_all[kept]
    n = int(kept.sum())
    if n == 0:
        return {
            "n": 0,
            "left_out": int(len(s_pos)),
            "accuracy": None,
            "mrr": None,
            "danger_rate": None,
            "margin": margin_distribution(m),
        }
    ranks = positive_ranks(s_pos, s_neg, tiers, tier_set)[kept]
    return {
        "n": n,
        "left_out": int(len(s_pos) - n),
        "accuracy": float(np.mean(m > 0)),
        "mrr": float(np.mean(1.0 / ranks)),
        "danger_rate": float(np.mean(m <= danger_margin)),
        "margin": margin_distribution(m),
    }


def all_tier_metrics(
    s_pos: np.ndarray, s_neg: np.ndarray, tiers: np.ndarray, danger_margin: float
) -> dict[str, dict[str, Any]]:
    """:func:`tier_metrics` for every key of :data:`TIER_SETS` (``"1"``, ``"2"``, ``"3"``, ``"all"``)."""
    return {key: tier_metrics(s_pos, s_neg, tiers, ts, danger_margin) for key, ts in TIER_SETS.items()}
