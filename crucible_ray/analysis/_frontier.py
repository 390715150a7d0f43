"""Pareto dominance over two maximised objectives, the 2-D hypervolume, and seed-bootstrap stability."""

from __future__ import annotations

import numpy as np

from crucible_ray._rng import rng_for


def frontier_mask(points: np.ndarray) -> np.ndarray:
    """Which points no other point dominates (at least as good on both objectives, better on one).

    Args:
        points: ``(n, 2)`` objective values, both maximised.

    Returns:
        ``(n,)`` bool. Identical points are all on the frontier (neither dominates the other).

    Example:
        >>> frontier_mask(np.array([[0.9, 0.1], [0.5, 0.5], [0.4, 0.4]])).tolist()
        [True, True, False]
    """
    p = np.asarray(points, dtype=np.float64)  # (n, 2)
    if p.ndim != 2 or p.shape[1] != 2:
        raise ValueError(f"points must have shape (n, 2), got {p.shape}")
    geq = (p[:, None, :] >= p[None, :, :]).all(axis=2)  # geq[j, i]: j at least as good as i on both
    gt = (p[:, None, :] > p[None, :, :]).any(axis=2)  # gt[j, i]: j better than i on one
    dominated = (geq & gt).any(axis=0)  # (n,)
    return np.asarray(~dominated)


def hypervolume(points: np.ndarray, reference: tuple[float, float] = (0.0, 0.0)) -> float:
    """Area dominated by ``points`` and bounded below by ``reference`` (both objectives maximised).

    Example:
        >>> hypervolume(np.array([[1.0, 0.5], [0.5, 1.0]]))
        0.75
    """
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    p = p[(p[:, 0] > reference[0]) & (p[:, 1] > reference[1])]
    if len(p) == 0:
        return 0.0
    front = p[frontier_mask(p)]
    front = front[np.argsort(-front[:, 0], kind="stable")]  # retention descending -> generalization rising
    area, y_done = 0.0, reference[1]
    for x, y in front:
        if y > y_done:
            area += (x - reference[0]) * (y - y_done)
            y_done = y
    return float(area)


def frontier_probability(
    per_seed: list[dict[int, tuple[float, float]]],
    *,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> np.ndarray:
    """Share of seed-bootstrap resamples in which each config's mean is on the frontier.

    Each resample draws the sweep's seeds with replacement (the same draw for every config, since
    seeds are shared across configs) and recomputes each config's mean over the drawn seeds it has;
    a config that has none of them keeps its full mean.

    Args:
        per_seed: for each config, ``{seed: (retention, generalization)}``.
    """
    seeds = sorted({s for c in per_seed for s in c})
    n = len(per_seed)
    if n == 0:
        return np.zeros(0)
    values = np.full((n, len(seeds), 2), np.nan)  # (config, seed, objective)
    for i, c in enumerate(per_seed):
        for j, s in enumerate(seeds):
            if s in c:
                values[i, j] = c[s]
    full_mean = np.nanmean(values, axis=1)  # (n, 2)
    rng = rng_for(seed, "pareto-bootstrap", len(seeds), n)
    hits = np.zeros(n)
    for _ in range(n_bootstrap):
        counts = np.bincount(rng.integers(0, len(seeds), len(seeds)), minlength=len(seeds))  # (seeds,)
        w = np.where(np.isnan(values[..., 0]), 0.0, counts[None, :])  # (n, seeds)
        tot = w.sum(axis=1, keepdims=True)  # (n, 1)
        mean = np.where(
            tot > 0, np.nansum(np.nan_to_num(values) * w[..., None], axis=1) / np.maximum(tot, 1), full_mean
        )
        hits += frontier_mask(mean)
    return hits / n_bootstrap
