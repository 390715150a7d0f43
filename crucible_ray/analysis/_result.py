"""What :func:`crucible_ray.pareto` returns: the per-config table and the frontier's summary numbers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pandas as pd


class SweepOutput(Protocol):
    """Anything holding a sweep's results table and manifest (:class:`crucible_ray.sweeps.SweepResult`)."""

    @property
    def table(self) -> pd.DataFrame: ...

    @property
    def manifest(self) -> Mapping[str, Any]: ...


ResultsSource = str | Path | pd.DataFrame | SweepOutput


@dataclass(frozen=True, eq=False)
class ParetoResult:
    """One Pareto analysis of a sweep (docs/sweeps.md, "The Pareto analyzer").

    Attributes:
        table: one row per config (ratio, step, swept params), seeds aggregated: the config columns,
            ``config`` (a label such as ``75_15_10@2000``), ``n_seeds``, per objective ``_mean``,
            ``_std``, ``_ci_low``, ``_ci_high``; ``on_frontier``, ``frontier_probability``,
            ``recommended``, ``is_baseline``, ``n_pairs``, per objective ``_delta``, ``_p``, ``_p_holm``.
        hypervolume: the area the frontier's means dominate above (0, 0).
        recommended: the label of the recommended config.
        baseline: the baseline spec (``ratio``, and ``step`` or params when given) and ``configs``, the
            labels of the configs it matched.
        n_bootstrap: the seed-bootstrap resamples behind ``frontier_probability``.
    """

    table: pd.DataFrame
    hypervolume: float
    recommended: str
    baseline: dict[str, Any]
    n_bootstrap: int

    @property
    def frontier(self) -> pd.DataFrame:
        """The rows on the frontier."""
        return self.table[self.table["on_frontier"]]

    @property
    def recommended_row(self) -> pd.Series:
        """The recommended config's row."""
        return self.table[self.table["recommended"]].iloc[0]

    def summary(self) -> dict[str, Any]:
        """The summary numbers as plain values (``crucible-ray pareto --json`` prints them beside the rows)."""
        return {
            "hypervolume": self.hypervolume,
            "recommended": self.recommended,
            "baseline": self.baseline,
            "n_bootstrap": self.n_bootstrap,
        }
