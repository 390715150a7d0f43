"""Faults in training and sweeps: a killed or stopped driver, a killed Tune trial actor or Ray Train
controller, a crash while the results are written.

Each: nothing finished is lost or duplicated, no partial file is left under a final name (nor a
temporary file beside it), the message says what happened, and the rerun gives the uninterrupted run's
results (training is a function of the seed and the step, so a run continued from a checkpoint matches).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import psutil
import pytest
import torch
from crucible_ray.cli._main import run
from events import read_events
from train_reference import board, train_in_process

import crucible_ray as cr
from crucible_ray.training import TrainConfig, WorkerContext, prepare_training, train_worker

EXE = str(Path(sys.executable).parent / "crucible-ray")
TINY = "hashed-ngram:buckets=4096,dim=32"
INTERRUPTED = (
    "crucible-ray: error: interrupted; finished work is kept: rerun the same command to continue (a sweep: --resume)"
)
# Every sweep here: two trials, run at once on the cluster's two 1-CPU nodes, evaluated at steps 100 and 200.
RATIOS, SEEDS, STEPS = "85_10_5,75_15_10", "1", "100,200"
SWEEP_CLI = ["--ratios", RATIOS, "--seeds", SEEDS, "--steps", STEPS, "--batch-size", "16", "--encoder", TINY]
SWEEP_API = dict(ratios=RATIOS, seeds=SEEDS, steps=STEPS, batch_size=16, encoder=TINY)
METRICS = ["trial_id", "ratio", "seed", "step", "retention", "generalization"]


def _driver(args: list[str], cluster: Any, log: Path) -> subprocess.Popen[bytes]:
    """``args`` (after the interpreter or console script) in a process of its own, connected to the
    session's cluster (whose token it inherits)."""
    env = {**os.environ, "RAY_ADDRESS": cluster.address}
    with log.open("w") as f:
        return subprocess.Popen(args, stdout=f, stderr=f, env=env)


def _signal_when(proc: subprocess.Popen[bytes], ready: Callable[[], bool], sig: int, log: Path) -> int:
    """Send ``sig`` to the driver once ``ready()``; its exit code."""
    deadline = time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline and not ready():
        time.sleep(0.05)
    assert proc.poll() is None, "the driver ended before the fault:\n" + log.read_text()[-3000:]
    assert ready(), "the driver never reached the point of the fault:\n" + log.read_text()[-3000:]
    proc.send_signal(sig)
    return proc.wait(timeout=180)


def _no_partial_files(folder: Path) -> None:
    """No temporary file of an interrupted write is left, and every output under a final name is whole."""
    left = sorted(str(p.relative_to(folder)) for p in [*folder.rglob(".*.tmp"), *folder.rglob(".recovery-staging-*")])
    assert not left, left
    for path in folder.rglob("scoreboard_*.json"):
        cr.Scoreboard.read(path)
    for ckpt in folder.rglob("checkpoint_*.pt"):
        if ckpt.is_file():
            torch.load(ckpt, map_location="cpu", weights_only=True)


def _each_step_once(tensorboard: Path, last: int) -> None:
    """TensorBoard shows every eval point and every logged training step once (a rerun that repeats
    steps an interrupted attempt had logged hides the attempt's copies)."""
    acc = read_events(tensorboard)
    evals = [e.step for e in acc.Scalars("eval/retention")]
    assert evals == sorted(set(evals)) and evals[-1] == last, evals
    losses = [e.step for e in acc.Scalars("train/loss")]
    assert losses == sorted(set(losses)), losses


