"""Findings of a sweep, each with a 95% interval across seeds: dilution, gain and early stop.

A finding is an effect estimated once per seed and summarised over the seeds (Student-t interval,
docs/sweeps.md "Findings"). It is *detected* only when its interval excludes zero; otherwise it is
reported as "not detected", with the interval, so a reader sees how large it could still be.

- **dilution**: how retention changes per 10 points of legacy share (the least-squares slope over the
  ratios of one seed at one milestone). A positive slope means a smaller legacy share loses retention.
- **gain**: how generalization changes per 10 points of organic share, the same way.
- **early stop**: per ratio, the milestone where generalization peaks (seed means), and whether it has
  dropped by the last milestone beyond seed noise (the paired per-seed drop from the peak).

Generalization on a mined holdout depends on the miner that built it (same families, same style, even
the same negatives as the organic pool it is compared with). Where the world has a label-based
reference set (``organic_reference``: held-out families, negatives from the labels, never trained on),
gain and early stop are also measured on it, and the lines say which is which.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from crucible_ray.analysis._stats import seed_summary
from crucible_ray.analysis._table import POOLS_COLUMN, table_ratios
from crucible_ray.config import DEFAULT_POOLS

#: The slopes are per this many percentage points of a pool's share.
PER_POINTS = 10

#: The label-based generalization reference of a world (docs/formats.md) and its results column.
REFERENCE_SET = "organic_reference"


def reference_column(reference_set: str = REFERENCE_SET) -> str:
    """The results-table column of a reference set: its tier-3 accuracy, as retention and generalization."""
    return f"{reference_set}_tier3_accuracy"


@dataclass(frozen=True)
class Effect:
    """One measured effect: a mean over seeds and its 95% interval."""

    finding: str  # "dilution", "gain", "early stop"
    subject: str  # what it is measured on, e.g. "step 1000" or "75_15_10"
    what: str  # the quantity, e.g. "retention per 10 points of legacy share"
    estimate: float
    ci_low: float
    ci_high: float
    n_seeds: int

    @property
    def detected(self) -> bool:
        """The interval excludes zero (never with fewer than two seeds: no interval then)."""
        return not math.isnan(self.ci_low) and (self.ci_low > 0 or self.ci_high < 0)

    def sentence(self) -> str:
        """One line for the console and the report.

        Example:
            >>> Effect("dilution", "step 1000", "retention", 0.031, 0.025, 0.037, 3).sentence()
            'dilution at step 1000: retention +0.0310 (95% CI +0.0250 to +0.0370, 3 seeds): detected'
        """
        if self.n_seeds < 2:
            ci = f"{self.n_seeds} seed, no interval"
        else:
            ci = f"95% CI {self.ci_low:+.4f} to {self.ci_high:+.4f}, {self.n_seeds} seeds"
        verdict = "detected" if self.detected else "not detected (the interval includes zero)"
        return f"{self.finding} at {self.subject}: {self.what} {self.estimate:+.4f} ({ci}): {verdict}"


@dataclass(frozen=True)
class Peak:
    """Where one ratio's generalization peaks, and what happens after it."""

    ratio: str
    peak_step: int
    last_step: int
    drop: Effect | None  # the drop from the peak to the last milestone; None when the peak is the last
    objective: str = "generalization"

    @property
    def cliff(self) -> bool:
        """Generalization at the last milestone is below the peak beyond seed noise."""
        return self.drop is not None and self.drop.detected and self.drop.estimate > 0

    def sentence(self) -> str:
        head = f"early stop for {self.ratio}: {self.objective}"
        if self.drop is None:
            return f"{head} had not peaked by the last milestone ({self.last_step})"
        tail = "a cliff: it falls after the peak" if self.cliff else "no drop after it beyond seed noise"
        return f"{head} peaks at step {self.peak_step}; {tail} ({self.drop.sentence()})"


