"""Seed statistics: mean, std, n and a Student-t 95% interval; paired tests with Holm's correction."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

CONFIDENCE = 0.95


def seed_summary(values: np.ndarray) -> dict[str, float]:
    """``mean``, ``std`` (sample, ddof=1), ``n``, ``ci_low``, ``ci_high`` over one config's seeds.

    With one seed the std and the interval are NaN: one run says nothing about seed variance.
    """
    v = np.asarray(values, dtype=np.float64)
    n = len(v)
    mean = float(v.mean()) if n else math.nan
    if n < 2:
        return {"mean": mean, "std": math.nan, "n": n, "ci_low": math.nan, "ci_high": math.nan}
    std = float(v.std(ddof=1))
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1)) * std / math.sqrt(n)
    return {"mean": mean, "std": std, "n": n, "ci_low": mean - half, "ci_high": mean + half}


def paired_test(diffs: np.ndarray) -> float:
    """Two-sided p-value of a paired t-test on per-seed differences (NaN below 2 pairs).

    All-equal differences give p = 0 when they are non-zero (a consistent shift) and 1 when zero.
    """
    d = np.asarray(diffs, dtype=np.float64)
    if len(d) < 2:
        return math.nan
    if np.allclose(d, d[0]):
        return 1.0 if d[0] == 0 else 0.0
    return float(stats.ttest_1samp(d, 0.0).pvalue)


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjustment (family-wise error); NaN entries stay NaN and are not counted.

    Example:
        >>> [round(p, 3) for p in holm([0.01, 0.04, 0.03])]
        [0.03, 0.06, 0.06]
    """
    idx = [i for i, p in enumerate(pvalues) if not math.isnan(p)]
    m = len(idx)
    out = [math.nan] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(sorted(idx, key=lambda i: pvalues[i])):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        out[i] = running
    return out
