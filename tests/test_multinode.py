"""Multi-node runs on the session's cluster (``ray.cluster_utils.Cluster``, head + worker nodes on this
machine): work spreads over the nodes, a node lost mid-run loses nothing, a killed driver resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest
from crucible_ray.cli._main import run
from events import TRAINING_SCALARS, read_events
from faults import remove_a_node_when
from test_mining_ray import CFG, _copies, _results
from test_sweep_ray import SMALL, TINY, _status

import crucible_ray as cr
from crucible_ray.data import write_candidates

pytestmark = [pytest.mark.slow]


def _assert_node_gone(node_id: str, timeout: float = 60) -> None:
    """The GCS marks a node dead after missed health checks (seconds): a run that recovered faster than
    that can end while the node still shows alive."""
    import ray

    deadline = time.monotonic() + timeout
    while any(n["NodeID"] == node_id and n["Alive"] for n in ray.nodes()):
        assert time.monotonic() < deadline, f"node {node_id} still alive {timeout:.0f} s after its removal"
        time.sleep(0.5)


@pytest.mark.wordnet
def test_mining_spreads_over_nodes_and_a_lost_node_loses_no_candidate(
    ray_cluster: Any, wordnet_world: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from ray.util.state import list_actors

    cands = _copies(wordnet_world, 25)
    path = tmp_path / "many.jsonl"
    write_candidates(path, cands)
    out = tmp_path / "lost-node.parquet"
    work = out.parent / f".{out.name}.work"
    # Two actors on two 1-CPU worker nodes. Ray Data asks for SPREAD, which is best effort: two actors
    # of 0.5 CPU often start on one node (6 of 8 times in a plain Ray Data pool here). The node of one
    # of them goes away mid-run (its actors with it: no graceful drain), so the actors that take the
    # rest run on another node either way.
    res = remove_a_node_when(
        ray_cluster,
        lambda miners: miners if work.exists() else [],
        lambda: cr.mine(path, corpus=wordnet_world / "corpus.jsonl", out=out, actors=2, batch_size=16, **CFG),
        actor="CrucibleMiner",
    )
    assert res["removed"], "the run ended before a node could be removed"
    assert "error" not in res, res.get("error")
    lost = [r.getMessage() for r in caplog.records if "an actor was lost" in r.getMessage()]
    assert lost, "the node went after the mining pass had ended: the test did not test a loss mid-run"
    assert len(res["nodes"]) >= 2, f"the miner actors did not run on two nodes: {res['actors']}"
    _assert_node_gone(res["removed"])
    rows = _results(out)  # every candidate exactly once
    assert set(rows) == {c.candidate_id for c in cands}
    for actor_id in res["lost_actors"]:  # the actor died with its node; the pool replaced it
        assert [a.state for a in list_actors(filters=[("actor_id", "=", actor_id)])] == ["DEAD"]
    assert pq.read_metadata(out).num_rows == len(cands)


def _cwd_name(pid: int) -> str | None:
    import psutil

    try:
        return Path(psutil.Process(pid).cwd()).name
    except psutil.Error:  # gone meanwhile
        return None


def test_a_sweep_spreads_over_nodes_and_a_lost_node_retries_its_trial(
    ray_cluster: Any, synthetic_world: Path, tmp_path: Path
) -> None:
    out = tmp_path / "sweep"

    def on_resumable_trial(actors: list[Any]) -> list[Any]:
        """The Tune trial actors (a one-worker trial trains in its own) of a trial with a recovery
        checkpoint (the step-200 eval came after it), not finished; Tune runs each in a folder whose name
        holds ``trial=<id>_``. The other trial may not have reported a step yet (seen in CI): losing its
        node would rerun it from step 0."""
        saved = [p.parent for p in (out / "trials").glob("*/scoreboard_step_200.json")]
        names = {d.name for d in saved if not (d / "scoreboard_step_800.json").exists()}
        return [a for a in actors if any(f"trial={n}_" in (_cwd_name(a.pid) or "") for n in names)]

    res = remove_a_node_when(
        ray_cluster,
        on_resumable_trial,
        lambda: cr.sweep(
            synthetic_world,
            output_dir=out,
            ratios="75_15_10",
            seeds="3,4",
            steps="100,800",
            eval_every=100,
            max_failures=2,
            **SMALL,
        ),
        actor="ImplicitFunc",
    )
    assert res["removed"], "the sweep ended before a node could be removed"
    assert "error" not in res, res.get("error")
    assert len(res["nodes"]) >= 2, "the two trials' workers did not run on two nodes"
    _assert_node_gone(res["removed"])
    table = res["value"].table
    assert len(table) == 4 and set(table["status"]) == {"complete"}
    retried = table[table["attempts"] > 1]["trial_id"].unique()
    assert len(retried) >= 1  # the trial whose worker was on the lost node ran again...
    for trial in retried:
        timing = json.loads((out / "trials" / trial / "timing.json").read_text())
        # ...from its last checkpoint, not from step 0 (0 steps when the node went down after the
        # final checkpoint but before Tune saw the trial end: it resumes at step 800 and stops).
        assert 0 <= timing["steps_run"] < 800
    assert json.loads((out / "manifest.json").read_text())["status"] == "complete"


def test_a_sweep_with_more_trials_than_cpus_survives_a_killed_driver(
    ray_cluster: Any, synthetic_world: Path, tmp_path: Path
) -> None:
    """4 trials on the cluster's 2 CPUs (without the trial plan this hangs forever: two trials that each
    wait for a CPU the other holds); the driver, a separate process connected to the cluster, is
    SIGKILLed after the first trial finished; `--resume` completes the sweep without rerunning it. Then
    the outputs of a complete sweep."""
    out = tmp_path / "sweep"
    ratios, seeds = "85_10_5,75_15_10", "1,2"
    args = ["sweep", "ratio", "--data", str(synthetic_world), "--ratios", ratios, "--seeds", seeds]
    args += ["--steps", "10,20", "--batch-size", "16", "--encoder", TINY, "--output-dir", str(out)]
    log = tmp_path / "driver.log"
    env = {**os.environ, "RAY_ADDRESS": ray_cluster.address}  # the session's cluster, with its token
    with log.open("w") as err:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "crucible-ray"), *args], stdout=err, stderr=err, env=env
        )
        deadline = time.monotonic() + 240
        done: list[Path] = []
        while time.monotonic() < deadline and proc.poll() is None and not done:
            done = [p.parent for p in out.glob("trials/*/status.json") if _status(p.parent)["status"] == "complete"]
            time.sleep(0.1)
        assert proc.poll() is None, log.read_text()[-3000:]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    assert done and not (out / "results.parquet").exists()
    assert json.loads((out / "manifest.json").read_text())["status"] != "complete"
    before = {d.name: _status(d) for d in done}
    with pytest.raises(cr.ConfigError, match="--resume"):  # an existing sweep is never overwritten
        cr.sweep(synthetic_world, output_dir=out, ratios="85_10_5", seeds="1", steps="10")
    assert run([*args, "--resume"]) == 0
    for name, status in before.items():
        assert _status(out / "trials" / name) == status  # finished before the kill: not run again

    table = pd.read_parquet(out / "results.parquet")
    assert len(table) == 8 and set(table["status"]) == {"complete"}
    assert sorted(set(zip(table["ratio"], table["seed"], strict=True))) == [
        ("75_15_10", 1),
        ("75_15_10", 2),
        ("85_10_5", 1),
        ("85_10_5", 2),
    ]
    assert set(table["step"]) == {10, 20} and table["retention"].between(0, 1).all()
    assert all(Path(p).is_file() for p in table["checkpoint"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["trials"] == 4 and manifest["plan"]["concurrency"] == 2
    assert (out / "tune").is_dir() and not (out / "ray_train").exists()
    for trial in table["trial_id"].unique():  # each trial's TensorBoard events
        acc = read_events(out / "trials" / trial / "tensorboard")
        tags = acc.Tags()
        assert set(TRAINING_SCALARS) <= set(tags["scalars"]), (trial, tags["scalars"])
        assert 20 in {e.step for e in acc.Scalars("eval/retention")}
        assert "frozen_eval/margins_tier3" in tags["histograms"]
    df = cr.pareto(out, n_bootstrap=50).table
    assert len(df) == 4 and set(df["n_seeds"]) == {2} and df["on_frontier"].any()
