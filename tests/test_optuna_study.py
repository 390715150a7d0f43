"""A finished sweep written as an Optuna study, read back through Optuna (``pareto --optuna-storage``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from crucible_ray.cli._main import run
from test_analysis import crafted_table

import crucible_ray as cr
from crucible_ray.sweeps import write_optuna_study


def _frontier_of_study(study: optuna.Study) -> set[str]:
    return {t.user_attrs["config"] for t in study.best_trials}


def test_the_cli_writes_one_trial_per_config_and_optunas_front_is_ours(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    crafted_table().to_parquet(sweep / "results.parquet")
    storage = f"sqlite:///{tmp_path / 'sweep.db'}"
    for _ in range(2):  # a second export replaces the first: no trial twice
        assert run(["pareto", "--results-dir", str(sweep), "--bootstrap", "50", "--optuna-storage", storage]) == 0
    err = capfd.readouterr().err.strip().splitlines()  # Optuna's own log lines do not reach the terminal
    assert len(err) == 2 and all(line.startswith("wrote 6 configs as Optuna study") for line in err), err
    study = optuna.load_study(study_name="crucible-ray/sweep", storage=storage)
    front = cr.pareto(sweep, n_bootstrap=50)
    assert len(study.trials) == len(front.table) == 6
    assert study.directions == [optuna.study.StudyDirection.MAXIMIZE] * 2
    assert study.metric_names == ["retention", "generalization"]
    assert _frontier_of_study(study) == set(front.frontier["config"])
    by = front.table.set_index("config")
    for t in study.trials:
        row = by.loc[t.user_attrs["config"]]
        assert t.values == [row["retention_mean"], row["generalization_mean"]]
        assert t.params == {"ratio": row["ratio"], "step": row["step"]}
        assert t.user_attrs["n_seeds"] == 3 and t.user_attrs["recommended"] == bool(row["recommended"])
    assert study.user_attrs["recommended"] == front.recommended
    figure = optuna.visualization.plot_pareto_front(study)  # what optuna-dashboard draws
    assert sum(len(trace.x) for trace in figure.data) == 6


def test_swept_params_become_optuna_params(tmp_path: Path) -> None:
    t = crafted_table().assign(param_lr=0.01)
    t = pd.concat([t, t[t["ratio"] == "85_10_5"].assign(param_lr=0.02, retention=0.95, generalization=0.5)])
    front = cr.pareto(t, n_bootstrap=20)
    study = write_optuna_study(front, f"sqlite:///{tmp_path / 's.db'}", source=tmp_path)
    assert len(study.trials) == 8
    assert {t.params["lr"] for t in study.trials} == {0.01, 0.02}
    assert _frontier_of_study(study) == set(front.frontier["config"])


@pytest.mark.parametrize("seed", range(12))
def test_optunas_front_agrees_with_ours_on_random_sweeps(seed: int, tmp_path: Path) -> None:
    rng = np.random.default_rng(seed)
    rows = [
        {"trial_id": f"{r}-{s}", "ratio": r, "seed": s, "step": step, "status": "complete",
         "retention": rng.uniform(0.3, 1.0), "generalization": rng.uniform(0.0, 0.6)}
        for r in ("90_5_5", "80_10_10", "70_20_10", "60_20_20", "50_25_25")
        for s in (1, 2, 3)
        for step in (100, 200)
    ]  # fmt: skip
    front = cr.pareto(pd.DataFrame(rows), n_bootstrap=20)
    study = write_optuna_study(front, "sqlite:///" + str(tmp_path / "r.db"), source=tmp_path)
    assert _frontier_of_study(study) == set(front.frontier["config"])


def test_a_study_this_sweep_did_not_write_is_left_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    crafted_table().to_parquet(sweep / "results.parquet")
    storage = f"sqlite:///{tmp_path / 'other.db'}"
    theirs = optuna.create_study(storage=storage, study_name="crucible-ray/sweep")
    theirs.add_trial(optuna.trial.create_trial(value=1.0))
    assert run(["pareto", "--results-dir", str(sweep), "--optuna-storage", storage, "--bootstrap", "20"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "crucible-ray/sweep" in err[0] and "Traceback" not in err[0]
    assert len(optuna.load_study(study_name="crucible-ray/sweep", storage=storage).trials) == 1
    # Under another name it goes in beside it.
    args = ["pareto", "--results-dir", str(sweep), "--optuna-storage", storage, "--optuna-study", "mine"]
    assert run([*args, "--bootstrap", "20"]) == 0
    assert len(optuna.load_study(study_name="mine", storage=storage).trials) == 6
