"""MLflow: a training run and a sweep logged to a real tracking store, read back through MLflow's client.

A SQLite store (the file store is closed in MLflow 3) and an ``mlflow server`` this test starts on
127.0.0.1; nothing reaches the network.
"""

from __future__ import annotations

import json
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

import crucible_ray as cr
from crucible_ray.sweeps import recommended_trials
from crucible_ray.tracking import MlflowTarget, miner_params, run_params

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


def test_targets_and_artifact_locations() -> None:
    assert MlflowTarget.from_options(None) is None
    assert MlflowTarget.from_options("sqlite:///x.db") == MlflowTarget("sqlite:///x.db", "crucible-ray")
    with pytest.raises(cr.ConfigError, match="empty"):
        MlflowTarget.from_options(" ")
