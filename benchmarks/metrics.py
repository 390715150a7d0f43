"""Scoreboard metrics: the vectorised kernel vs a per-bundle Python loop, same inputs, one run.

Usage: python benchmarks/metrics.py [--bundles 20000] [--negatives 10]
Prints a table of times and the speed-up ratio (ratios, not absolute times, are what to compare).
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from crucible_ray.metrics import TIER_SETS, all_tier_metrics


def loop_reference(s_pos: np.ndarray, s_neg: np.ndarray, tiers: np.ndarray, delta: float) -> dict[str, float]:
    out = {}
    for key, ts in TIER_SETS.items():
        ms, rr = [], []
        for b in range(len(s_pos)):
            negs = [s_neg[b, j] for j in range(s_neg.shape[1]) if tiers[b, j] in ts]
            if negs:
                ms.append(s_pos[b] - max(negs))
                rr.append(1.0 / (1 + sum(1 for n in negs if n >= s_pos[b])))
        out[key] = float(np.mean([m > 0 for m in ms]))
    return out


def best_of(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bundles", type=int, default=20000)
    ap.add_argument("--negatives", type=int, default=10)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    s_pos = rng.uniform(-1, 1, args.bundles)
    s_neg = rng.uniform(-1, 1, (args.bundles, args.negatives))
    tiers = rng.integers(0, 4, (args.bundles, args.negatives))
    vec = all_tier_metrics(s_pos, s_neg, tiers, 0.05)
    ref = loop_reference(s_pos, s_neg, tiers, 0.05)
    assert all(abs(vec[k]["accuracy"] - ref[k]) < 1e-12 for k in ref), "kernel and reference disagree"
    t_vec = best_of(lambda: all_tier_metrics(s_pos, s_neg, tiers, 0.05), 5)
    t_ref = best_of(lambda: loop_reference(s_pos, s_neg, tiers, 0.05), 1)
    print(f"machine: {platform.machine()}, {platform.processor() or '?'}; {args.bundles} bundles x {args.negatives}")
    print(f"{'implementation':<28}{'seconds':>10}{'bundles/s':>14}{'ratio':>8}")
    for name, t in (("python loop (reference)", t_ref), ("vectorised numpy", t_vec)):
        print(f"{name:<28}{t:>10.4f}{args.bundles / t:>14,.0f}{t_ref / t:>8.1f}")


if __name__ == "__main__":
    main()
