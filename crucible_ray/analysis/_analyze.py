"""``pareto``: per-config seed statistics, the frontier, its stability, and a comparison with a baseline."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crucible_ray.analysis._frontier import frontier_mask, frontier_probability, hypervolume
from crucible_ray.analysis._result import ParetoResult, ResultsSource
from crucible_ray.analysis._stats import holm, paired_test, seed_summary
from crucible_ray.analysis._table import OBJECTIVES, config_columns, config_label, load_results, table_ratios
from crucible_ray.config import LEGACY_POOL, Ratio
from crucible_ray.data import read_json_object
from crucible_ray.errors import ConfigError


def pareto(
    results: ResultsSource,
    *,
    baseline: str | dict[str, Any] | None = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
    legacy_pool: str = LEGACY_POOL,
) -> ParetoResult:
    """Analyse a sweep: one row per config (ratio, step and swept params), seeds aggregated.

    Args:
        results: a sweep output dir, its ``results.parquet``, what :func:`crucible_ray.sweep` returned,
            or a results table.
        baseline: the config to compare against, as ``"85_10_5"`` (compared at each step) or
            ``"85_10_5@2000"`` or ``{"ratio": ..., "step": ..., "param_lr": ...}``. Default: the baseline
            the sweep's space names, else the "most legacy" ratio, the most conservative mix: the one
            with the largest ``legacy_pool`` share (ties: the first by ratio string); when the pools
            have no pool of that name, the first in :meth:`Ratio.sort_key` order (the largest shares in
            pool order).
        n_bootstrap: seed-bootstrap resamples for ``frontier_probability``.
        seed: seed of the bootstrap.
        legacy_pool: the pool whose share picks the default baseline and breaks recommendation ties
            (``GuardrailConfig.legacy_pool``).

    Returns:
        A :class:`ParetoResult`: its ``table`` has the config columns, ``config`` (a label),
        ``n_seeds``; for retention and generalization ``_mean``, ``_std``, ``_ci_low``, ``_ci_high``
        (95% Student-t over seeds); ``on_frontier`` (dominance on the means), ``frontier_probability``,
        ``recommended``; ``is_baseline``, ``n_pairs``, and per objective ``_delta`` (mean paired
        difference to the baseline over shared seeds), ``_p`` and ``_p_holm`` (paired t-test,
        Holm-corrected over all comparisons); beside it ``hypervolume``, ``recommended`` and ``baseline``.

    Raises:
        DataError: no results, or none complete. ConfigError: a baseline that matches no config.

    Example:
        >>> front = pareto("runs/sweep")  # doctest: +SKIP
        >>> front.frontier[["config", "retention_mean", "generalization_mean"]]  # doctest: +SKIP
        >>> front.recommended  # doctest: +SKIP
    """
    table = load_results(results)
    if baseline is None:
        baseline = _space_baseline(results)
    cols = config_columns(table)
    rows: list[dict[str, Any]] = []
    per_seed: list[dict[int, tuple[float, float]]] = []
    for key, group in table.groupby(cols, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        by_seed = group.groupby("seed")[list(OBJECTIVES)].mean()  # one value per seed
        per_seed.append({int(s): (float(r.retention), float(r.generalization)) for s, r in by_seed.iterrows()})
        row: dict[str, Any] = dict(zip(cols, key, strict=True))
        row["config"] = config_label(row, cols)
        row["n_seeds"] = len(by_seed)
        for obj in OBJECTIVES:
            for stat, v in seed_summary(by_seed[obj].to_numpy()).items():
                if stat != "n":
                    row[f"{obj}_{stat}"] = v
        rows.append(row)
    df = pd.DataFrame(rows)
    means = df[[f"{o}_mean" for o in OBJECTIVES]].to_numpy()
    df["on_frontier"] = frontier_mask(means)
    df["frontier_probability"] = frontier_probability(per_seed, n_bootstrap=n_bootstrap, seed=seed)
    ratios = table_ratios(table)
    pick = _recommend(df, ratios, legacy_pool)
    df["recommended"] = df.index == pick
    base_desc = _compare(df, per_seed, cols, _baseline_spec(df, baseline, ratios, legacy_pool))
    return ParetoResult(
        table=df,
        hypervolume=hypervolume(means[df["on_frontier"].to_numpy()]),
        recommended=str(df.loc[pick, "config"]),
        baseline=base_desc,
        n_bootstrap=n_bootstrap,
    )


def _recommend(df: pd.DataFrame, ratios: dict[str, Ratio], legacy_pool: str) -> int:
    """The frontier config most often on the frontier; ties: larger mean sum, more legacy, earlier step."""
    front = df[df["on_frontier"]]
    order = front.assign(
        _sum=front["retention_mean"] + front["generalization_mean"],
        _legacy=front["ratio"].map(lambda r: ratios[str(r)].share(legacy_pool)),
    ).sort_values(
        ["frontier_probability", "_sum", "_legacy", "step"], ascending=[False, False, False, True], kind="stable"
    )
    return int(order.index[0])


def _most_legacy(names: list[str], ratios: dict[str, Ratio], legacy_pool: str) -> str:
    """The ratio with the largest ``legacy_pool`` share, the first of ``names`` on a tie; pools without that
    pool: the first in :meth:`Ratio.sort_key` order."""
    if all(legacy_pool in ratios[n].pools for n in names):
        return max(names, key=lambda n: ratios[n].share(legacy_pool))  # max keeps the first of equals
    return min(names, key=lambda n: ratios[n].sort_key())


def _baseline_spec(
    df: pd.DataFrame, baseline: str | dict[str, Any] | None, ratios: dict[str, Ratio], legacy_pool: str
) -> dict[str, Any]:
    if baseline is None:
        return {"ratio": _most_legacy([str(r) for r in df["ratio"].unique()], ratios, legacy_pool)}
    if isinstance(baseline, dict):
        spec = dict(baseline)
    else:
        ratio, _, step = str(baseline).partition("@")
        spec = {"ratio": ratio.strip()}
        if step:
            try:
                spec["step"] = int(step)
            except ValueError:
                raise ConfigError(f"baseline {baseline!r}: the step after '@' must be an integer") from None
    if "ratio" in spec:
        pools = next(iter(ratios.values())).pools  # one sweep, one set of pools
        spec["ratio"] = Ratio.parse(str(spec["ratio"]), pools).canonical
    return spec


def _compare(
    df: pd.DataFrame, per_seed: list[dict[int, tuple[float, float]]], cols: list[str], spec: dict[str, Any]
) -> dict[str, Any]:
    unknown = [k for k in spec if k not in cols]
    if unknown:
        raise ConfigError(f"baseline field {unknown[0]!r} is not a config column; the config columns are {cols}")
    matches = np.ones(len(df), dtype=bool)
    for k, v in spec.items():
        matches &= (df[k] == v).to_numpy()
    if not matches.any():
        raise ConfigError(
            f"baseline {spec} matches no config in the results; the ratios are {sorted(df['ratio'].unique())}"
        )
    df["is_baseline"] = matches
    for obj in OBJECTIVES:
        df[f"{obj}_delta"] = math.nan
        df[f"{obj}_p"] = math.nan
    df["n_pairs"] = 0
    for i in range(len(df)):
        if matches[i]:
            continue
        same = matches & (df["step"] == df.loc[i, "step"]).to_numpy() if "step" not in spec else matches
        if not same.any():
            continue
        b = int(np.flatnonzero(same)[0])
        shared = sorted(set(per_seed[i]) & set(per_seed[b]))
        df.loc[i, "n_pairs"] = len(shared)
        if not shared:
            continue
        for o, obj in enumerate(OBJECTIVES):
            d = np.array([per_seed[i][s][o] - per_seed[b][s][o] for s in shared])
            df.loc[i, f"{obj}_delta"] = float(d.mean())
            df.loc[i, f"{obj}_p"] = paired_test(d)
    flat = [float(df.loc[i, f"{o}_p"]) for o in OBJECTIVES for i in range(len(df))]
    adjusted = holm(flat)
    for o, obj in enumerate(OBJECTIVES):
        df[f"{obj}_p_holm"] = adjusted[o * len(df) : (o + 1) * len(df)]
    return {**spec, "configs": df.loc[matches, "config"].tolist()}


def _space_baseline(results: ResultsSource) -> dict[str, Any] | None:
    """The baseline the sweep's search space names (manifest ``space.baseline``), if any."""
    if isinstance(results, pd.DataFrame):
        manifest: Mapping[str, Any] = {}
    elif not isinstance(results, (str, Path)):
        manifest = results.manifest
    else:
        path = Path(results)
        manifest = read_json_object((path if path.is_dir() else path.parent) / "manifest.json")
    base = (manifest.get("space") or {}).get("baseline")
    return dict(base) if isinstance(base, dict) and base else None
