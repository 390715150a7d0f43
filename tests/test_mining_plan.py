"""A mining run's plan and finalise steps, without Ray: what the resume key holds, what it leaves out."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import crucible_ray as cr
from crucible_ray.errors import ConfigError
from crucible_ray.mining import MinerConfig, MiningExecution, in_holdout, mine_local, plan_mining

CFG = MinerConfig(lineups=8, lineup_size=3, min_passes=3, neighbors=10, danger_margin=0.0, seed=5)
ENCODER = "hashed-ngram:dim=64,seed=3"


def _plan(world: Path, out: Path, cfg: MinerConfig = CFG, **kwargs: object) -> cr.mining.MiningPlan:
    return plan_mining(
        world / "organic_candidates.jsonl",
        out=out,
        model=ENCODER,
        corpus=world / "corpus.jsonl",
        config=cfg,
        **kwargs,  # type: ignore[arg-type]
    )


def test_planning_checks_everything_and_writes_nothing(synthetic_world: Path, tmp_path: Path) -> None:
    plan = _plan(synthetic_world, tmp_path / "out" / "mined.parquet")
    assert plan.inputs.scan.rows == sum(t.num_rows for t in plan.inputs.shards) > 0
    assert plan.outputs.manifest == tmp_path / "out" / "mined.manifest.json"
    assert set(plan.outputs.bundles) == {"train", "holdout"}
    assert not any(tmp_path.iterdir())  # not even the output folder
    with pytest.raises(ConfigError, match=r"\.parquet"):
        _plan(synthetic_world, tmp_path / "mined.jsonl")


def test_planning_imports_no_ray(synthetic_world: Path, tmp_path: Path) -> None:
    code = (
        "import sys; from crucible_ray.mining import MinerConfig, plan_mining; "
        f"plan_mining({str(synthetic_world / 'organic_candidates.jsonl')!r}, out={str(tmp_path / 'm.parquet')!r}, "
        f"model={ENCODER!r}, corpus={str(synthetic_world / 'corpus.jsonl')!r}, config=MinerConfig()); "
        "assert 'ray' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120, cwd=tmp_path)


def test_the_resume_key_leaves_out_the_output_split_and_the_execution(synthetic_world: Path, tmp_path: Path) -> None:
    out = tmp_path / "mined.parquet"
    key = _plan(synthetic_world, out).key
    assert _plan(synthetic_world, out, CFG.model_copy(update={"holdout_fraction": 0.6})).key == key
    assert _plan(synthetic_world, out, execution=MiningExecution(actors=3, batch_size=7, part_rows=5)).key == key
    assert _plan(synthetic_world, out, CFG.model_copy(update={"seed": 6})).key != key
    assert _plan(synthetic_world, out, CFG.model_copy(update={"lineups": 9})).key != key


def test_a_new_holdout_fraction_reuses_the_finished_work(synthetic_world: Path, tmp_path: Path) -> None:
    """An interrupted run's parts are reused when only the output split changed: with every candidate
    already mined, the rerun mines nothing (and starts no Ray) and splits the bundles anew."""
    out = tmp_path / "mined.parquet"
    local = mine_local(
        synthetic_world / "organic_candidates.jsonl", model=ENCODER, corpus=synthetic_world / "corpus.jsonl", config=CFG
    )
    first = _plan(synthetic_world, out)  # holdout_fraction 0.2: the interrupted run
    out.parent.mkdir(parents=True, exist_ok=True)
    first.work.open()
    first.work.write_part(local)
    cfg = CFG.model_copy(update={"holdout_fraction": 0.6})
    res = cr.mine(
        synthetic_world / "organic_candidates.jsonl",
        out=out,
        model=ENCODER,
        corpus=synthetic_world / "corpus.jsonl",
        config=cfg,
    )
    assert res.manifest["execution"]["resumed_candidates"] == local.num_rows == res.counts["candidates"]
    assert "actors" not in res.manifest["execution"]  # no Ray ran
    assert pq.read_table(out).to_pylist() == local.to_pylist()
    accepted = [r["candidate_id"] for r in local.to_pylist() if r["accepted"]]
    hold = [b.bundle_id for b in cr.read_bundles(tmp_path / "organic_holdout.jsonl")]
    assert accepted and hold == [i for i in accepted if in_holdout(i, 0.6)]
    assert res.manifest["config"]["holdout_fraction"] == 0.6


def test_execution_keywords_and_an_execution_config_are_one_or_the_other(synthetic_world: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="execution= or execution keywords"):
        cr.mine(
            synthetic_world / "organic_candidates.jsonl",
            out=tmp_path / "m.parquet",
            actors=2,
            execution=MiningExecution(actors=2),
        )
    with pytest.raises(ConfigError, match="batch_size"):
        cr.mine(synthetic_world / "organic_candidates.jsonl", out=tmp_path / "m.parquet", batch_size=0)
    assert not any(tmp_path.iterdir())


def test_a_plan_runs_once_and_a_partial_run_is_never_finalised(synthetic_world: Path, tmp_path: Path) -> None:
    """Executing a plan twice is refused (its shards left for Ray the first time); finalising work that
    covers only some candidates raises and keeps the work folder, writing no manifest."""
    from crucible_ray.errors import MiningError
    from crucible_ray.mining import ExecutionRecord, finalise_mining

    out = tmp_path / "mined.parquet"
    plan = _plan(synthetic_world, out)
    assert plan.inputs.take_shards()
    with pytest.raises(MiningError, match="executed already"):
        plan.inputs.take_shards()
    local = mine_local(
        synthetic_world / "organic_candidates.jsonl", model=ENCODER, corpus=synthetic_world / "corpus.jsonl", config=CFG
    )
    plan = _plan(synthetic_world, out)
    out.parent.mkdir(parents=True, exist_ok=True)
    plan.work.open()
    plan.work.write_part(local.slice(0, local.num_rows // 2))
    with pytest.raises(MiningError, match=rf"results for {local.num_rows // 2} of {local.num_rows} candidates"):
        finalise_mining(plan, ExecutionRecord(pending=0, resumed=local.num_rows // 2))
    assert plan.work.root.is_dir() and not plan.outputs.manifest.exists()
