"""A sweep in MLflow: the parent run's params, and what it holds once the sweep has ended.

The trials' own runs are logged live by the Ray shell (Tune's MLflow callback, nested under the parent
with MLflow's ``mlflow.parentRunId`` tag). When the sweep ends, the parent run gets the results table,
the Pareto table, the guardrail report and the HTML report as artifacts, the frontier's figures as
metrics, and the recommended config as a tag, which is also set on each of that config's finished trial
runs.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from crucible_ray._logging import get_logger
from crucible_ray.analysis import RESULTS_FILE, load_results, pareto
from crucible_ray.errors import CrucibleError
from crucible_ray.guardrails import GUARDRAILS_FILE, GuardrailConfig, check_guardrails
from crucible_ray.reporting import report
from crucible_ray.sweeps import SweepSpace, recommended_trials
from crucible_ray.tracking._mlflow import PARENT_TAG, TAG_RECOMMENDED, TAG_TRIAL, MlflowRuns, run_params

log = get_logger(__name__)

REPORT_ARTIFACT = "report.html"


def sweep_params(space: SweepSpace) -> dict[str, Any]:
    """The parent run's params: the search space flattened (``grid.ratio``, ``grid.seed``, ``steps``,
    ``train.<option>`` shared by every trial, ``optuna.*``)."""
    return run_params(space.model_dump(mode="json"))


def log_sweep_outcome(
    runs: MlflowRuns,
    parent_id: str,
    out: Path,
    *,
    data: Path | None = None,
    guardrails: GuardrailConfig | None = None,
    baseline: str | None = None,
) -> str | None:
    """Log a finished sweep's outcome to its parent run; returns the recommended config (None when no
    trial completed: then only the results table and the manifest are logged)."""
    runs.log_files(parent_id, [out / RESULTS_FILE, out / "manifest.json"])
    gcfg = guardrails or GuardrailConfig()
    try:
        front = pareto(out, baseline=baseline, legacy_pool=gcfg.legacy_pool)
    except CrucibleError as e:  # no complete trial, one seed only...: nothing to analyse
        log.warning("MLflow: no Pareto analysis to log (%s)", e)
        return None
    guard = check_guardrails(results_dir=out, config=gcfg, baseline_config=baseline)  # writes guardrails.json
    with tempfile.TemporaryDirectory(prefix="crucible-mlflow-") as tmp:
        t = Path(tmp)
        front.table.to_csv(t / "pareto.csv", index=False)
        (t / "pareto.json").write_text(json.dumps(front.summary(), indent=2, default=str))
        report(out, t / REPORT_ARTIFACT, data=data)
        runs.log_files(parent_id, [t / "pareto.csv", t / "pareto.json", t / REPORT_ARTIFACT, out / GUARDRAILS_FILE])
    rec = front.recommended_row
    outcome = {
        "hypervolume": front.hypervolume,
        "recommended_retention": float(rec["retention_mean"]),
        "recommended_generalization": float(rec["generalization_mean"]),
        "guardrail_violations": float(len(guard.violations)),
    }
    if runs.client.get_run(parent_id).data.metrics != outcome:  # resuming a finished sweep logs nothing twice
        runs.log_metrics(parent_id, outcome, step=int(rec["step"]))
    runs.set_tags(parent_id, {TAG_RECOMMENDED: front.recommended})
    trials = set(recommended_trials(load_results(out), front))
    for run in runs.client.search_runs(
        [runs.experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{parent_id}'", max_results=10000
    ):
        if run.data.tags.get(TAG_TRIAL) in trials and run.info.status == "FINISHED":
            runs.set_tags(run.info.run_id, {TAG_RECOMMENDED: front.recommended})
    return front.recommended
