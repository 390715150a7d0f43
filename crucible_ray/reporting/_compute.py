"""Everything the report shows, computed from a sweep's output folder (no plotting here).

Compute first, render second: tests check these numbers; :mod:`crucible_ray.reporting._render` only draws.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crucible_ray._logging import get_logger
from crucible_ray.analysis import (
    OBJECTIVES,
    REFERENCE_SET,
    findings,
    load_results,
    mining_lines,
    pareto,
    reference_column,
    table_ratios,
)
from crucible_ray.config import LEGACY_POOL
from crucible_ray.data import path_inside, read_bundles, read_json_object
from crucible_ray.errors import CrucibleError
from crucible_ray.guardrails import GUARDRAILS_FILE, check_guardrails
from crucible_ray.scoreboard import Scoreboard
from crucible_ray.sweeps import TRIALS_DIR

log = get_logger(__name__)

QUANTILES = ("p5", "p25", "p50", "p75", "p95")


@dataclass(frozen=True)
class Heatmap:
    """``values[i][j]``: the seed mean of an objective for ``ratios[i]`` at ``steps[j]`` (NaN: no run)."""

    objective: str
    ratios: list[str]
    steps: list[int]
    values: list[list[float]]
    pools: list[str] = field(default_factory=list)  # the pool of each part of a ratio, in order


@dataclass(frozen=True)
class Curve:
    """One ratio's seed means along the steps, and its generalization peak (the early-stop step)."""

    ratio: str
    steps: list[int]
    retention: list[float]
    generalization: list[float]
    peak_step: int


@dataclass(frozen=True)
class Margins:
    """Margin quantiles of one eval set and tier (seed means, recommended config)."""

    eval_set: str
    tier: str
    quantiles: dict[str, float]
    mean: float


@dataclass(frozen=True)
class Mining:
    """One mining run's funnel and pass-count histogram."""

    name: str
    funnel: dict[str, int]
    histogram: dict[int, int]
    lineups: int


@dataclass(frozen=True)
class ReportData:
    """The numbers of one report."""

    title: str
    pareto_rows: list[dict[str, Any]]
    hypervolume: float
    recommended: str
    baseline: list[str]
    heatmaps: list[Heatmap]
    curves: list[Curve]
    margins: list[Margins]
    mining: list[Mining]
    guardrails: dict[str, Any] | None
    manifest: dict[str, Any]
    examples: list[dict[str, Any]] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)  # one sentence each, with its interval


def compute_report(results_dir: str | Path, *, n_bootstrap: int = 1000, data: str | Path | None = None) -> ReportData:
    """Read a sweep folder (results, scoreboards, guardrails, the world's mining manifests).

    ``data`` is the sweep's world, for the mining funnel and examples. Without it, the world the sweep
    manifest names is read only when it lies inside the results folder: a folder someone sent you
    cannot make the report read (and embed) files from elsewhere on your machine.

    Raises:
        DataError: no results, or none complete.
    """
    rdir = Path(results_dir)
    table = load_results(rdir)
    front = pareto(rdir, n_bootstrap=n_bootstrap)
    manifest = read_json_object(rdir / "manifest.json")
    legacy_pool = (manifest.get("guardrails") or {}).get("legacy_pool", LEGACY_POOL)
    found = findings(table, legacy_pool=str(legacy_pool))
    rows = json.loads(front.table.to_json(orient="records"))
    rec = front.recommended_row
    world = Path(data) if data is not None else _manifest_world(rdir, manifest)
    return ReportData(
        title=f"crucible-ray sweep: {manifest.get('space', {}).get('name', rdir.name)}",
        pareto_rows=rows,
        hypervolume=front.hypervolume,
        recommended=front.recommended,
        baseline=list(front.baseline["configs"]),
        heatmaps=[_heatmap(table, obj) for obj in OBJECTIVES] + _reference_heatmap(table),
        curves=_curves(table),
        margins=_margins(rdir, table, rec),
        mining=_mining(world) if world is not None and world.is_dir() else [],
        guardrails=_guardrails(rdir),
        manifest=manifest,
        examples=_examples(world) if world is not None and world.is_dir() else [],
        findings=found.lines() + (_mining_findings(world) if world is not None and world.is_dir() else []),
    )


def _manifest_world(rdir: Path, manifest: dict[str, Any]) -> Path | None:
    """The world the sweep manifest names, when it is a path inside the results folder."""
    named = manifest.get("data")
    if named is None:
        return None
    if not isinstance(named, str) or not named:
        log.warning(
            "%s: field 'data' is not a folder path; the report leaves the mining section out", rdir / "manifest.json"
        )
        return None
    target = Path(named) if Path(named).is_absolute() else rdir / named
    try:
        target.resolve().relative_to(rdir.resolve())
    except ValueError:
        log.warning(
            "the sweep's world %s is outside the results folder: pass it as --data to include its mining funnel", named
        )
        return None
    return target


def _config_means(table: pd.DataFrame) -> pd.DataFrame:
    """Seed means per (ratio, step); params are averaged over (a heatmap has two axes)."""
    return table.groupby(["ratio", "step"])[list(OBJECTIVES)].mean().reset_index()


