"""MLflow: a training run and a sweep logged to a real tracking store, read back through MLflow's client.

A SQLite store (the file store is closed in MLflow 3) and an ``mlflow server`` this test starts on
127.0.0.1; nothing reaches the network.
"""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from crucible_ray.cli._main import run
from mlflow import MlflowClient  # the `mlflow` extra, which make test installs
from ray import cloudpickle  # how Tune saves a run's callbacks (tuner.pkl)

import crucible_ray as cr
from crucible_ray.distributed._tracking import TrialRunLogger
from crucible_ray.sweeps import GRID_PARAM, SweepSpace, recommended_trials
from crucible_ray.tracking import TAG_KIND, MlflowTarget, best_effort, miner_params, mlflow_run, redact_uri, run_params
from crucible_ray.tracking._mlflow import _artifact_root

TINY = "hashed-ngram:buckets=4096,dim=32"


def _client(uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=uri)


def _runs(client: MlflowClient, experiment: str) -> list[Any]:
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no experiment {experiment!r}"
    return list(client.search_runs([exp.experiment_id], max_results=1000))


def _history(client: MlflowClient, run_id: str, key: str) -> dict[int, float]:
    return {m.step: m.value for m in client.get_metric_history(run_id, key)}


def _artifacts(client: MlflowClient, run_id: str, path: str | None = None) -> set[str]:
    return {f.path for f in client.list_artifacts(run_id, path)}


