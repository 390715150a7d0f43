"""What :func:`crucible_ray.sweep` returns: the results table, where the sweep lives, its manifest."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd


@dataclass(frozen=True, eq=False)
class SweepResult:
    """A finished sweep (docs/sweeps.md, "The output folder").

    Attributes:
        table: one row per (trial, milestone step), as ``results.parquet`` holds it (see
            :mod:`crucible_ray.analysis`).
        output_dir: the sweep folder (``results.parquet``, ``manifest.json``, ``trials/``, ``tune/``).
        manifest: the sweep's ``manifest.json`` (space, pools, inputs, plan, status, failed trials...).
        tune_results: Ray Tune's ``ResultGrid`` of the run that returned this (each trial's config,
            last reported metrics, errors, ``get_dataframe()``); ``None`` where the result was not
            returned by :func:`crucible_ray.sweep` itself.

    ``crucible_ray.pareto(result)`` analyses it (with the baseline its space names).
    """

    table: pd.DataFrame
    output_dir: Path
    manifest: dict[str, Any]
    tune_results: Any = field(default=None, repr=False)  # a ray.tune.ResultGrid (typed loosely: no Ray here)

    @property
    def failed_trials(self) -> list[str]:
        """The ids of the trials that failed after every retry."""
        return list(self.manifest.get("failed_trials", []))

    @property
    def trials(self) -> int:
        """How many trials the table holds."""
        return int(self.table["trial_id"].nunique()) if not self.table.empty else 0
