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


def test_online_without_a_key_stops_before_the_sweep(
    synthetic_world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """W&B online with no API key and no saved login: one line, exit 2, before Ray starts or anything
    is written (Ray's callback would fail only once the sweep had started)."""
    from crucible_ray.cli._main import run

    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc: no saved login
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    out = tmp_path / "s"
    code = run(
        ["sweep", "ratio", "--data", str(synthetic_world), "--ratios", "85_10_5", "--seeds", "1", "--steps", "20"]
        + ["--output-dir", str(out), "--wandb-project", "p"]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("crucible-ray: error: --wandb-project logs online and W&B has no API key"), err
    assert not out.exists()
