"""Metrics against hand-computed cases and a brute-force reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crucible_ray.metrics import all_tier_metrics, margins, positive_ranks, tier_metrics


def _case() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # bundle 0: pos 0.9; negatives t3 0.5, t1 0.2         -> t3 margin 0.4
    # bundle 1: pos 0.6; negatives t3 0.6 (tie), t2 0.7   -> t3 margin 0.0 (tie fails)
    # bundle 2: pos 0.3; negatives t2 0.1 only (no tier 3) -> left out of tier 3
    s_pos = np.array([0.9, 0.6, 0.3])
    s_neg = np.array([[0.5, 0.2], [0.6, 0.7], [0.1, 0.0]])
    tiers = np.array([[3, 1], [3, 2], [2, 0]])  # 0 = padding
    return s_pos, s_neg, tiers


def test_tier3_hand_computed_with_tie_and_left_out() -> None:
    s_pos, s_neg, tiers = _case()
    t3 = tier_metrics(s_pos, s_neg, tiers, {3}, danger_margin=0.05)
    assert t3["n"] == 2 and t3["left_out"] == 1
    assert t3["accuracy"] == pytest.approx(0.5)  # the tie is a failure
    # ranks: bundle 0 -> 1; bundle 1 -> 2 (the tie ranks above the positive) -> MRR (1 + 1/2) / 2
    assert t3["mrr"] == pytest.approx(0.75)
    assert t3["danger_rate"] == pytest.approx(0.5)  # margin 0.0 <= 0.05, margin 0.4 is not
    assert t3["margin"]["mean"] == pytest.approx(0.2)
    assert t3["margin"]["std"] == pytest.approx(0.2)  # ddof = 0
    assert t3["margin"]["p50"] == pytest.approx(0.2)
    assert t3["margin"]["p25"] == pytest.approx(0.1)  # linear interpolation between 0.0 and 0.4


def test_all_tiers_hand_computed() -> None:
    s_pos, s_neg, tiers = _case()
    out = all_tier_metrics(s_pos, s_neg, tiers, danger_margin=0.0)
    assert out["1"]["n"] == 1 and out["1"]["left_out"] == 2 and out["1"]["accuracy"] == 1.0
    assert out["2"]["n"] == 2 and out["2"]["accuracy"] == pytest.approx(0.5)  # 0.6 < 0.7 fails; 0.3 > 0.1
    # all tiers: margins 0.4, -0.1, 0.2 -> accuracy 2/3; danger at 0.0 -> 1/3; ranks 1, 3, 1
    assert out["all"]["n"] == 3 and out["all"]["left_out"] == 0
    assert out["all"]["accuracy"] == pytest.approx(2 / 3)
    assert out["all"]["danger_rate"] == pytest.approx(1 / 3)
    assert out["all"]["mrr"] == pytest.approx((1 + 1 / 3 + 1) / 3)


def test_empty_tier_gives_nulls() -> None:
    s_pos, s_neg, tiers = _case()
    tiers = np.where(tiers == 3, 2, tiers)
    t3 = tier_metrics(s_pos, s_neg, tiers, {3}, danger_margin=0.05)
    assert t3["n"] == 0 and t3["left_out"] == 3
    assert t3["accuracy"] is None and t3["mrr"] is None and t3["danger_rate"] is None
    assert all(v is None for v in t3["margin"].values())


def test_quantiles_follow_numpy_linear_interpolation() -> None:
    s_pos = np.linspace(0.1, 1.0, 10)
    s_neg = np.zeros((10, 1))
    tiers = np.full((10, 1), 3)
    m = tier_metrics(s_pos, s_neg, tiers, {3}, 0.0)["margin"]
    for q in (5, 25, 50, 75, 95):
        assert m[f"p{q}"] == pytest.approx(float(np.percentile(s_pos, q)))
    assert m["p5"] == pytest.approx(0.145)  # position 0.05 * 9 = 0.45 between 0.1 and 0.2


def _reference(s_pos, s_neg, tiers, tier_set, delta):  # type: ignore[no-untyped-def]
    """A plain loop over bundles, straight from the definitions."""
    ms, rr = [], []
    for b in range(len(s_pos)):
        negs = [s_neg[b, j] for j in range(s_neg.shape[1]) if tiers[b, j] in tier_set]
        if not negs:
            continue
        ms.append(s_pos[b] - max(negs))
        rr.append(1.0 / (1 + sum(1 for n in negs if n >= s_pos[b])))
    if not ms:
        return None
    return {
        "n": len(ms),
        "accuracy": np.mean([m > 0 for m in ms]),
        "mrr": np.mean(rr),
        "danger_rate": np.mean([m <= delta for m in ms]),
        "mean": np.mean(ms),
    }


@settings(max_examples=60, deadline=None)
@given(
    b=st.integers(1, 12),
    n=st.integers(1, 6),
    seed=st.integers(0, 10_000),
    delta=st.sampled_from([-0.1, 0.0, 0.05, 0.2]),
)
def test_vectorised_matches_reference(b: int, n: int, seed: int, delta: float) -> None:
    rng = np.random.default_rng(seed)
    # Scores on a coarse grid so that ties happen often.
    s_pos = rng.integers(-4, 5, size=b) / 4
    s_neg = rng.integers(-4, 5, size=(b, n)) / 4
    tiers = rng.integers(0, 4, size=(b, n))
    for key, ts in {"1": {1}, "2": {2}, "3": {3}, "all": {1, 2, 3}}.items():
        got = tier_metrics(s_pos, s_neg, tiers, ts, delta)
        ref = _reference(s_pos, s_neg, tiers, ts, delta)
        if ref is None:
            assert got["n"] == 0 and got["accuracy"] is None, key
            continue
        assert got["n"] == ref["n"] and got["left_out"] == b - ref["n"]
        assert got["accuracy"] == pytest.approx(ref["accuracy"])
        assert got["mrr"] == pytest.approx(ref["mrr"])
        assert got["danger_rate"] == pytest.approx(ref["danger_rate"])
        assert got["margin"]["mean"] == pytest.approx(ref["mean"])


def test_margins_and_ranks_shapes() -> None:
    s_pos, s_neg, tiers = _case()
    m = margins(s_pos, s_neg, tiers, {3})
    assert m.shape == (3,) and np.isnan(m[2])
    assert positive_ranks(s_pos, s_neg, tiers, {1, 2, 3}).tolist() == [1, 3, 1]
