"""Faults while mining and expanding: an actor killed on its own, the driver killed while it assembles
the final files or mid-run, a full disk. Nothing is lost or duplicated, nothing partial appears under a
final name, and a rerun of the same command gives what an uninterrupted run gives."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from crucible_ray.cli._main import run
from faults import kill_a_train_worker_when

import crucible_ray as cr
from crucible_ray.data import Candidate, read_bundles, read_candidates, read_corpus, write_candidates
from crucible_ray.distributed._mine import manifest_path_for

pytestmark = [pytest.mark.wordnet, pytest.mark.slow]

CFG = {"lineups": 10, "lineup_size": 4, "min_passes": 6, "neighbors": 12, "danger_margin": 0.0, "seed": 7}
EXE = str(Path(sys.executable).parent / "crucible-ray")


def _copies(world: Path, copies: int) -> list[Candidate]:
    base = read_candidates(world / "organic_candidates.jsonl")
    return [c.model_copy(update={"candidate_id": f"{c.candidate_id}#{k}"}) for k in range(copies) for c in base]


def _rows(path: Path) -> list[dict[str, Any]]:
    return pq.read_table(path).to_pylist()


def _same_outputs(a: cr.MiningResult | Path, b: Path) -> None:
    """Same results rows (every candidate once, same decisions and killers) and the same bundles."""
    pa_, pb = (a.results if isinstance(a, cr.MiningResult) else a), b
    ra, rb = _rows(pa_), _rows(pb)
    ids = [r["candidate_id"] for r in ra]
    assert len(ids) == len(set(ids)) and ids == [r["candidate_id"] for r in rb]
    for x, y in zip(ra, rb, strict=True):
        assert (x["status"], x["pass_count"], [k["text"] for k in x["killers"]]) == (
            y["status"],
            y["pass_count"],
            [k["text"] for k in y["killers"]],
        )
    for name in ("organic.jsonl", "organic_holdout.jsonl"):
        assert (pa_.parent / name).read_bytes() == (pb.parent / name).read_bytes()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*.tmp"))


@pytest.fixture(scope="module")
def candidates(wordnet_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("faults") / "cands.parquet"
    write_candidates(path, _copies(wordnet_world, 8))
    return path


@pytest.fixture(scope="module")
def straight(ray_cluster: Any, wordnet_world: Path, candidates: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The uninterrupted run every faulty one is compared with."""
    out = tmp_path_factory.mktemp("straight") / "mined.parquet"
    cr.mine(candidates, corpus=wordnet_world / "corpus.jsonl", out=out, **CFG, actors=1, batch_size=64, part_rows=128)
    return out


def test_a_miner_actor_killed_on_its_own_is_replaced(
    ray_cluster: Any, wordnet_world: Path, candidates: Path, straight: Path, tmp_path: Path
) -> None:
    out = tmp_path / "mined.parquet"
    work = tmp_path / f".{out.name}.work"

    def ready() -> bool:
        return any(work.glob("part-*.parquet"))  # the actor has delivered batches: kill it mid-run

    result = kill_a_train_worker_when(
        ready,
        lambda: cr.mine(
            candidates, corpus=wordnet_world / "corpus.jsonl", out=out, **CFG, actors=1, batch_size=64, part_rows=128
        ),
        actor="CrucibleMiner",
    )
    assert result["killed"] == 1, "the run ended before its actor could be killed"
    assert "error" not in result, result.get("error")
    _same_outputs(result["value"], straight)
    assert not work.exists() and _leftovers(tmp_path) == []


def _driver(tmp_path: Path, script: str, *args: str, cluster: Any) -> subprocess.Popen[str]:
    log = (tmp_path / "driver.log").open("w")  # a file, not a pipe: a full pipe would block the driver
    env = {**os.environ, "RAY_ADDRESS": cluster.address}
    return subprocess.Popen([sys.executable, "-c", script, *args], stderr=log, stdout=log, text=True, env=env)


KILL_WHILE_ASSEMBLING = """
import os, signal, sys, json
import crucible_ray as cr
import crucible_ray.mining._outputs as outputs
real, calls = outputs.bundle_line, [0]
def dying(row, pool):
    calls[0] += 1
    if calls[0] == 5:  # the results file and the bundle files are half-written under temporary names
        os.kill(os.getpid(), signal.SIGKILL)
    return real(row, pool)
outputs.bundle_line = dying
args = json.loads(sys.argv[1])
cr.mine(args.pop("candidates"), **args)
"""