@pytest.mark.slow
@pytest.mark.usefixtures("ray_local")
def test_a_training_run_is_logged_to_a_sqlite_store(synthetic_world: Path, tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'runs.db'}"
    out = tmp_path / "run"
    res = cr.train(
        synthetic_world,
        output_dir=out,
        ratio="75_15_10",
        steps=[40, 80],
        seed=3,
        encoder=TINY,
        batch_size=16,
        mlflow_uri=uri,
        mlflow_experiment="train-test",
    )
    client = _client(uri)
    [run_] = _runs(client, "train-test")
    assert run_.info.status == "FINISHED" and run_.info.run_name == "run"
    assert res.manifest["mlflow"] == {"uri": uri, "experiment": "train-test", "run_id": run_.info.run_id}
    tags, params = run_.data.tags, run_.data.params
    assert tags["crucible.kind"] == "train" and tags["crucible.output_dir"] == str(out.resolve())
    assert params["ratio"] == "75_15_10" and params["seed"] == "3" and params["steps"] == "40,80"
    assert params["encoder.kind"] == "hashed-ngram" and params["encoder.buckets"] == "4096"
    assert params["batch_size"] == "16" and params["retention_set"] == "frozen_eval"
    for key in ("retention", "generalization", "frozen_eval_tier3_accuracy"):
        history = _history(client, run_.info.run_id, key)
        assert sorted(history) == [40, 80], key  # each milestone once, at its training step
        for step, value in history.items():
            assert value == pytest.approx(res.milestones[step].flat_metrics()[key])
    assert _artifacts(client, run_.info.run_id) >= {"checkpoint", "scoreboards", "manifest.json"}
    assert _artifacts(client, run_.info.run_id, "checkpoint") == {"checkpoint/checkpoint_final.pt"}
    assert _artifacts(client, run_.info.run_id, "scoreboards") == {
        f"scoreboards/scoreboard_{s}.json" for s in ("step_40", "step_80", "final")
    }
    # The artifacts lie beside the database, not in the folder the run was started from.
    stored = list((tmp_path / "mlartifacts" / "train-test").rglob("checkpoint_final.pt"))
    assert len(stored) == 1 and stored[0].read_bytes() == res.checkpoint.read_bytes()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    """``mlflow server`` on 127.0.0.1 (a SQLite backend, artifacts served by the server), stopped after."""
    port = _free_port()
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "mlflow"),
            "server",
            "--backend-store-uri",
            f"sqlite:///{tmp_path / 'server.db'}",
            "--artifacts-destination",
            str(tmp_path / "server-artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("mlflow server did not start:\n" + (tmp_path / "server.log").read_text()[-3000:])
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.mark.slow
@pytest.mark.usefixtures("ray_local")
def test_a_sweep_logs_nested_trial_runs_to_an_mlflow_server(
    synthetic_world: Path, tmp_path: Path, mlflow_server: str
) -> None:
    out = tmp_path / "sweep"
    result = cr.sweep(
        synthetic_world,
        output_dir=out,
        ratios="85_10_5,70_20_10",
        seeds="1,2",
        steps="40,80",
        encoder=TINY,
        batch_size=16,
        mlflow_uri=mlflow_server,
        mlflow_experiment="sweep-test",
    )
    client = _client(mlflow_server)
    runs = _runs(client, "sweep-test")
    [parent] = [r for r in runs if r.data.tags.get("crucible.kind") == "sweep"]
    trials = [r for r in runs if r.data.tags.get("crucible.kind") == "trial"]
    assert len(runs) == 5 and parent.info.status == "FINISHED"
    assert json.loads((out / "manifest.json").read_text())["mlflow"]["run_id"] == parent.info.run_id
    assert parent.data.params["grid.ratio"] == "85_10_5,70_20_10" and parent.data.params["steps"] == "40,80"
    assert parent.data.params["train.encoder"] == TINY

    table = result.table
    assert {r.info.run_name for r in trials} == set(table["trial_id"])
    for r in trials:
        assert r.info.status == "FINISHED"
        assert r.data.tags["mlflow.parentRunId"] == parent.info.run_id  # nested under the sweep
        assert r.data.tags["crucible.trial_id"] == r.info.run_name
        rows = table[table["trial_id"] == r.info.run_name].set_index("step")
        assert r.data.params["ratio"] == rows["ratio"].iloc[0] and r.data.params["seed"] == str(rows["seed"].iloc[0])
        assert r.data.params["encoder.kind"] == "hashed-ngram" and r.data.params["steps"] == "40,80"
        for key in ("retention", "generalization"):
            history = _history(client, r.info.run_id, key)
            assert sorted(history) == [40, 80]  # the training step, not Tune's report count
            for step, value in history.items():
                assert value == pytest.approx(rows.loc[step, key])
        assert _artifacts(client, r.info.run_id, "checkpoint") == {"checkpoint/checkpoint_final.pt"}
        assert "scoreboards/scoreboard_step_80.json" in _artifacts(client, r.info.run_id, "scoreboards")
        assert "trial.json" in _artifacts(client, r.info.run_id)

    assert _artifacts(client, parent.info.run_id) >= {
        "results.parquet",
        "manifest.json",
        "pareto.csv",
        "pareto.json",
        "guardrails.json",
        "report.html",
    }
    front = cr.pareto(out)
    assert parent.data.tags["crucible.recommended"] == front.recommended
    assert parent.data.metrics["hypervolume"] == pytest.approx(front.hypervolume)
    pareto_csv = client.download_artifacts(parent.info.run_id, "pareto.csv", str(tmp_path / "dl"))
    logged = pd.read_csv(pareto_csv)
    assert list(logged["config"]) == list(front.table["config"])
    assert list(logged["on_frontier"]) == list(front.table["on_frontier"])
    tagged = {r.info.run_name for r in trials if r.data.tags.get("crucible.recommended") == front.recommended}
    assert tagged == set(recommended_trials(table, front)) and len(tagged) == 2  # both seeds of the config
    page = client.download_artifacts(parent.info.run_id, "report.html", str(tmp_path / "dl"))
    assert Path(page).stat().st_size > 100_000


def test_the_flags_are_checked_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    world = tmp_path / "nowhere"
    code = run(["train", "--data", str(world), "--output-dir", str(tmp_path / "o"), "--mlflow-experiment", "x"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == "crucible-ray: error: --mlflow-experiment needs --mlflow-uri"
    assert not (tmp_path / "o").exists()


def test_an_unreachable_store_fails_before_training(
    synthetic_world: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a-file").write_text("")
    uri = f"sqlite:///{tmp_path / 'a-file' / 'runs.db'}"  # its folder cannot be made
    code = run(
        ["train", "--data", str(synthetic_world), "--output-dir", str(tmp_path / "o"), "--steps", "20"]
        + ["--encoder", TINY, "--mlflow-uri", uri]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith(f"crucible-ray: error: --mlflow-uri {uri}: "), err
    assert not list((tmp_path / "o").glob("checkpoint_*")) and not list((tmp_path / "o").glob("scoreboard_*"))


def test_a_resumed_sweep_keeps_where_it_logs(synthetic_world: Path, tmp_path: Path) -> None:
    """A sweep started without MLflow is not resumed into it, nor one logging elsewhere (Tune restores
    the callbacks a sweep started with); both refused before Ray starts."""
    out = tmp_path / "s"
    (out / "tune").mkdir(parents=True)
    (out / "manifest.json").write_text(json.dumps({"kind": "sweep", "status": "interrupted"}))
    with pytest.raises(cr.ConfigError, match="started without MLflow"):
        cr.sweep(synthetic_world, output_dir=out, ratios="85_10_5", seeds="1", steps="20", resume=True,
                 mlflow_uri=f"sqlite:///{tmp_path / 'a.db'}")  # fmt: skip
    (out / "manifest.json").write_text(
        json.dumps({"kind": "sweep", "mlflow": {"uri": "sqlite:///a.db", "experiment": "e", "run_id": "r"}})
    )
    with pytest.raises(cr.ConfigError, match="keeps where it logs"):
        cr.sweep(synthetic_world, output_dir=out, ratios="85_10_5", seeds="1", steps="20", resume=True,
                 mlflow_uri="sqlite:///b.db", mlflow_experiment="e")  # fmt: skip


def test_params_flatten_the_config_and_name_the_miner_settings(tmp_path: Path) -> None:
    (tmp_path / "organic_mined.manifest.json").write_text(
        json.dumps(
            {
                "kind": "mining",
                "config": {"lineups": 10, "min_passes": 3, "danger_margin": 0.05},
                "model": {"checkpoint": "/b/checkpoint_final.pt", "kind": "minilm"},
                "counts": {"pass_rate": 0.25},
            }
        )
    )
    (tmp_path / "world.manifest.json").write_text(json.dumps({"kind": "world", "config": {"x": 1}}))
    (tmp_path / "broken.manifest.json").write_text("{not json")
    assert miner_params(tmp_path) == {
        "miner.organic_mined.lineups": 10,
        "miner.organic_mined.min_passes": 3,
        "miner.organic_mined.danger_margin": 0.05,
        "miner.organic_mined.model": '{"checkpoint":"/b/checkpoint_final.pt","kind":"minilm"}',
        "miner.organic_mined.pass_rate": 0.25,
    }
    params = run_params({"ratio": "75_15_10", "encoder": {"kind": "minilm", "mode": "frozen-head"}}, tmp_path)
    assert params["encoder.mode"] == "frozen-head" and params["miner.organic_mined.lineups"] == 10


def test_targets_and_artifact_locations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert MlflowTarget.from_options(None) is None
    # A relative SQLite path is made absolute: a run resumed from another folder finds the same database.
    assert MlflowTarget.from_options("sqlite:///x.db") == MlflowTarget(f"sqlite:///{tmp_path}/x.db", "crucible-ray")
    assert MlflowTarget.from_options("sqlite:///d/x.db?timeout=5", "e").uri == f"sqlite:///{tmp_path}/d/x.db?timeout=5"
    for kept in ("sqlite:////abs/x.db", "sqlite:///:memory:", "http://127.0.0.1:5000", "databricks"):
        assert MlflowTarget.from_options(kept).uri == kept  # type: ignore[union-attr]
    with pytest.raises(cr.ConfigError, match="empty"):
        MlflowTarget.from_options(" ")
    # A password in the URI is not shown in logs nor kept in manifests.
    secret = MlflowTarget("https://me:s3cret@mlflow.example.com:8443/path", "e")
    assert secret.to_dict() == {"uri": "https://me:***@mlflow.example.com:8443/path", "experiment": "e"}
    assert redact_uri("http://127.0.0.1:5000/x") == "http://127.0.0.1:5000/x"
    assert redact_uri("https://token@host/x") == "https://token@host/x"
    # Artifacts of a SQLite store go beside the database, by experiment; other stores keep their default.
    assert _artifact_root(MlflowTarget("sqlite:////a/b/runs.db", "my exp/1")) == "file:///a/b/mlartifacts/my_exp_1"
    assert _artifact_root(MlflowTarget("sqlite:///:memory:")) is None
    assert _artifact_root(MlflowTarget("http://127.0.0.1:5000")) is None


def test_a_deleted_experiment_or_run_is_named_not_used(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 's.db'}"
    runs = MlflowTarget(uri, "gone").open()
    run_id = runs.start("r", params={"odd key!": 1, "miner.my pool.lineups": 10, "none": None})
    client = _client(uri)
    assert client.get_run(run_id).data.params == {"odd key_": "1", "miner.my pool.lineups": "10"}
    runs.end(run_id)
    assert runs.reopen(run_id) and client.get_run(run_id).info.status == "RUNNING"
    client.delete_run(run_id)
    assert not runs.reopen(run_id) and not runs.reopen("no-such-run")
    client.delete_experiment(runs.experiment_id)
    with pytest.raises(cr.ConfigError, match=r"'gone' is deleted in sqlite:.*mlflow experiments restore"):
        MlflowTarget(uri, "gone").open()


class _TuneTrial:
    """What the trial logger reads of a Ray Tune trial: its config and its name (Tune's side)."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    def __str__(self) -> str:
        return f"_trial_{self.config[GRID_PARAM]}"


def _result(step: int, retention: float) -> dict[str, Any]:
    return {"step": step, "retention": retention, "generalization": retention / 2, "done": False, "trial_id": "t"}


def test_a_resumed_trial_goes_on_in_its_own_run_and_logs_each_milestone_once(tmp_path: Path) -> None:
    """Tune restores the callback of a sweep whose driver died: the trial it runs again continues in its
    earlier MLflow run (which the resumed sweep had ended KILLED), and a milestone it reports again is
    not logged twice."""
    uri = f"sqlite:///{tmp_path / 's.db'}"
    runs = MlflowTarget(uri, "resume").open()
    parent = runs.start("sweep", tags={TAG_KIND: "sweep"})
    space = SweepSpace(grid={"ratio": ["85_10_5"], "seed": [1]}, steps=[40, 80], train={"encoder": TINY})
    [t] = space.trials()
    first = TrialRunLogger(runs.target, parent, space, tmp_path / "out", tmp_path)
    first.setup()
    trial = _TuneTrial({GRID_PARAM: t.key})
    first.log_trial_start(trial)
    first.log_trial_result(1, trial, _result(40, 0.5))
    # The driver dies here. The resumed sweep reopens its parent run and ends what was left RUNNING...
    assert runs.reopen(parent) and runs.end_children(parent, "KILLED") == 1
    second = cloudpickle.loads(cloudpickle.dumps(first))  # ... and Tune restores the callbacks it saved
    second.setup()
    again = _TuneTrial({GRID_PARAM: t.key})
    second.log_trial_start(again)
    second.log_trial_result(1, again, _result(40, 0.5))  # a trial that restarts reports step 40 again
    second.log_trial_result(2, again, _result(80, 0.75))
    second.log_trial_end(again)
    client = _client(uri)
    [run_] = [r for r in _runs(client, "resume") if r.data.tags.get(TAG_KIND) == "trial"]
    assert run_.info.run_name == t.key and run_.info.status == "FINISHED"
    assert run_.data.params["ratio"] == "85_10_5" and run_.data.params["encoder.kind"] == "hashed-ngram"
    history = client.get_metric_history(run_.info.run_id, "retention")
    assert sorted((m.step, m.value) for m in history) == [(40, 0.5), (80, 0.75)]
    assert "trial_id" not in run_.data.metrics and "done" not in run_.data.metrics


def test_a_store_that_breaks_mid_sweep_costs_a_warning_not_a_trial(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "s.db"
    runs = MlflowTarget(f"sqlite:///{db}", "broken").open()
    parent = runs.start("sweep", tags={TAG_KIND: "sweep"})
    space = SweepSpace(grid={"ratio": ["85_10_5", "70_20_10"], "seed": [1]}, steps=[40], train={"encoder": TINY})
    logger = TrialRunLogger(runs.target, parent, space, tmp_path / "out", tmp_path)
    logger.setup()
    a, b = (_TuneTrial({GRID_PARAM: t.key}) for t in space.trials())
    logger.log_trial_start(a)
    db.write_bytes(b"not a database" * 1000)  # the store breaks
    with caplog.at_level(logging.WARNING, logger="crucible_ray"):
        logger.log_trial_result(1, a, _result(40, 0.5))
        logger.log_trial_result(2, a, _result(40, 0.5))
        logger.log_trial_end(a)
        logger.log_trial_start(b)
        logger.log_trial_result(1, b, _result(40, 0.5))
        logger.log_trial_end(b, failed=True)
    warned = [
        r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name.startswith("crucible_ray")
    ]
    # One line per kind of call, naming what was not logged; no exception reaches Tune.
    assert len(warned) == len(set(warned)) >= 3, warned
    assert all(w.startswith("MLflow: could not ") and "the run goes on without it" in w for w in warned), warned
    assert any("log a trial's milestone" in w for w in warned) and any("start a trial's run" in w for w in warned)


def test_logging_after_the_work_never_changes_its_outcome(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """``mlflow_run``: the block's own error is what propagates, even when ending the run fails too."""
    db = tmp_path / "s.db"
    runs = MlflowTarget(f"sqlite:///{db}").open()
    with pytest.raises(ValueError, match="the run's own error"):
        with mlflow_run(runs, "r", params={}, tags={}):
            db.write_bytes(b"not a database" * 1000)
            raise ValueError("the run's own error")
    with caplog.at_level(logging.WARNING, logger="crucible_ray"), best_effort("log a thing"):
        runs.log_metrics("no-run", {"x": 1.0}, 1)
    # Only our own records: a background thread of Ray (e.g. Ray Data's usage
    # counters, left by an earlier test in this session) may log at the same time.
    ours = [r for r in caplog.records if r.name.startswith("crucible_ray")]
    warned = [r.getMessage().split(" (")[0] for r in ours]
    assert warned == ["MLflow: could not end the run", "MLflow: could not log a thing"]
