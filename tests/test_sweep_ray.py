"""Sweeps on Ray Tune: more trials than CPUs, a crashed trial retried, a failed trial recorded, resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from faults import kill_a_train_worker_when

import crucible_ray as cr

pytestmark = [pytest.mark.usefixtures("ray_local"), pytest.mark.slow]

# A small encoder: checkpoints of 0.5 MB instead of 34 MB keep each eval point's upload cheap.
TINY = "hashed-ngram:buckets=4096,dim=32"
SMALL = dict(batch_size=16, encoder=TINY)


def _status(trial_dir: Path) -> dict[str, Any]:
    return json.loads((trial_dir / "status.json").read_text())


def test_more_trials_than_cpus_complete_with_results_and_logs(synthetic_world: Path, tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    # 4 trials on the session's 2 CPUs: without the trial plan this hangs forever (RAY_NOTES).
    table = cr.sweep(synthetic_world, output_dir=out, ratios="85_10_5,75_15_10", seeds="1,2", steps="10,20", **SMALL)
    assert len(table) == 8 and set(table["status"]) == {"complete"}
    assert table.equals(pd.read_parquet(out / "results.parquet"))
    assert sorted(set(zip(table["ratio"], table["seed"], strict=True))) == [
        ("75_15_10", 1),
        ("75_15_10", 2),
        ("85_10_5", 1),
        ("85_10_5", 2),
    ]
    assert set(table["step"]) == {10, 20} and table["retention"].between(0, 1).all()
    assert all(Path(p).is_file() for p in table["checkpoint"])
    assert (table["attempts"] == 1).all()
    for trial in table["trial_id"].unique():
        assert any((out / "trials" / trial / "tensorboard").rglob("events.out.tfevents.*"))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["trials"] == 4 and manifest["plan"]["concurrency"] == 2
    assert (out / "tune").is_dir() and not (out / "ray_train").exists()
    # Each trial's TensorBoard events, read with TensorBoard's own reader (DESIGN section 7).
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for trial in table["trial_id"].unique():
        acc = EventAccumulator(
            str(out / "trials" / trial / "tensorboard"), size_guidance={"scalars": 0, "histograms": 0}
        )
        acc.Reload()
        tags = acc.Tags()
        for tag in (
            "train/loss",
            "train/lr",
            "train/tier3_accuracy",
            "eval/retention",
            "eval/generalization",
            "frozen_eval/tier3/accuracy",
            "organic_holdout/tier3/margin_p50",
        ):
            assert tag in tags["scalars"], (trial, tag)
        assert {e.step for e in acc.Scalars("eval/retention")} == {10, 20}
        assert "frozen_eval/margins_tier3" in tags["histograms"]
    df = cr.pareto(out, n_bootstrap=50)
    assert len(df) == 4 and set(df["n_seeds"]) == {2} and df["on_frontier"].any()
    with pytest.raises(cr.ConfigError, match="--resume"):
        cr.sweep(synthetic_world, output_dir=out, ratios="85_10_5", seeds="1", steps="10")


def test_a_failing_trial_is_recorded_and_the_sweep_finishes(synthetic_world: Path, tmp_path: Path) -> None:
    out = tmp_path / "fail"

    def ready() -> bool:
        return any((out / "trials").glob("*/scoreboard_step_100.json")) if (out / "trials").exists() else False

    res = kill_a_train_worker_when(
        ready,
        lambda: cr.sweep(
            synthetic_world,
            output_dir=out,
            ratios="85_10_5,75_15_10",
            seeds="5",
            steps="100,400",
            eval_every=100,
            max_failures=0,
            **SMALL,
        ),
    )
    assert res["killed"] == 1 and "error" not in res, res.get("error")
    table = res["value"]
    by_trial = table.groupby("trial_id")["status"].first()
    assert sorted(by_trial) == ["complete", "failed"]
    failed = table[table["status"] == "failed"]
    assert failed["error"].str.len().gt(0).all() and set(failed["ratio"]) <= {"85_10_5", "75_15_10"}
    assert failed["seed"].eq(5).all()  # recorded with its params
    assert json.loads((out / "manifest.json").read_text())["failed_trials"] == list(failed["trial_id"].unique())
    assert len(cr.pareto(out, n_bootstrap=10)) == 2  # the failed trial's milestones are left out


def test_an_optuna_space_searches_the_ratio_simplex(synthetic_world: Path, tmp_path: Path) -> None:
    space = tmp_path / "opt.yaml"
    space.write_text(
        f"name: opt\nsteps: [10, 20]\nseed: 4\ntrain: {{batch_size: 16, encoder: '{TINY}'}}\n"
        "optuna:\n  trials: 3\n  legacy: [70, 90]\n  params:\n    lr: {low: 0.001, high: 0.01, log: true}\n"
    )
    table = cr.sweep(synthetic_world, output_dir=tmp_path / "opt", space=space)
    assert len(table) == 6 and set(table["status"]) == {"complete"} and set(table["seed"]) == {4}
    for ratio in table["ratio"]:
        parts = [int(x) for x in ratio.split("_")]
        assert len(parts) == 3 and sum(parts) == 100 and 70 <= parts[0] <= 90
    assert table["param_lr"].between(0.001, 0.01).all()
    assert table["trial_id"].nunique() == 3
    assert len(cr.pareto(table, n_bootstrap=10)) == len(table.groupby(["ratio", "step", "param_lr"]))
