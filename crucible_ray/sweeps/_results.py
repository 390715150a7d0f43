"""Assemble ``results.parquet`` from the trial folders: one row per (trial, milestone step).

Each trial folder (``<sweep>/trials/<trial id>/``) holds ``trial.json`` (ratio, seed, params, steps),
the training outputs (``scoreboard_step_<n>.json``, ``checkpoint_step_<n>.pt``, ``timing.json``) and,
once Tune has finished with it, ``status.json``. The files on disk are the source of truth, so the
table can be rebuilt after a crash or a resume.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from crucible_ray._logging import get_logger
from crucible_ray.analysis import PARAM_PREFIX, RESULTS_FILE
from crucible_ray.data import atomic_path, path_inside, read_json_object, remove_stale_temporaries, write_json
from crucible_ray.errors import CrucibleError
from crucible_ray.scoreboard import Scoreboard

log = get_logger(__name__)

TRIALS_DIR = "trials"
TRIAL_FILE = "trial.json"
STATUS_FILE = "status.json"


def write_trial_meta(trial_dir: Path, meta: dict[str, Any]) -> None:
    trial_dir.mkdir(parents=True, exist_ok=True)
    write_json(trial_dir / TRIAL_FILE, meta)


def trial_status(trial_dir: Path) -> str:
    """``pending``, ``running``, ``complete`` or ``failed``."""
    return str(read_json_object(trial_dir / STATUS_FILE).get("status", "pending"))


def write_trial_status(trial_dir: Path, status: str, error: str | None, wall_seconds: float | None) -> None:
    """Record the trial's state; each ``running`` record counts one attempt (Tune retries add more)."""
    old = read_json_object(trial_dir / STATUS_FILE)
    attempts = int(old.get("attempts", 0)) + (status == "running")
    doc = {"status": status, "error": error, "wall_seconds": wall_seconds, "attempts": attempts}
    write_json(trial_dir / STATUS_FILE, doc)


def trial_rows(trial_dir: Path) -> list[dict[str, Any]]:
    """The rows of one trial: one per milestone, metrics NaN where the trial never reached it."""
    meta = json.loads((trial_dir / TRIAL_FILE).read_text())  # required: a trial folder without it is skipped
    status_doc = read_json_object(trial_dir / STATUS_FILE) or {"status": "pending"}
    timing = read_json_object(trial_dir / "timing.json")
    rows = []
    for step in meta["steps"]:
        row: dict[str, Any] = {
            "trial_id": meta["trial_id"],
            "ratio": meta["ratio"],
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
    rows: list[dict[str, Any]] = []
    for trial_dir in sorted((sweep_dir / TRIALS_DIR).glob("*")):
        if path_inside(sweep_dir, TRIALS_DIR, trial_dir.name, TRIAL_FILE) is None:
            log.warning("%s: a link to outside the sweep dir; skipped", trial_dir)
            continue
        if (trial_dir / TRIAL_FILE).is_file():
            rows.extend(trial_rows(trial_dir))
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    params = sorted(c for c in table.columns if c.startswith(PARAM_PREFIX))
    return table.sort_values(["ratio", *params, "seed", "step"], kind="stable").reset_index(drop=True)


def write_results(table: pd.DataFrame, sweep_dir: Path) -> Path:
    """Write ``results.parquet`` atomically (removing what an earlier write cut short by a crash left)."""
    path = sweep_dir / RESULTS_FILE
    remove_stale_temporaries(path)
    with atomic_path(path) as tmp:
        table.to_parquet(tmp, index=False)
    return path
