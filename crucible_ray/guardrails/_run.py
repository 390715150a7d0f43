"""``check_guardrails``: run every applicable check on a sweep's results or on one scoreboard."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from crucible_ray._logging import get_logger
from crucible_ray.analysis import PARAM_PREFIX, load_results, pareto, table_ratios
from crucible_ray.config import Ratio
from crucible_ray.data import write_json
from crucible_ray.errors import ConfigError, GuardrailViolation
from crucible_ray.guardrails._checks import Violation, dilution_floor, dilution_outcome, overfitting_cliff, regression
from crucible_ray.guardrails._config import GuardrailConfig
from crucible_ray.scoreboard import Scoreboard

log = get_logger(__name__)

GUARDRAILS_FILE = "guardrails.json"


@dataclass
class GuardrailReport:
    """What the checks found. ``blocked`` is True when the mode is ``block`` and anything was found."""

    config: GuardrailConfig
    violations: list[Violation] = field(default_factory=list)
    early_stop: dict[str, int] = field(default_factory=dict)  # config (without step) -> peak step
    checked: list[str] = field(default_factory=list)

    @property
    def blocked(self) -> bool:
        return self.config.mode == "block" and bool(self.violations)

    @property
    def exit_code(self) -> int:
        return GuardrailViolation.exit_code if self.blocked else 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": 1,
            "mode": self.config.mode,
            "thresholds": self.config.model_dump(),
            "checked": self.checked,
            "status": "blocked" if self.blocked else ("warn" if self.violations else "clean"),
            "violations": [v.to_dict() for v in self.violations],
            "early_stop": self.early_stop,
        }


def enforce_dilution_floor(ratio: Ratio, config: GuardrailConfig) -> None:
    """Before a run: refuse (block) or warn about a ratio below the dilution floor."""
    v = dilution_floor(ratio, config.dilution_floor, config.legacy_pool)
    if v is None:
        return
    if config.mode == "block":
        raise GuardrailViolation(f"guardrail dilution_floor: {v.message} (mode block; lower --dilution-floor to allow)")
    log.warning("guardrail dilution_floor: %s", v.message)


def check_guardrails(
    *,
    results_dir: str | Path | None = None,
    scoreboard: str | Path | None = None,
    baseline: str | Path | None = None,
    baseline_config: str | None = None,
    config: GuardrailConfig | None = None,
    write: bool = True,
) -> GuardrailReport:
    """Run the guardrails on a sweep's results (all four checks) or on one scoreboard (regression).

    Args:
        results_dir: a sweep output dir; ``guardrails.json`` is written there.
        scoreboard: one scoreboard JSON (with ``baseline``: the regression check).
        baseline: a baseline scoreboard JSON for the regression check.
        baseline_config: the baseline config of the dilution-outcome check (see :func:`crucible_ray.analysis`).
        config: thresholds and mode.
        write: write ``guardrails.json`` into ``results_dir`` (the report reads without writing).

    Raises:
        ConfigError: neither or both of ``results_dir`` and ``scoreboard``. DataError: unreadable inputs.
    """
    cfg = config or GuardrailConfig()
    if (results_dir is None) == (scoreboard is None):
        raise ConfigError("guardrail check needs exactly one of --results-dir or --scoreboard")
    base = Scoreboard.read(baseline).flat_metrics() if baseline is not None else None
    report = GuardrailReport(cfg)
    if scoreboard is not None:
        if base is None:
            raise ConfigError("guardrail check --scoreboard needs --baseline (a scoreboard to compare with)")
        report.checked.append("regression")
        report.violations += regression(
            str(scoreboard), Scoreboard.read(scoreboard).flat_metrics(), base, cfg.regression_drop
        )
        return report
    assert results_dir is not None
    rdir = Path(results_dir)
    table = load_results(rdir)  # ratios checked against the table's pools (or the manifest's)
    ratios = table_ratios(table)
    report.checked += ["dilution_floor", "dilution_outcome", "overfitting_cliff"]
    for ratio in sorted(ratios):
        v = dilution_floor(ratios[ratio], cfg.dilution_floor, cfg.legacy_pool)
        if v is not None:
            report.violations.append(v)
    summary = pareto(table, baseline=baseline_config, n_bootstrap=200, legacy_pool=cfg.legacy_pool).table
    for _, row in summary[~summary["is_baseline"]].iterrows():
        v = dilution_outcome(row["config"], row["retention_delta"], row["generalization_delta"], cfg.dilution_drop)
        if v is not None:
            report.violations.append(v)
    curve_cols = ["ratio", *sorted(c for c in summary.columns if c.startswith(PARAM_PREFIX))]
    for key, group in summary.groupby(curve_cols, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        subject = " ".join(
            [str(key[0]), *(f"{c[len(PARAM_PREFIX) :]}={k}" for c, k in zip(curve_cols[1:], key[1:], strict=True))]
        )
        peak, v = overfitting_cliff(
            subject, list(zip(group["step"], group["generalization_mean"], strict=True)), cfg.cliff_drop
        )
        report.early_stop[subject] = peak
        if v is not None:
            report.violations.append(v)
    if base is not None:
        report.checked.append("regression")
        metric_cols = [c for c in table.columns if c in base]
        means = table.groupby(["ratio", "step", *curve_cols[1:]], dropna=False)[metric_cols].mean().reset_index()
        for _, row in means.iterrows():
            subject = f"{row['ratio']}@{int(row['step'])}"
            report.violations += regression(subject, {c: float(row[c]) for c in metric_cols}, base, cfg.regression_drop)
    if write:
        write_json(rdir / GUARDRAILS_FILE, report.to_dict())
    return report


def summary_frame(report: GuardrailReport) -> pd.DataFrame:
    """The violations as a table (check, subject, message, value, threshold)."""
    return pd.DataFrame(
        [v.to_dict() for v in report.violations], columns=["check", "subject", "message", "value", "threshold"]
    )