def _complete_table(out: Path) -> pd.DataFrame:
    """``results.parquet`` of a finished sweep: every trial once per milestone, every trial complete."""
    table = pd.read_parquet(out / "results.parquet")
    assert not table.duplicated(["trial_id", "step"]).any()
    assert len(table) == 4 and table["trial_id"].nunique() == 2 and set(table["step"]) == {100, 200}
    assert set(table["status"]) == {"complete"} and table["error"].isna().all()
    assert table["retention"].notna().all() and table["generalization"].notna().all()
    assert all(Path(p).is_file() for p in table["checkpoint"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["finished_trials"] == 2 and not manifest["failed_trials"]
    assert not (out / "ray_train").exists()  # every trial's recovery state dropped once it finished
    return table


def _same_results(table: pd.DataFrame, reference: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(
        table[METRICS].sort_values(["trial_id", "step"]).reset_index(drop=True),
        reference[METRICS].sort_values(["trial_id", "step"]).reset_index(drop=True),
    )


def test_a_continued_run_shows_each_step_once_in_tensorboard(synthetic_world: Path, tmp_path: Path) -> None:
    """An attempt logged steps past its last recovery state before it died; the attempt that continues
    from that state logs them again, and TensorBoard shows each step once (the later copy)."""
    cfg = TrainConfig(ratio="75_15_10", steps=[60], seed=3, eval_every=20, batch_size=16, encoder=TINY)
    data = prepare_training(synthetic_world, cfg).data
    states: list[dict[str, Any]] = []
    train_worker(cfg, data, tmp_path, WorkerContext(report=lambda m, s: states.append(s) if s else None))
    train_worker(cfg, data, tmp_path, WorkerContext(resume=next(s for s in states if s["step"] == 20)))
    _each_step_once(tmp_path / "tensorboard", 60)
    acc = read_events(tmp_path / "tensorboard")
    assert [e.step for e in acc.Scalars("eval/retention")] == [20, 40, 60]


@pytest.mark.slow
def test_a_killed_train_driver_continues_where_it_stopped(
    ray_cluster: Any, synthetic_world: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``train`` SIGKILLed after its first milestone; the same command continues it (from its last
    recovery checkpoint) to the uninterrupted run's scoreboards, and in the same MLflow run."""
    args = ["train", "--data", str(synthetic_world), "--ratio", "75_15_10", "--steps", "200,400"]
    args += ["--seed", "9", "--eval-every", "100", "--batch-size", "16", "--encoder", TINY]
    # The uninterrupted run's scoreboards, from the same loop in this process (tests/train_reference.py).
    straight = train_in_process(
        synthetic_world,
        tmp_path / "straight",
        ratio="75_15_10",
        steps=[200, 400],
        seed=9,
        eval_every=100,
        batch_size=16,
        encoder=TINY,
    )
    out = tmp_path / "killed"
    log = tmp_path / "driver.log"
    mlflow_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args_killed = [*args, "--output-dir", str(out), "--mlflow-uri", mlflow_uri]
    proc = _driver([EXE, *args_killed], ray_cluster, log)
    code = _signal_when(
        proc,
        lambda: (out / "scoreboard_step_200.json").exists() and not (out / "scoreboard_step_400.json").exists(),
        signal.SIGKILL,
        log,
    )
    assert code == -signal.SIGKILL
    assert json.loads((out / "manifest.json").read_text())["status"] == "running"
    assert not (out / "scoreboard_final.json").exists()
    # What a worker killed with its driver in the middle of writing a checkpoint leaves (the checkpoint
    # writes go through a temporary name; the kill is not precise enough to land there every time).
    (out / ".checkpoint_step_400.pt.k1ll3d.tmp").write_bytes(b"PK\x03\x04 cut short")
    # ... and a recovery state it was staging for Ray Train to copy.
    (out / ".recovery-staging-k1ll3d").mkdir(exist_ok=True)
    (out / ".recovery-staging-k1ll3d" / "state.pt").write_bytes(b"PK\x03\x04 cut short")
    capsys.readouterr()

    assert run(args_killed) == 0
    assert "continuing the interrupted run" in capsys.readouterr().err
    for step in (100, 200, 300, 400):
        assert board(out / f"scoreboard_step_{step}.json") == board(straight / f"scoreboard_step_{step}.json")
    assert board(out / "scoreboard_final.json") == board(straight / "scoreboard_final.json")
    assert 0 < json.loads((out / "timing.json").read_text())["steps_run"] < 400  # continued, not restarted
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and sorted(manifest["milestones"]) == ["200", "400"]
    assert not (out / "ray_train").exists()
    _no_partial_files(out)
    _each_step_once(out / "tensorboard", 400)
    _continued_in_the_same_mlflow_run(mlflow_uri, manifest, out)


def _continued_in_the_same_mlflow_run(uri: str, manifest: dict[str, Any], out: Path) -> None:
    """One MLflow run for the killed run and its continuation, FINISHED, each eval point once."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("crucible-ray")
    assert exp is not None
    [run_] = client.search_runs([exp.experiment_id])
    assert run_.info.status == "FINISHED" and run_.info.run_id == manifest["mlflow"]["run_id"]
    for key in ("retention", "generalization"):
        history = client.get_metric_history(run_.info.run_id, key)
        assert sorted(m.step for m in history) == [100, 200, 300, 400], key  # each eval point, once
        for m in history:
            board = cr.Scoreboard.read(out / f"scoreboard_step_{m.step}.json")
            assert m.value == pytest.approx(board.flat_metrics()[key])


# A driver whose process dies (SIGKILL: no cleanup, no handler) the moment it writes the results
# table, with half of it in the temporary file.
_CRASH_IN_WRITE_RESULTS = """
import json, os, signal, sys
import crucible_ray as cr
import crucible_ray.distributed._sweep as sweep_module
import crucible_ray.sweeps._results as results_module
from crucible_ray.data import atomic_path

def crash(table, sweep_dir):
    with atomic_path(sweep_dir / "results.parquet") as tmp:
        table.iloc[: len(table) // 2].to_parquet(tmp)
        os.kill(os.getpid(), signal.SIGKILL)

results_module.write_results = sweep_module.write_results = crash
world, out, options = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
cr.sweep(world, output_dir=out, **options)
"""


@pytest.fixture(scope="module")
def crashed_in_write(
    ray_cluster: Any, synthetic_world: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """A sweep whose driver was killed while it wrote ``results.parquet`` (every trial had finished),
    then resumed: what the crash left (``crash``) and the resumed sweep's table (``table``), the
    uninterrupted results the other sweeps here are compared with."""
    out = tmp_path_factory.mktemp("crash") / "sweep"
    log = out.parent / "driver.log"
    options = json.dumps({**SWEEP_API, "eval_every": 50})
    proc = _driver(
        [sys.executable, "-c", _CRASH_IN_WRITE_RESULTS, str(synthetic_world), str(out), options], ray_cluster, log
    )
    assert proc.wait(timeout=400) == -signal.SIGKILL, log.read_text()[-3000:]
    crash = {
        "results": (out / "results.parquet").exists(),
        "temporaries": [p.name for p in out.glob(".results.parquet.*.tmp")],
        "manifest": json.loads((out / "manifest.json").read_text())["status"],
        "trials": {d.name: json.loads((d / "status.json").read_text()) for d in (out / "trials").iterdir()},
    }
    table = cr.sweep(synthetic_world, output_dir=out, resume=True, eval_every=50, **SWEEP_API).table
    return {"out": out, "crash": crash, "table": table}


@pytest.mark.slow
def test_a_driver_killed_while_writing_results_resumes_to_a_complete_table(crashed_in_write: dict[str, Any]) -> None:
    out, crash = crashed_in_write["out"], crashed_in_write["crash"]
    assert not crash["results"] and len(crash["temporaries"]) == 1  # the crash left a half-written table
    assert crash["manifest"] == "running"
    assert len(crash["trials"]) == 2 and {s["status"] for s in crash["trials"].values()} == {"complete"}

    assert _complete_table(out).equals(crashed_in_write["table"])
    for trial, before in crash["trials"].items():  # finished before the crash: not run again
        assert json.loads((out / "trials" / trial / "status.json").read_text()) == before
    _no_partial_files(out)


@pytest.mark.slow
def test_sigterm_stops_a_sweep_cleanly_and_resume_finishes_it(
    ray_cluster: Any, crashed_in_write: dict[str, Any], synthetic_world: Path, tmp_path: Path
) -> None:
    """SIGTERM to ``sweep`` once a trial has reported: Tune saves its state, the command exits 130 with
    one line saying how to continue, and ``--resume`` completes the sweep; the sweep logs to MLflow, and
    the resumed run goes on logging into the same parent run (docs/tracking.md)."""
    out = tmp_path / "sweep"
    mlflow_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # One trial at a time: when the first has reported step 100 the second has not started, so the stop
    # always leaves work to resume (two trials at once both finished before Tune stopped them, once).
    args = ["sweep", "ratio", "--data", str(synthetic_world), *SWEEP_CLI, "--output-dir", str(out)]
    args += ["--max-concurrent-trials", "1"]
    log = tmp_path / "driver.log"
    proc = _driver([EXE, *args, "--mlflow-uri", mlflow_uri], ray_cluster, log)
    code = _signal_when(proc, lambda: any(out.glob("trials/*/scoreboard_step_100.json")), signal.SIGTERM, log)
    printed = log.read_text()
    assert code == 130, printed[-3000:]
    assert printed.splitlines()[-1] == INTERRUPTED, printed[-3000:]
    assert "Traceback" not in printed, printed[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "interrupted" and manifest["finished_trials"] < 2
    _no_partial_files(out)

    assert run([*args, "--resume"]) == 0
    table = _complete_table(out)
    _same_results(table, crashed_in_write["table"])
    _no_partial_files(out)
    for trial in table["trial_id"].unique():
        _each_step_once(out / "trials" / trial / "tensorboard", 200)
    _resumed_into_the_same_mlflow_run(mlflow_uri, table)


def _resumed_into_the_same_mlflow_run(uri: str, table: pd.DataFrame) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("crucible-ray")
    assert exp is not None
    runs = client.search_runs([exp.experiment_id])
    [parent] = [r for r in runs if r.data.tags["crucible.kind"] == "sweep"]
    assert parent.info.status == "FINISHED" and parent.data.tags.get("crucible.recommended")
    trials = [r for r in runs if r.data.tags["crucible.kind"] == "trial"]
    assert all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in trials)
    # One run per trial, FINISHED, whether the trial ran before the stop or after: a trial the stop cut
    # short went on in its own run, which holds every milestone once (the one logged before the stop too).
    assert sorted(r.info.run_name for r in trials) == sorted(table["trial_id"].unique())
    assert {r.info.status for r in trials} == {"FINISHED"}
    for r in trials:
        steps = sorted(m.step for m in client.get_metric_history(r.info.run_id, "retention"))
        assert steps == [100, 200], (r.info.run_name, steps)


def _alive(kind: str) -> list[Any]:
    """The live actors of a class (named by its qualified name: ``wrap_function.<locals>.ImplicitFunc``)."""
    from ray.util.state import list_actors

    return [a for a in list_actors(filters=[("state", "=", "ALIVE")]) if a.class_name.split(".")[-1] == kind]


def _trial_of(actor: Any, trials: set[str]) -> str | None:
    """Which of ``trials`` a Tune trial actor runs: its working folder is named after the Tune trial,
    a name that shows the trial's config (``..._trial=<trial id>_<date>``)."""
    try:
        name = Path(psutil.Process(actor.pid).cwd()).name
    except psutil.Error:  # gone meanwhile
        return None
    return next((t for t in trials if f"trial={t}_" in name), None)


def _creator(actor: Any) -> str | None:
    """The id of the actor whose task created ``actor`` (a Ray Train controller: its trial's Tune actor);
    None until Ray's task events have been reported."""
    from ray.util.state import list_tasks

    for created in list_tasks(filters=[("actor_id", "=", actor.actor_id), ("type", "=", "ACTOR_CREATION_TASK")]):
        for parent in list_tasks(filters=[("task_id", "=", created.parent_task_id)]):
            if parent.actor_id:
                return str(parent.actor_id)
    return None


def _sweep_with_kills(out: Path, kinds: dict[str, str], **api: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """Run ``cr.sweep`` and, once each trial of ``kinds`` has reported its step-100 eval (with a recovery
    checkpoint) and not finished, SIGKILL the actor of the kind given for it: ``ImplicitFunc`` (the Tune
    trial actor of a function trainable) or ``TrainController`` (the Ray Train controller it started)."""
    trials = set(kinds)
    result: dict[str, Any] = {}

    def work() -> None:
        try:
            result["value"] = cr.sweep(output_dir=out, max_failures=2, eval_every=50, **api)
        except Exception as e:  # surfaced by the assertions of the caller
            result["error"] = e

    thread = threading.Thread(target=work)
    thread.start()
    killed: dict[str, str] = {}  # trial -> the kind of actor killed
    creators: dict[str, str | None] = {}  # controller actor id -> its creator's
    deadline = time.monotonic() + 300
    while thread.is_alive() and time.monotonic() < deadline and len(killed) < len(kinds):
        ready = {p.parent.name for p in out.glob("trials/*/scoreboard_step_100.json")} - set(killed)
        ready -= {p.parent.name for p in out.glob("trials/*/scoreboard_step_200.json")}
        if ready:
            tune_actors = {a.actor_id: (a, _trial_of(a, trials)) for a in _alive("ImplicitFunc")}
            victims = {t: a for a, t in tune_actors.values() if t is not None and kinds[t] == "ImplicitFunc"}
            if "TrainController" in kinds.values():
                for controller in _alive("TrainController"):
                    if creators.get(controller.actor_id) is None:
                        creators[controller.actor_id] = _creator(controller)
                    owner = tune_actors.get(creators[controller.actor_id] or "")
                    if owner and owner[1] is not None and kinds[owner[1]] == "TrainController":
                        victims[owner[1]] = controller
            for trial in sorted(ready & set(victims)):
                os.kill(victims[trial].pid, signal.SIGKILL)
                killed[trial] = kinds[trial]
        time.sleep(0.1)
    thread.join(timeout=400)
    return result, killed


def _resumed_each_trial(out: Path, trials: set[str], table: pd.DataFrame) -> None:
    assert table.groupby("trial_id")["attempts"].first().to_dict() == dict.fromkeys(trials, 2)  # each retried once
    for trial in trials:  # the retry continued from a checkpoint
        assert 0 <= json.loads((out / "trials" / trial / "timing.json").read_text())["steps_run"] < 200
        _each_step_once(out / "trials" / trial / "tensorboard", 200)


@pytest.mark.slow
def test_a_killed_trial_actor_retries_its_trial_from_its_last_checkpoint(
    crashed_in_write: dict[str, Any], synthetic_world: Path, tmp_path: Path
) -> None:
    """A one-worker trial trains in its Tune trial actor (``ImplicitFunc``); SIGKILLed once the trial has
    reported, Tune retries it (``max_failures``) from its last checkpoint, and the sweep completes with
    the uninterrupted sweep's results."""
    out = tmp_path / "sweep"
    kinds = {cr.sweeps.trial_key(r, int(SEEDS), {}): "ImplicitFunc" for r in RATIOS.split(",")}
    result, killed = _sweep_with_kills(out, kinds, data=synthetic_world, **SWEEP_API)
    assert killed == kinds, f"the sweep ended before both kills: {killed}"
    assert "error" not in result, result.get("error")
    table = _complete_table(out)
    assert table.equals(result["value"].table)
    _resumed_each_trial(out, set(kinds), table)
    _same_results(table, crashed_in_write["table"])
    _no_partial_files(out)


@pytest.mark.slow
def test_a_killed_train_controller_of_a_two_worker_trial_retries_from_its_last_checkpoint(
    ray_cluster: Any, synthetic_world: Path, tmp_path: Path
) -> None:
    """A trial of two workers runs Ray Train inside its Tune trial; its controller SIGKILLed after the
    first reported checkpoint, Tune retries the trial and the Ray Train run continues from there."""
    out = tmp_path / "sweep"
    ratio = RATIOS.split(",")[0]
    kinds = {cr.sweeps.trial_key(ratio, int(SEEDS), {}): "TrainController"}
    api = {**SWEEP_API, "ratios": ratio, "workers": 2}
    result, killed = _sweep_with_kills(out, kinds, data=synthetic_world, **api)
    assert killed == kinds, f"the sweep ended before the kill: {killed}"
    assert "error" not in result, result.get("error")
    table = pd.read_parquet(out / "results.parquet")
    assert set(table["status"]) == {"complete"} and sorted(table["step"]) == [100, 200]
    assert not (out / "ray_train").exists()
    _resumed_each_trial(out, set(kinds), table)
    _no_partial_files(out)