def _shares(table: pd.DataFrame, pool: str, pools: Sequence[str]) -> pd.Series:
    """Each row's share (percent) of ``pool``, read through :class:`Ratio` with the table's pool names
    (``pools`` for a table without a ``pools`` column)."""
    if POOLS_COLUMN not in table.columns:
        table = table.assign(**{POOLS_COLUMN: ",".join(pools)})
    ratios = table_ratios(table)
    return table["ratio"].map(lambda r: float(ratios[str(r)].weights.get(pool, 0)))


def share_slopes(
    table: pd.DataFrame, objective: str, pool: str, *, pools: Sequence[str] = DEFAULT_POOLS, finding: str
) -> list[Effect]:
    """Per milestone: the change in ``objective`` per 10 points of ``pool``'s share, over seeds.

    For each seed and step the slope is fitted over that seed's ratios (param columns averaged); a seed
    with fewer than two distinct shares at a step gives no slope there.
    """
    df = table.assign(_share=_shares(table, pool, pools))
    means = df.groupby(["step", "seed", "_share"], sort=True)[objective].mean().reset_index()
    out: list[Effect] = []
    for step, at_step in means.groupby("step", sort=True):
        slopes = []
        for _, g in at_step.groupby("seed", sort=True):
            x = g["_share"].to_numpy()
            if len(np.unique(x)) < 2 or g[objective].isna().any():
                continue
            slopes.append(float(np.polyfit(x, g[objective].to_numpy(), 1)[0]) * PER_POINTS)
        if not slopes:
            continue
        s = seed_summary(np.array(slopes))
        what = f"{objective} per {PER_POINTS} points of {pool} share"
        out.append(Effect(finding, f"step {int(step)}", what, s["mean"], s["ci_low"], s["ci_high"], int(s["n"])))
    return out


def dilution(table: pd.DataFrame, *, legacy_pool: str = "legacy", pools: Sequence[str] = DEFAULT_POOLS) -> list[Effect]:
    """Retention per 10 points of legacy share, at each milestone (positive: dilution)."""
    return share_slopes(table, "retention", legacy_pool, pools=pools, finding="dilution")


def gain(table: pd.DataFrame, *, organic_pool: str = "organic", pools: Sequence[str] = DEFAULT_POOLS) -> list[Effect]:
    """Generalization per 10 points of organic share, at each milestone (positive: a gain)."""
    return share_slopes(table, "generalization", organic_pool, pools=pools, finding="gain")


def peaks(table: pd.DataFrame, objective: str = "generalization", *, label: str | None = None) -> list[Peak]:
    """Per ratio (params averaged): the milestone with the best seed mean and the per-seed drop after it."""
    per_seed = table.groupby(["ratio", "seed", "step"], sort=True)[objective].mean().unstack("step")
    out: list[Peak] = []
    for ratio, g in per_seed.groupby(level="ratio", sort=True):
        g = g.dropna(axis=1, how="all")
        if g.shape[1] == 0:
            continue
        steps = [int(s) for s in g.columns]
        means = g.mean(axis=0).to_numpy()
        peak = steps[int(np.nanargmax(means))]
        last = steps[-1]
        drop = None
        if peak != last:
            d = (g[peak] - g[last]).dropna().to_numpy()
            s = seed_summary(d)
            drop = Effect(
                "early stop",
                str(ratio),
                f"{label or objective} drop from step {peak} to {last}",
                s["mean"],
                s["ci_low"],
                s["ci_high"],
                int(s["n"]),
            )
        out.append(Peak(str(ratio), peak, last, drop, label or objective))
    return out


