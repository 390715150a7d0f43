"""The checkpoint behind a sweep's recommendation: the model to export or serve."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from crucible_ray.analysis import ParetoResult, config_columns, load_results
from crucible_ray.data import path_inside
from crucible_ray.errors import DataError
from crucible_ray.sweeps._results import TRIALS_DIR


def recommended_checkpoint(results_dir: str | Path, front: ParetoResult) -> tuple[Path, str]:
    """The milestone checkpoint of the recommended config's best seed, and that trial's id.

    The recommendation is a (ratio, step) config over seeds; its model is one trial's checkpoint at that
    step: the seed with the largest retention + generalization there (the first on a tie).

    Raises:
        DataError: the trial's checkpoint is missing (a sweep moved without its trials) or lies outside
            the results folder.
    """
    rdir = Path(results_dir)
    rec = front.recommended_row
    rows = _recommended_rows(load_results(rdir), rec)
    if rows.empty or "trial_id" not in rows:
        raise DataError(f"{rdir}: no complete trial of the recommended config {rec['config']}")
    best = rows.assign(_sum=rows["retention"] + rows["generalization"]).sort_values(
        ["_sum", "seed"], ascending=[False, True], kind="stable"
    )
    trial = str(best.iloc[0]["trial_id"])
    path = path_inside(rdir, TRIALS_DIR, trial, f"checkpoint_step_{int(rec['step'])}.pt")
    if path is None or not path.is_file():
        raise DataError(f"{rdir}: the checkpoint of trial {trial} at step {int(rec['step'])} is missing")
    return path, trial


def recommended_trials(table: pd.DataFrame, front: ParetoResult) -> list[str]:
    """The ids of the complete trials (every seed) of the recommended config, in the table's order."""
    rows = _recommended_rows(table, front.recommended_row)
    return list(dict.fromkeys(rows["trial_id"].astype(str))) if "trial_id" in rows else []


def _recommended_rows(table: pd.DataFrame, rec: pd.Series) -> pd.DataFrame:
    mask = pd.Series(True, index=table.index)
    for column in config_columns(table):  # ratio, step and every swept parameter
        value = rec.get(column)
        mask &= table[column].isna() if pd.isna(value) else table[column] == value
    rows = table[mask]
    return rows[rows["status"] == "complete"] if "status" in rows else rows
