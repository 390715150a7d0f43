"""Sweep logic without Ray: the Optuna define-by-run space, trials from Tune configs, trial records,
the driver's union config and the dilution-floor ratios (the Tune wiring: test_sweep_ray.py)."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest

from crucible_ray.config import Ratio
from crucible_ray.errors import ConfigError
from crucible_ray.sweeps import (
    GRID_PARAM,
    TRIALS_DIR,
    OptunaSearchSpace,
    SweepSpace,
    Trial,
    collect_results,
    expected_trials,
    floor_ratios,
    grid_keys,
    grid_space,
    optuna_sampler,
    record_failed_trial,
    resolve_trial,
    sampled_pools,
    start_trial,
    trial_key,
    trial_outcomes,
    trial_status,
    union_config,
)

PARAMS = {"lr": {"low": 0.001, "high": 0.1, "log": True}}


def _optuna_space(**optuna_fields: object) -> SweepSpace:
    return SweepSpace(
        steps=[10, 20], seed=4, optuna={"trials": 3, "legacy": [60, 90], "params": PARAMS, **optuna_fields}
    )


def test_fixed_trial_gives_the_ratio_and_params() -> None:
    space = _optuna_space()
    fixed = optuna.trial.FixedTrial({"legacy": 80, "expansion": 15, "lr": 0.01})
    OptunaSearchSpace(space)(fixed)
    t = resolve_trial(fixed.params, space)
    assert t == Trial(Ratio.parse("80_15_5"), 4, {"lr": 0.01})
    assert t.key == trial_key("80_15_5", 4, {"lr": 0.01})


def test_an_in_memory_study_stays_on_the_simplex_and_is_seeded() -> None:
    space = _optuna_space()

    def sample(seed: int) -> list[str]:
        study = optuna.create_study(directions=["maximize", "maximize"], sampler=optuna_sampler(seed))
        out = []
        for _ in range(8):
            trial = study.ask()
            OptunaSearchSpace(space)(trial)
            t = resolve_trial(trial.params, space)
            out.append(str(t.ratio))
            assert 60 <= t.ratio.weights["legacy"] <= 90 and sum(t.ratio.percents) == 100
            assert 0.001 <= t.params["lr"] <= 0.1
            study.tell(trial, [0.5, 0.5])
        return out

    assert sample(0) == sample(0)


def test_the_legacy_pool_is_found_by_name_not_position() -> None:
    space = SweepSpace(
        steps=[10], pools=["fresh", "core", "extra"], optuna={"trials": 1, "legacy": [70, 80], "legacy_pool": "core"}
    )
    assert sampled_pools(space) == ("core", "fresh")
    fixed = optuna.trial.FixedTrial({"core": 75, "fresh": 5})
    OptunaSearchSpace(space)(fixed)
    ratio = resolve_trial(fixed.params, space).ratio
    assert ratio.weights == {"fresh": 5, "core": 75, "extra": 20}
    assert [str(r) for r in floor_ratios(space)] == ["0_70_30"]
    with pytest.raises(ValueError, match="set optuna.legacy_pool"):
        SweepSpace(steps=[10], pools=["fresh", "core"], optuna={"trials": 1})


def test_grid_trials_resolve_by_key() -> None:
    space = grid_space("85_10_5,75_15_10", "1,2", "10,20", train={"batch_size": 8})
    keys = grid_keys(space)
    assert len(keys) == 4 == expected_trials(space)
    t = resolve_trial({GRID_PARAM: keys[1]}, space)
    assert (str(t.ratio), t.seed, t.params) == ("85_10_5", 2, {})
    with pytest.raises(ConfigError, match="not in the search space"):
        resolve_trial({GRID_PARAM: "nope"}, space)
    assert space.train_config(t.ratio, t.seed, t.params).batch_size == 8
    assert expected_trials(_optuna_space()) == 3


def test_union_config_weights_every_pool_some_trial_uses() -> None:
    assert str(union_config(grid_space("85_15_0,100_0_0", "1", "10")).ratio) == "50_50_0"
    assert str(union_config(grid_space("85_10_5", "1", "10")).ratio) == "34_33_33"
    assert str(union_config(_optuna_space()).ratio) == "34_33_33"
    assert [str(r) for r in floor_ratios(grid_space("85_10_5,65_25_10", "1", "10"))] == ["85_10_5", "65_25_10"]
    assert [str(r) for r in floor_ratios(_optuna_space())] == ["60_0_40"]


def test_trial_records_keep_the_pools(tmp_path: Path) -> None:
    space = SweepSpace(steps=[10, 20], pools=["core", "fresh"], grid={"ratio": ["60_40"], "seed": [1]})
    (trial,) = space.trials()
    assert trial.ratio.pools == ("core", "fresh")
    trial_dir = tmp_path / TRIALS_DIR / trial.key
    start_trial(trial_dir, trial, space.steps)
    meta = json.loads((trial_dir / "trial.json").read_text())
    assert meta == {
        "trial_id": trial.key,
        "ratio": "60_40",
        "pools": ["core", "fresh"],
        "seed": 1,
        "params": {},
        "steps": [10, 20],
    }
    assert trial_status(trial_dir) == "running"
    assert record_failed_trial(tmp_path, trial, space.steps, "boom")
    table = collect_results(tmp_path)
    assert set(table["pools"]) == {"core,fresh"} and set(table["status"]) == {"failed"}
    assert list(table.columns[:4]) == ["trial_id", "ratio", "pools", "seed"]
    assert trial_outcomes(table) == ([trial.key], 1)


def test_an_older_trial_record_takes_the_manifest_pools(tmp_path: Path) -> None:
    trial_dir = tmp_path / TRIALS_DIR / "old"
    trial_dir.mkdir(parents=True)
    (trial_dir / "trial.json").write_text(json.dumps({"trial_id": "old", "ratio": "60_40", "seed": 1, "steps": [10]}))
    (tmp_path / "manifest.json").write_text(json.dumps({"kind": "sweep", "pools": ["core", "fresh"]}))
    assert collect_results(tmp_path)["pools"].tolist() == ["core,fresh"]


@pytest.mark.parametrize(
    "module",
    [
        "crucible_ray.config._ratio",
        "crucible_ray.config._lists",
        "crucible_ray.sweeps._trial",
        "crucible_ray.sweeps._optuna",
        "crucible_ray.sweeps._plan",
        "crucible_ray.sweeps._space",
        "crucible_ray.training._config",
        "crucible_ray.guardrails._checks",
        "crucible_ray.analysis._table",
        "crucible_ray.analysis._findings",
        "crucible_ray.provenance",
    ],
)
def test_the_examples_in_the_docstrings_run(module: str) -> None:
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module))
    assert result.failed == 0 and result.attempted > 0


def test_an_optuna_space_pickled_by_the_previous_version_still_samples_the_same() -> None:
    """A sweep interrupted under the previous version resumes: its pickled space (every pool in
    ``pools``) is read into the current one and draws the same parameters."""
    import optuna

    from crucible_ray.distributed._sweep import _OptunaSpace
    from crucible_ray.sweeps import OptunaSearchSpace, SweepSpace

    space = SweepSpace(steps=[10], optuna={"trials": 1, "legacy": [60, 90]})
    old = _OptunaSpace.__new__(_OptunaSpace)
    old.__setstate__({"pools": ("legacy", "expansion", "organic"), "legacy": (60, 90), "params": {}})
    fixed = {"legacy": 70, "expansion": 20}
    a, b = optuna.trial.FixedTrial(fixed), optuna.trial.FixedTrial(fixed)
    old(a)
    OptunaSearchSpace(space)(b)
    assert a.params == b.params == fixed
