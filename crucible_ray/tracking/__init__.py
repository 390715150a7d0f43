"""Experiment trackers a run can also be logged to (docs/tracking.md): MLflow and Weights & Biases.

Nothing here imports a tracker's package until a target is opened; without the flags nothing changes.
"""

from __future__ import annotations

from crucible_ray.tracking._mlflow import (
    DEFAULT_EXPERIMENT,
    PARENT_TAG,
    TAG_KIND,
    TAG_OUTPUT,
    TAG_RECOMMENDED,
    TAG_TRIAL,
    MlflowRuns,
    MlflowTarget,
    best_effort,
    log_training_outputs,
    miner_params,
    mlflow_run,
    redact_uri,
    run_params,
    training_artifacts,
)
from crucible_ray.tracking._sweep import log_sweep_outcome, sweep_params

__all__ = [
    "DEFAULT_EXPERIMENT",
    "PARENT_TAG",
    "TAG_KIND",
    "TAG_OUTPUT",
    "TAG_RECOMMENDED",
    "TAG_TRIAL",
    "MlflowRuns",
    "MlflowTarget",
    "best_effort",
    "log_sweep_outcome",
    "log_training_outputs",
    "miner_params",
    "mlflow_run",
    "redact_uri",
    "run_params",
    "sweep_params",
    "training_artifacts",
]