def test_the_driver_killed_while_assembling_the_final_files(
    ray_cluster: Any, wordnet_world: Path, candidates: Path, straight: Path, tmp_path: Path
) -> None:
    out = tmp_path / "mined.parquet"
    args = dict(CFG, candidates=str(candidates), corpus=str(wordnet_world / "corpus.jsonl"), out=str(out))
    args.update(actors=1, batch_size=64, part_rows=128)
    proc = _driver(tmp_path, KILL_WHILE_ASSEMBLING, json.dumps(args), cluster=ray_cluster)
    assert proc.wait(timeout=300) == -signal.SIGKILL, (tmp_path / "driver.log").read_text()[-3000:]
    # Nothing under a final name: the results, bundles and manifest appear only complete.
    assert not out.exists() and not (tmp_path / "organic.jsonl").exists()
    assert not manifest_path_for(out).exists()
    assert _leftovers(tmp_path), "the kill should have landed mid-write"
    work = tmp_path / f".{out.name}.work"
    assert any(work.glob("part-*.parquet"))  # every candidate mined, kept for the rerun
    args.pop("candidates")
    res = cr.mine(candidates, **args)
    assert res.manifest["execution"]["resumed_candidates"] == res.counts["candidates"]  # nothing mined twice
    _same_outputs(res, straight)
    assert not work.exists() and _leftovers(tmp_path) == []


def test_the_expand_driver_killed_mid_run_resumes(ray_cluster: Any, wordnet_world: Path, tmp_path: Path) -> None:
    world = tmp_path / "world"
    shutil.copytree(wordnet_world, world)
    straight = tmp_path / "straight" / "expansion.jsonl"
    base = ["expand", "--data", str(world), "--limit", "150", "--actors", "1", "--batch-size", "16"]
    base += ["--lineups", "10", "--lineup-size", "4", "--min-passes", "6", "--neighbors", "12", "--danger-margin", "0"]
    env = {**os.environ, "RAY_ADDRESS": ray_cluster.address}
    assert run([*base, "--out", str(straight)]) == 0  # the uninterrupted run, in this process
    out = world / "expansion.jsonl"
    work = world / ".expansion_mined.parquet.work"
    with (tmp_path / "driver.log").open("w") as log:
        proc = subprocess.Popen([EXE, *base, "--out", str(out)], stderr=log, stdout=log, env=env)
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None and not any(work.glob("part-*.parquet")):
            time.sleep(0.05)
        assert proc.poll() is None, (tmp_path / "driver.log").read_text()[-3000:]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    assert not out.exists()
    again = subprocess.run([EXE, *base, "--out", str(out)], capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert [b.model_dump() for b in read_bundles(out)] == [b.model_dump() for b in read_bundles(straight)]
    assert cr.World.open(world).pools["expansion"] == out  # registered, and the world still opens
    assert not work.exists() and _leftovers(world) == []


def test_a_full_disk_while_writing_parts_exits_2_and_leaves_no_partial_file(
    wordnet_world: Path, tmp_path: Path
) -> None:
    """A 16 KiB file system (a tmpfs in a private mount namespace): mining fills it while writing parts."""
    full = tmp_path / "full"
    full.mkdir()
    cands = tmp_path / "c.jsonl"
    texts = [d.text for d in read_corpus(wordnet_world / "corpus.jsonl")]
    # Candidates with their own negatives: nothing but the parts is written into the small file system.
    rows = [c.model_copy(update={"negatives": texts[i : i + 12]}) for i, c in enumerate(_copies(wordnet_world, 2))]
    write_candidates(cands, rows)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # a Ray of its own, inside the namespace
    ray_tmp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    env["RAY_TMPDIR"] = ray_tmp
    command = f"{EXE} mine --candidates {cands} --out {full}/o.parquet --actors 1 --batch-size 64 --lineup-size 4"
    script = f"mount -t tmpfs -o size=16k tmpfs {full} && {{ {command}; echo EXIT=$?; find {full} -type f; }}"
    try:
        proc = subprocess.run(
            ["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=400, env=env
        )
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert "EXIT=2" in proc.stdout, (proc.stdout, proc.stderr[-3000:])
    errors = [line for line in proc.stderr.splitlines() if line.startswith("crucible-ray: error:")]
    assert len(errors) == 1 and "No space left on device" in errors[0] and "rerun" in errors[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    files = [line for line in proc.stdout.splitlines() if line.startswith(str(full))]
    assert not any(f.endswith(".tmp") for f in files), files  # no half-written file left
    assert f"{full}/o.parquet" not in files  # nothing under the final name
