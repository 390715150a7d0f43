"""Assemble ``results.parquet`` from the trial folders: one row per (trial, milestone step).

Each trial folder (``<sweep>/trials/<trial id>/``) holds ``trial.json`` (ratio, pools, seed, params, steps),
the training outputs (``scoreboard_step_<n>.json``, ``checkpoint_step_<n>.pt``, ``timing.json``) and,
once Tune has finished with it, ``status.json``. The files on disk are the source of truth, so the
table can be rebuilt after a crash or a resume.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from crucible_ray._logging import get_logger
from crucible_ray.analysis import PARAM_PREFIX, POOLS_COLUMN, RESULTS_FILE
from crucible_ray.config import DEFAULT_POOLS
from crucible_ray.data import atomic_path, path_inside, read_json_object, remove_stale_temporaries, write_json
from crucible_ray.errors import CrucibleError
from crucible_ray.scoreboard import Scoreboard
from crucible_ray.sweeps._trial import Trial

log = get_logger(__name__)

TRIALS_DIR = "trials"
TRIAL_FILE = "trial.json"
STATUS_FILE = "status.json"


def write_trial_meta(trial_dir: Path, meta: dict[str, Any]) -> None:
    trial_dir.mkdir(parents=True, exist_ok=True)
    write_json(trial_dir / TRIAL_FILE, meta)


def start_trial(trial_dir: Path, trial: Trial, steps: Sequence[int]) -> None:
    """Before an attempt trains: clear what an attempt killed mid-write left, record the trial as running."""
    for name in (TRIAL_FILE, STATUS_FILE):
        remove_stale_temporaries(trial_dir / name)
    write_trial_meta(trial_dir, trial.meta(steps))
    write_trial_status(trial_dir, "running", None, None)


def record_failed_trial(sweep_dir: Path, trial: Trial, steps: Sequence[int], error: str) -> bool:
    """Record a trial Tune gave up on as ``failed`` (with its parameters); False when it is already complete."""
    trial_dir = sweep_dir / TRIALS_DIR / trial.key
    if trial_status(trial_dir) == "complete":
        return False
    write_trial_meta(trial_dir, trial.meta(steps))
    write_trial_status(trial_dir, "failed", error, None)
    return True


def completed_boards(trial_dir: Path, steps: Sequence[int]) -> list[Scoreboard] | None:
    """A complete trial's milestone scoreboards, to report again instead of training; None when not complete."""
    if trial_status(trial_dir) != "complete":
        return None
    paths = [trial_dir / f"scoreboard_step_{s}.json" for s in steps]
    if not all(p.is_file() for p in paths):
        return None
    return [Scoreboard.read(p) for p in paths]


def trial_status(trial_dir: Path) -> str:
    """``pending``, ``running``, ``complete`` or ``failed``."""
    return str(read_json_object(trial_dir / STATUS_FILE).get("status", "pending"))


def write_trial_status(trial_dir: Path, status: str, error: str | None, wall_seconds: float | None) -> None:
    """Record the trial's state; each ``running`` record counts one attempt (Tune retries add more)."""
    old = read_json_object(trial_dir / STATUS_FILE)
    attempts = int(old.get("attempts", 0)) + (status == "running")
    doc = {"status": status, "error": error, "wall_seconds": wall_seconds, "attempts": attempts}
    write_json(trial_dir / STATUS_FILE, doc)


def trial_rows(trial_dir: Path, pools: Sequence[str] = DEFAULT_POOLS) -> list[dict[str, Any]]:
    """The rows of one trial: one per milestone, metrics NaN where the trial never reached it.

    ``pools`` names the ratio's pools when ``trial.json`` predates its ``pools`` field.
    """
    meta = json.loads((trial_dir / TRIAL_FILE).read_text())  # required: a trial folder without it is skipped
    pool_names = ",".join(meta.get("pools") or pools)
    status_doc = read_json_object(trial_dir / STATUS_FILE) or {"status": "pending"}
    timing = read_json_object(trial_dir / "timing.json")
    rows = []
    for step in meta["steps"]:
        row: dict[str, Any] = {
            "trial_id": meta["trial_id"],
            "ratio": meta["ratio"],
            POOLS_COLUMN: pool_names,
            "seed": int(meta["seed"]),
            "step": int(step),
            **{f"{PARAM_PREFIX}{k}": v for k, v in sorted(meta.get("params", {}).items())},
            "retention": math.nan,
            "generalization": math.nan,
        }
        board_path = trial_dir / f"scoreboard_step_{step}.json"
        if board_path.is_file():
            try:
                board = Scoreboard.read(board_path)
            except CrucibleError:
                board = None
            if board is not None:
                row.update({k: (math.nan if v is None else float(v)) for k, v in board.flat_metrics().items()})
        ckpt = trial_dir / f"checkpoint_step_{step}.pt"
        row["checkpoint"] = str(ckpt) if ckpt.is_file() else None
        row["status"] = status_doc["status"]
        row["error"] = status_doc.get("error")
        row["attempts"] = int(status_doc.get("attempts", 0))
        row["wall_seconds"] = status_doc.get("wall_seconds")
        row["train_seconds"] = timing.get("loop_seconds")
        rows.append(row)
    return rows


def collect_results(sweep_dir: Path) -> pd.DataFrame:
    """Every trial's rows, sorted by ratio, params, seed and step."""
    pools = read_json_object(sweep_dir / "manifest.json").get("pools") or DEFAULT_POOLS
    rows: list[dict[str, Any]] = []
    for trial_dir in sorted((sweep_dir / TRIALS_DIR).glob("*")):
        if path_inside(sweep_dir, TRIALS_DIR, trial_dir.name, TRIAL_FILE) is None:
            log.warning("%s: a link to outside the sweep dir; skipped", trial_dir)
            continue
        if (trial_dir / TRIAL_FILE).is_file():
            rows.extend(trial_rows(trial_dir, pools))
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    params = sorted(c for c in table.columns if c.startswith(PARAM_PREFIX))
    return table.sort_values(["ratio", *params, "seed", "step"], kind="stable").reset_index(drop=True)


def trial_outcomes(table: pd.DataFrame) -> tuple[list[str], int]:
    """The failed trials' ids (sorted) and how many trials finished (complete or failed) in a results table."""
    if table.empty:
        return [], 0
    by_trial = table.groupby("trial_id")["status"].first()
    return sorted(by_trial[by_trial == "failed"].index), int(by_trial.isin(["complete", "failed"]).sum())


def write_results(table: pd.DataFrame, sweep_dir: Path) -> Path:
    """Write ``results.parquet`` atomically (removing what an earlier write cut short by a crash left)."""
    path = sweep_dir / RESULTS_FILE
    remove_stale_temporaries(path)
    with atomic_path(path) as tmp:
        table.to_parquet(tmp, index=False)
    return path
