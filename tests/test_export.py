"""A checkpoint exported as a sentence-transformers model folder loads there and embeds identically."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from crucible_ray.cli._main import run
from sentence_transformers import SentenceTransformer

import crucible_ray as cr
from crucible_ray.encoders import EXPORT_INFO, export_sentence_transformer
from crucible_ray.errors import ConfigError, EncoderError

TEXTS = ["a small dog", "an enlisted person who is assigned to assist the cooks", "halothane", "<b>bank</b>"]


def _trained_frozen_head(tmp_path: Path) -> Path:
    enc = cr.build_encoder("minilm:mode=frozen-head", device="cpu")
    head = enc.module.head  # type: ignore[attr-defined]
    with torch.no_grad():  # a head that is not the identity, as training leaves it
        gen = torch.Generator().manual_seed(0)
        head.weight.add_(0.05 * torch.randn(head.weight.shape, generator=gen))
        head.bias.add_(0.01 * torch.randn(head.bias.shape, generator=gen))
    enc.weights_changed()
    ckpt = tmp_path / "run" / "checkpoint_step_20.pt"
    ckpt.parent.mkdir()
    cr.save_checkpoint(enc, ckpt, step=20, train_config={"ratio": "70_20_10", "pools": ["a", "b", "c"], "seed": 7})
    (ckpt.parent / "scoreboard_step_20.json").write_text(json.dumps({"retention": 0.812, "generalization": 0.3}))
    return ckpt


def test_a_frozen_head_checkpoint_exports_to_sentence_transformers(tmp_path: Path) -> None:
    ckpt = _trained_frozen_head(tmp_path)
    out = export_sentence_transformer(ckpt, tmp_path / "model")
    ours = cr.load_encoder(ckpt, device="cpu").encode(TEXTS)
    theirs = SentenceTransformer(str(out), device="cpu", local_files_only=True).encode(TEXTS)
    assert np.abs(ours - theirs).max() <= 1e-5
    assert np.abs(ours - cr.build_encoder("minilm", device="cpu").encode(TEXTS)).max() > 1e-3  # the head counts
    assert list(out.glob("*.safetensors")) and not list(out.rglob("*.bin"))
    info = json.loads((out / EXPORT_INFO).read_text())
    assert info["step"] == 20 and info["train_config"]["ratio"] == "70_20_10"
    card = (out / "README.md").read_text()
    assert "70_20_10" in card and "0.8120" in card and "| seed | 7 |" in card
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".model.")]  # no temporary left
    assert out.stat().st_mode & 0o055  # not private to its owner, as mkdtemp would leave it


def test_a_full_checkpoint_exports_its_trained_transformer(tmp_path: Path) -> None:
    enc = cr.build_encoder("minilm:mode=full", device="cpu")
    with torch.no_grad():
        next(enc.module.parameters()).mul_(1.01)  # the trained weights, not the pretrained ones
    enc.weights_changed()
    ckpt = cr.save_checkpoint(enc, tmp_path / "full.pt", step=5)
    out = export_sentence_transformer(ckpt, tmp_path / "full-model")
    theirs = SentenceTransformer(str(out), device="cpu", local_files_only=True).encode(TEXTS)
    assert np.abs(cr.load_encoder(ckpt, device="cpu").encode(TEXTS) - theirs).max() <= 1e-5


def test_export_refuses_a_hashed_checkpoint_and_an_occupied_folder(tmp_path: Path) -> None:
    hashed = cr.save_checkpoint(cr.build_encoder("hashed-ngram", device="cpu"), tmp_path / "h.pt")
    with pytest.raises(EncoderError, match="'hashed-ngram' checkpoint cannot be exported"):
        export_sentence_transformer(hashed, tmp_path / "m")
    assert not (tmp_path / "m").exists()
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not an empty folder"):
        export_sentence_transformer(hashed, taken)
    assert (taken / "keep.txt").read_text() == "mine"


def test_export_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = _trained_frozen_head(tmp_path)
    assert run(["export", "--checkpoint", str(ckpt), "--out", str(tmp_path / "m")]) == 0
    assert "SentenceTransformer(" in capsys.readouterr().out
    hashed = cr.save_checkpoint(cr.build_encoder("hashed-ngram", device="cpu"), tmp_path / "h.pt")
    assert run(["export", "--checkpoint", str(hashed), "--out", str(tmp_path / "n")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot be exported" in err and "Traceback" not in err


def _sweep_with_checkpoints(root: Path, rows: list[dict[str, object]]) -> Path:
    """A sweep folder: ``rows`` (trial_id, ratio, seed, step 100, scores...) as its results table, and a
    distinct frozen-head checkpoint at step 100 for each trial."""
    import pandas as pd

    enc = cr.build_encoder("minilm:mode=frozen-head", device="cpu")
    head = enc.module.head  # type: ignore[attr-defined]
    for i, row in enumerate(rows):
        with torch.no_grad():
            head.bias.fill_(0.01 * i)  # each trial's model is a different one
        enc.weights_changed()
        cr.save_checkpoint(enc, root / "trials" / str(row["trial_id"]) / "checkpoint_step_100.pt", step=100)
    pd.DataFrame([{**r, "step": 100, "status": "complete"} for r in rows]).to_parquet(root / "results.parquet")
    return root


def test_pareto_exports_the_recommended_configs_best_seed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # 75_15_10 dominates 85_10_5; of its two seeds, seed 2 has the larger retention + generalization.
    scores = {("85_10_5", 1): (0.90, 0.30), ("85_10_5", 2): (0.91, 0.31), ("75_15_10", 1): (0.95, 0.40)}
    scores[("75_15_10", 2)] = (0.96, 0.41)
    rows = [
        {"trial_id": f"r{ratio}-s{seed}", "ratio": ratio, "seed": seed, "retention": ret, "generalization": gen}
        for (ratio, seed), (ret, gen) in scores.items()
    ]
    _sweep_with_checkpoints(tmp_path / "sweep", rows)
    code = run(
        [
            "pareto",
            "--results-dir",
            str(tmp_path / "sweep"),
            "--bootstrap",
            "50",
            "--export-recommended",
            str(tmp_path / "m"),
        ]
    )
    assert code == 0
    assert "exported 75_15_10@100 (trial r75_15_10-s2)" in capsys.readouterr().out
    best = cr.load_encoder(tmp_path / "sweep" / "trials" / "r75_15_10-s2" / "checkpoint_step_100.pt", device="cpu")
    theirs = SentenceTransformer(str(tmp_path / "m"), device="cpu", local_files_only=True).encode(TEXTS)
    assert np.abs(best.encode(TEXTS) - theirs).max() <= 1e-5


def test_train_refuses_an_export_it_could_not_make_before_training(
    synthetic_world: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    args = ["train", "--data", str(synthetic_world), "--output-dir", str(out), "--steps", "10"]
    assert run([*args, "--export-st", str(tmp_path / "m")]) == 2  # the default encoder is hashed-ngram
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--export-st needs a sentence-transformer encoder" in err
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "x").write_text("keep")
    assert run([*args, "--encoder", "minilm", "--export-st", str(taken)]) == 2
    assert "not an empty folder" in capsys.readouterr().err
    assert not out.exists() and (taken / "x").read_text() == "keep"  # nothing trained, nothing touched


def test_the_recommended_export_matches_swept_params_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # One ratio and step, two learning rates. lr=0.001 is recommended (never dominated); the single best
    # trial of that ratio and step by retention + generalization is an lr=0.01 trial, which must not be
    # the one exported.
    scores = {(0.001, 1): (0.95, 0.40), (0.001, 2): (0.96, 0.41), (0.01, 1): (0.30, 0.10), (0.01, 2): (0.90, 0.99)}
    rows: list[dict[str, object]] = [
        {"trial_id": f"lr{lr}-s{seed}", "ratio": "75_15_10", "seed": seed, "param_lr": lr}
        | {"retention": ret, "generalization": gen}
        for (lr, seed), (ret, gen) in scores.items()
    ]
    _sweep_with_checkpoints(tmp_path / "sweep", rows)
    args = ["pareto", "--results-dir", str(tmp_path / "sweep"), "--bootstrap", "50"]
    assert run([*args, "--export-recommended", str(tmp_path / "m")]) == 0
    assert "(trial lr0.001-s2)" in capsys.readouterr().out
