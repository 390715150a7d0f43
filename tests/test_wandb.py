"""Weights & Biases in offline mode, through Ray Tune's W&B callback: the offline run files hold each
trial's settings and its figures at every milestone. Nothing reaches the network (WANDB_MODE=offline)."""

from __future__ import annotations

from pathlib import Path

import pytest
import wandb  # noqa: F401  # the `wandb` extra, which make test installs
from wandb_records import run_summary

import crucible_ray as cr

TINY = "hashed-ngram:buckets=4096,dim=32"


@pytest.mark.slow
@pytest.mark.usefixtures("ray_local")
def test_a_sweep_logs_each_trial_to_an_offline_wandb_run(
    synthetic_world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    out = tmp_path / "sweep"
    result = cr.sweep(
        synthetic_world,
        output_dir=out,
        ratios="85_10_5,70_20_10",
        seeds="4",
        steps="40,80",
        encoder=TINY,
        batch_size=16,
        wandb_project="crucible-test",
    )
    files = sorted((out / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 2, sorted(p.name for p in (out / "wandb").iterdir())
    table = result.table
    seen = set()
    for f in files:
        run = run_summary(f)
        assert run["project"] == "crucible-test" and run["group"] == "sweep"
        name = run["name"]
        seen.add(name)
        rows = table[table["trial_id"] == name].set_index("step")
        assert run["config"]["ratio"] == rows["ratio"].iloc[0] and run["config"]["seed"] == 4
        assert run["config"]["encoder.kind"] == "hashed-ngram" and run["config"]["crucible_trial_id"] == name
        logged = {int(h["step"]): h for h in run["history"] if "retention" in h}
        assert sorted(logged) == [40, 80]
        for step, h in logged.items():
            assert h["_step"] == step  # W&B's own step axis is the training step
            assert h["retention"] == pytest.approx(rows.loc[step, "retention"])
            assert h["generalization"] == pytest.approx(rows.loc[step, "generalization"])
    assert seen == set(table["trial_id"])


def test_a_resumed_sweep_cannot_add_wandb(synthetic_world: Path, tmp_path: Path) -> None:
    out = tmp_path / "s"
    (out / "tune").mkdir(parents=True)
    with pytest.raises(cr.ConfigError, match="apply to a new sweep"):
        cr.sweep(synthetic_world, output_dir=out, ratios="85_10_5", seeds="1", steps="20", resume=True,
                 wandb_project="p")  # fmt: skip