def _reference_heatmap(table: pd.DataFrame) -> list[Heatmap]:
    """The label-based generalization reference beside the mined holdout, when the world has one."""
    column = reference_column()
    if column not in table.columns or not table[column].notna().any():
        return []
    return [_heatmap(table.rename(columns={column: REFERENCE_SET}), REFERENCE_SET)]


def _heatmap(table: pd.DataFrame, objective: str) -> Heatmap:
    means = table.groupby(["ratio", "step"])[objective].mean().reset_index()
    parsed = table_ratios(table)
    ratios = sorted(means["ratio"].unique(), key=lambda r: parsed[str(r)].sort_key())
    steps = sorted(int(s) for s in means["step"].unique())
    grid = means.pivot(index="ratio", columns="step", values=objective).reindex(index=ratios, columns=steps)
    pools = list(parsed[str(ratios[0])].pools) if ratios else []
    return Heatmap(objective, list(ratios), steps, [[float(v) for v in row] for row in grid.to_numpy()], pools)


def _curves(table: pd.DataFrame) -> list[Curve]:
    out = []
    means = _config_means(table)
    for ratio, group in means.groupby("ratio", sort=True):
        g = group.sort_values("step")
        gen = [float(v) for v in g["generalization"]]
        steps = [int(s) for s in g["step"]]
        peak = steps[int(np.argmax(gen))]  # first maximum: the earliest step at the peak
        out.append(Curve(str(ratio), steps, [float(v) for v in g["retention"]], gen, peak))
    return out


def _margins(rdir: Path, table: pd.DataFrame, rec: pd.Series) -> list[Margins]:
    rows = table[(table["ratio"] == rec["ratio"]) & (table["step"] == rec["step"])]
    sums: dict[tuple[str, str], list[dict[str, float]]] = {}
    for trial in rows["trial_id"].unique() if "trial_id" in rows else []:
        path = path_inside(rdir, TRIALS_DIR, str(trial), f"scoreboard_step_{int(rec['step'])}.json")
        if path is None:  # a trial id naming a file outside the results dir (`../`, a link): not read
            log.warning("%s: trial id %r points outside the results dir; its margins are left out", rdir, trial)
            continue
        try:
            board = Scoreboard.read(path)
        except (CrucibleError, OSError):
            continue
        for name, tiers in board.eval_sets.items():
            for tier, m in tiers.items():
                margin = m.get("margin") if isinstance(m, dict) else None
                if margin and all(margin.get(q) is not None for q in QUANTILES):
                    sums.setdefault((name, tier), []).append(margin)
    out = []
    for (name, tier), ms in sorted(sums.items()):
        q = {k: float(np.mean([m[k] for m in ms])) for k in QUANTILES}
        out.append(Margins(name, tier, q, float(np.mean([m.get("mean", math.nan) for m in ms]))))
    return out


def _mining_findings(world: Path) -> list[str]:
    out: list[str] = []
    for path in sorted(world.glob("*.manifest.json")):
        doc = read_json_object(path)
        if doc.get("kind") == "mining" and doc.get("counts"):
            out += mining_lines(path.name.removesuffix(".manifest.json"), doc)
    return out


def _mining(world: Path) -> list[Mining]:
    out = []
    for path in sorted(world.glob("*.manifest.json")):
        doc = read_json_object(path)
        counts = doc.get("counts") if doc.get("kind") == "mining" else None
        if not counts:
            continue
        funnel = {
            "candidates": int(counts.get("candidates", 0)),
            "with enough negatives": int(counts.get("candidates", 0)) - int(counts.get("insufficient", 0)),
            "accepted": int(counts.get("accepted", 0)),
        }
        hist = {int(k): int(v) for k, v in counts.get("pass_count_histogram", {}).items()}
        out.append(
            Mining(
                path.name.removesuffix(".manifest.json"),
                funnel,
                dict(sorted(hist.items())),
                int(doc.get("config", {}).get("lineups", max(hist, default=0))),
            )
        )
    return out


def _guardrails(rdir: Path) -> dict[str, Any] | None:
    doc = read_json_object(rdir / GUARDRAILS_FILE)
    if doc:
        return doc
    try:
        return check_guardrails(results_dir=rdir, write=False).to_dict()
    except CrucibleError:
        return None


def _examples(world: Path, n: int = 8) -> list[dict[str, Any]]:
    """A few accepted organic killers (highest pass counts): what the miner found, as the user's text."""
    path = world / "organic.jsonl"
    if not path.is_file():
        return []
    try:
        bundles = read_bundles(path)
    except CrucibleError:
        return []
    bundles.sort(key=lambda b: (-(b.pass_count or 0), b.bundle_id))
    out = []
    for b in bundles[:n]:
        killers = [x.text for x in b.negatives if x.tier == 3][:2]
        out.append({"anchor": b.anchor, "positive": b.positive, "killers": killers, "pass_count": b.pass_count})
    return out