@dataclass(frozen=True)
class Findings:
    """Every finding of a sweep, in the order the demo prints and the report shows them."""

    dilution: list[Effect]
    gain: list[Effect]
    peaks: list[Peak]
    legacy_pool: str
    organic_pool: str
    reference_gain: list[Effect] | None = None  # None: the sweep has no reference set
    reference_peaks: list[Peak] | None = None
    reference_set: str = REFERENCE_SET

    def lines(self) -> list[str]:
        """One sentence per finding; a missing pool or too few ratios is said, not skipped."""
        out = [e.sentence() for e in self.dilution] or [
            f"dilution: not measurable (the sweep needs at least two {self.legacy_pool} shares)"
        ]
        out += [e.sentence() for e in self.gain] or [
            f"gain: not measurable (the sweep needs at least two {self.organic_pool} shares)"
        ]
        if self.reference_gain is None:
            out.append(
                f"gain on a label-based reference: not measured (no {self.reference_set!r} eval set in the world; "
                "the gain above is measured on a holdout mined by the same miner)"
            )
        else:
            out += [e.sentence() for e in self.reference_gain] or [
                f"gain on {self.reference_set}: not measurable "
                f"(the sweep needs at least two {self.organic_pool} shares)"
            ]
        out += [p.sentence() for p in self.peaks]
        out += [p.sentence() for p in self.reference_peaks or []]
        return out


def findings(
    table: pd.DataFrame,
    *,
    legacy_pool: str = "legacy",
    organic_pool: str = "organic",
    pools: Sequence[str] = DEFAULT_POOLS,
    reference_set: str = REFERENCE_SET,
) -> Findings:
    """Dilution, gain and early stop of a results table (:func:`crucible_ray.analysis.load_results`),
    gain and early stop also on the label-based ``reference_set`` when the table has it.

    Example:
        >>> for line in findings(load_results("runs/sweep")).lines():  # doctest: +SKIP
        ...     print(line)
    """
    column = reference_column(reference_set)
    has_reference = column in table.columns and table[column].notna().any()
    label = f"{reference_set} accuracy"
    return Findings(
        dilution=dilution(table, legacy_pool=legacy_pool, pools=pools),
        gain=gain(table, organic_pool=organic_pool, pools=pools),
        peaks=peaks(table),
        legacy_pool=legacy_pool,
        organic_pool=organic_pool,
        reference_gain=(
            share_slopes(table.rename(columns={column: label}), label, organic_pool, pools=pools, finding="gain")
            if has_reference
            else None
        ),
        reference_peaks=peaks(table, column, label=label) if has_reference else None,
        reference_set=reference_set,
    )


def mining_lines(name: str, manifest: dict[str, object]) -> list[str]:
    """What a mining run's manifest says about validation: the pass rate, the pass-count histogram, and
    the pseudo-killers the P-of-K rule caught (candidates dangerous in some lineups but fewer than P,
    which one lineup would have accepted with probability passes / K).

    Example:
        >>> doc = {"config": {"lineups": 10, "min_passes": 3}, "counts": {"candidates": 100, "accepted": 60,
        ...        "pass_rate": 0.6, "pass_count_histogram": {"0": 30, "1": 6, "2": 4, "10": 60}}}
        >>> line = mining_lines("organic", doc)[1]
        >>> "caught: 10 candidates" in line, "3-of-10 rule" in line, line.endswith("about 1.4 of them")
        (True, True, True)
    """
    config = manifest.get("config") or {}
    counts = manifest.get("counts") or {}
    assert isinstance(config, dict) and isinstance(counts, dict)
    k, p = int(config.get("lineups", 0)), int(config.get("min_passes", 0))
    hist = {int(a): int(b) for a, b in (counts.get("pass_count_histogram") or {}).items()}
    shown = ", ".join(f"{a}: {hist[a]}" for a in sorted(hist))
    accepted, total = int(counts.get("accepted", 0)), int(counts.get("candidates", 0))
    lines = [
        f"{name}: {accepted} of {total} candidates accepted "
        f"(pass rate {accepted / total if total else 0.0:.1%}); passes of {k} lineups: {shown}"
    ]
    if k and p > 1:
        caught = sum(n for a, n in hist.items() if 1 <= a < p)
        single = sum(n * a / k for a, n in hist.items() if 1 <= a < p)
        lines.append(
            f"{name}: pseudo-killers caught: {caught} candidates were dangerous in 1-{p - 1} of {k} lineups and "
            f"rejected by the {p}-of-{k} rule; one lineup would have accepted about {single:.1f} of them"
        )
    return lines
