"""Training on Ray Train: outputs, TensorBoard, a killed worker, the CLI on the WordNet world."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from crucible_ray.cli._main import run
from events import TRAINING_SCALARS, read_events
from faults import kill_a_train_worker_when
from train_reference import board, train_in_process

import crucible_ray as cr

pytestmark = pytest.mark.usefixtures("ray_local")


def test_train_on_ray_writes_checkpoints_scoreboards_and_tensorboard(synthetic_world: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    res = cr.train(synthetic_world, output_dir=out, ratio="75_15_10", steps=[50, 100], seed=5, eval_every=25)
    assert set(res.milestones) == {50, 100}
    assert res.final.retention == res.milestones[100].retention
    for step in (50, 100):
        payload = torch.load(out / f"checkpoint_step_{step}.pt", weights_only=True)
        assert payload["step"] == step
    assert cr.load_encoder(res.checkpoint).fingerprint() == res.final.encoder["fingerprint"]
    assert sorted(p.name for p in out.glob("scoreboard_step_*.json")) == [
        f"scoreboard_step_{s}.json" for s in (100, 25, 50, 75)
    ]
    assert res.manifest["status"] == "complete" and res.manifest["inputs"]["legacy"]["sha256"]
    assert not (out / "ray_train").exists()  # recovery state dropped once complete
    acc = read_events(out / "tensorboard")
    tags = acc.Tags()
    assert set(TRAINING_SCALARS) <= set(tags["scalars"]), tags["scalars"]
    assert "frozen_eval/margins_tierall" in tags["histograms"]
    assert [e.step for e in acc.Scalars("eval/retention")] == [25, 50, 75, 100]
    lrs = [e.value for e in acc.Scalars("train/lr")]
    # Several milestones: warm-up, then a constant rate, so that step 50 is what a 50-step run gives.
    assert lrs[-1] == max(lrs) == pytest.approx(5e-3)


@pytest.mark.slow
def test_a_killed_training_worker_resumes_to_the_same_scoreboard(synthetic_world: Path, tmp_path: Path) -> None:

    args: dict[str, Any] = dict(
        ratio="75_15_10", steps=[400], seed=9, eval_every=100, encoder="hashed-ngram:buckets=4096,dim=32"
    )
    straight = train_in_process(synthetic_world, tmp_path / "straight", **args)  # tests/train_reference.py
    out = tmp_path / "killed"

    def ready() -> bool:
        # The step-200 eval point exists, so the step-100 report (and its checkpoint upload) has returned.
        return (out / "scoreboard_step_200.json").exists() and not (out / "scoreboard_step_400.json").exists()

    result = kill_a_train_worker_when(ready, lambda: cr.train(synthetic_world, output_dir=out, **args))
    assert result["killed"] == 1, "the run ended before a worker could be killed"
    assert "error" not in result, result.get("error")
    assert board(out / "scoreboard_final.json") == board(straight / "scoreboard_final.json")
    assert 0 < json.loads((out / "timing.json").read_text())["steps_run"] < 400  # resumed, not restarted


def test_train_cli_on_the_wordnet_world(
    wordnet_world: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "wn"
    code = run(
        ["train", "--data", str(wordnet_world), "--ratio", "100_0_0", "--steps", "20,40", "--output-dir", str(out)]
    )
    printed = capsys.readouterr().out
    assert code == 0
    assert "retention" in printed and "40" in printed
    for name in ("checkpoint_step_20.pt", "checkpoint_step_40.pt", "checkpoint_final.pt", "scoreboard_step_20.json"):
        assert (out / name).is_file(), name
    assert any((out / "tensorboard").iterdir())
