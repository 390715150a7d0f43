"""Sweeps on Ray Tune: a failed trial recorded, an Optuna space (more sweeps: test_multinode.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from faults import kill_a_train_worker_when

import crucible_ray as cr

pytestmark = [pytest.mark.usefixtures("ray_local"), pytest.mark.slow]

# A small encoder: checkpoints of 0.5 MB instead of 34 MB keep each eval point's upload cheap.
TINY = "hashed-ngram:buckets=4096,dim=32"
SMALL = dict(batch_size=16, encoder=TINY)


def _status(trial_dir: Path) -> dict[str, Any]:
    return json.loads((trial_dir / "status.json").read_text())


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
        actor="ImplicitFunc",  # a one-worker trial trains in its Tune trial actor
    )
    assert res["killed"] == 1 and "error" not in res, res.get("error")
    result = res["value"]
    table = result.table
    by_trial = table.groupby("trial_id")["status"].first()
    assert sorted(by_trial) == ["complete", "failed"]
    failed = table[table["status"] == "failed"]
    assert failed["error"].str.len().gt(0).all() and set(failed["ratio"]) <= {"85_10_5", "75_15_10"}
    assert failed["seed"].eq(5).all()  # recorded with its params
    assert json.loads((out / "manifest.json").read_text())["failed_trials"] == list(failed["trial_id"].unique())
    assert result.failed_trials == list(failed["trial_id"].unique()) and result.output_dir == out.resolve()
    assert len(cr.pareto(out, n_bootstrap=10).table) == 2  # the failed trial's milestones are left out


def test_a_trial_in_a_reused_actor_gives_what_it_gives_alone(synthetic_world: Path, tmp_path: Path) -> None:
    """Tune reuses a finished trial's actor for the next one (one at a time here): whichever trial ran
    second gets exactly the figures and weights it gets in a sweep of its own."""
    both = cr.sweep(
        synthetic_world,
        output_dir=tmp_path / "both",
        ratios="85_10_5,75_15_10",
        seeds="5",
        steps="60",
        max_concurrent_trials=1,
        **SMALL,
    ).table.set_index("ratio")
    for ratio in ("85_10_5", "75_15_10"):
        alone = cr.sweep(
            synthetic_world, output_dir=tmp_path / ratio, ratios=ratio, seeds="5", steps="60", **SMALL
        ).table.set_index("ratio")
        for col in ("retention", "generalization"):
            assert both.loc[ratio, col] == alone.loc[ratio, col], (ratio, col)
        ours = torch.load(both.loc[ratio, "checkpoint"], weights_only=True)["state_dict"]
        theirs = torch.load(alone.loc[ratio, "checkpoint"], weights_only=True)["state_dict"]
        assert ours.keys() == theirs.keys()
        assert all(torch.equal(ours[k], theirs[k]) for k in ours), ratio


def test_an_optuna_space_searches_the_ratio_simplex(synthetic_world: Path, tmp_path: Path) -> None:
    space = tmp_path / "opt.yaml"
    space.write_text(
        f"name: opt\nsteps: [10, 20]\nseed: 4\ntrain: {{batch_size: 16, encoder: '{TINY}'}}\n"
        "optuna:\n  trials: 2\n  legacy: [70, 90]\n  params:\n    lr: {low: 0.001, high: 0.01, log: true}\n"
    )
    result = cr.sweep(synthetic_world, output_dir=tmp_path / "opt", space=space)
    table = result.table
    assert len(table) == 4 and set(table["status"]) == {"complete"} and set(table["seed"]) == {4}
    assert set(table["pools"]) == {"legacy,expansion,organic"}
    for ratio in table["ratio"]:
        assert 0.70 <= cr.Ratio.parse(ratio).share("legacy") <= 0.90
    assert table["param_lr"].between(0.001, 0.01).all()
    assert table["trial_id"].nunique() == 2
    assert len(cr.pareto(result, n_bootstrap=10).table) == len(table.groupby(["ratio", "step", "param_lr"]))
    # every per-tier accuracy a live trial reported to Tune is a column of the results table (one
    # flattening, Scoreboard.flat_metrics, for live and replayed trials and the table)
    reported = _tune_metric_names(tmp_path / "opt" / "tune")
    accuracies = {m for m in reported if m.endswith("_accuracy")}
    assert accuracies and all("/" not in m for m in accuracies)
    assert accuracies <= set(table.columns), sorted(accuracies - set(table.columns))


def _tune_metric_names(experiment: Path) -> set[str]:
    """Every metric name the trials reported to Tune (each trial's ``result.json``, one result a line)."""
    names: set[str] = set()
    for path in experiment.glob("*/result.json"):
        for line in path.read_text().splitlines():
            if line.strip():
                names |= set(json.loads(line))
    return names


def test_tune_callbacks_see_every_report_and_the_result_holds_tunes_results(
    synthetic_world: Path, tmp_path: Path
) -> None:
    from ray import tune

    class Seen(tune.Callback):  # type: ignore[misc]
        def __init__(self) -> None:
            self.results: list[dict[str, Any]] = []

        def on_trial_result(
            self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
        ) -> None:
            self.results.append(dict(result))

    seen = Seen()
    res = cr.sweep(
        synthetic_world,
        output_dir=tmp_path / "cb",
        ratios="85_10_5,75_15_10",
        seeds="5",
        steps="30,60",
        callbacks=[seen],
        **SMALL,
    )
    by_step = {s: sorted(r["retention"] for r in seen.results if r.get("step") == s) for s in (30, 60)}
    for step, values in by_step.items():
        assert values == sorted(res.table.loc[res.table["step"] == step, "retention"]), step
    grid = res.tune_results
    assert grid is not None and len(grid) == 2 and grid.num_errors == 0
    frame = grid.get_dataframe()
    assert len(frame) == 2 and set(frame["step"]) == {60}
    # The experiment on disk opens with Tune's own API, as docs/sweeps.md shows.
    analysis = tune.ExperimentAnalysis(str(tmp_path / "cb" / "tune"))
    assert len(analysis.dataframe()) == 2
    with pytest.raises(cr.ConfigError, match="callbacks"):
        cr.sweep(
            synthetic_world,
            output_dir=tmp_path / "cb",
            ratios="85_10_5",
            seeds="5",
            steps="30",
            resume=True,
            callbacks=[seen],
            **SMALL,
        )
