"""evaluate() and the scoreboard document."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import crucible_ray as cr
from crucible_ray.scoreboard import Scoreboard
from crucible_ray.worlds import World

TIER_KEYS = {"n", "left_out", "accuracy", "mrr", "danger_rate", "margin"}


def test_scoreboard_schema(synthetic_world: Path, tmp_path: Path) -> None:
    world = World.open(synthetic_world)
    board = cr.evaluate("hashed-ngram:seed=0", world.eval_sets, step=0)
    doc = json.loads(board.write(tmp_path / "sb.json").read_text())
    assert doc["schema_version"] == 1 and doc["step"] == 0 and doc["danger_margin"] == 0.05
    for name in ("frozen_eval", "organic_holdout"):
        for tier in ("1", "2", "3", "all"):
            assert TIER_KEYS <= set(doc["eval_sets"][name][tier])
            assert set(doc["eval_sets"][name][tier]["margin"]) == {"mean", "std", "p5", "p25", "p50", "p75", "p95"}
        assert doc["eval_sets"][name]["sha256"] and doc["eval_sets"][name]["n_bundles"] > 0
    assert doc["retention"] == doc["eval_sets"]["frozen_eval"]["3"]["accuracy"]
    assert doc["generalization"] == doc["eval_sets"]["organic_holdout"]["3"]["accuracy"]
    assert Scoreboard.read(tmp_path / "sb.json") == board


def test_untrained_synthetic_is_near_chance(synthetic_world: Path) -> None:
    # Anchor and positive share no words in the synthetic world: an untrained encoder cannot know.
    board = cr.evaluate("hashed-ngram", World.open(synthetic_world).eval_sets)
    assert board.retention is not None and board.retention < 0.5


def test_generalization_null_without_holdout(synthetic_world: Path) -> None:
    board = cr.evaluate("hashed-ngram", [World.open(synthetic_world).path("frozen_eval")])
    assert board.retention is not None and board.generalization is None


def test_identical_texts_tie_and_fail(tmp_path: Path) -> None:
    b = cr.Bundle(
        bundle_id="x",
        anchor="a",
        positive="same text",
        pool="legacy",
        negatives=[cr.Negative(text="same text!", tier=3)],
    )  # same words -> same embedding
    board = cr.evaluate("hashed-ngram", {"frozen_eval": [b]})
    t3 = board.eval_sets["frozen_eval"]["3"]
    assert t3["margin"]["mean"] == pytest.approx(0.0, abs=1e-6)
    assert t3["accuracy"] == 0.0  # a tie is a failure
    assert board.eval_sets["frozen_eval"]["1"]["left_out"] == 1


def test_evaluate_from_checkpoint(synthetic_world: Path, tmp_path: Path) -> None:
    enc = cr.build_encoder("hashed-ngram:dim=64")
    ckpt = cr.save_checkpoint(enc, tmp_path / "c.pt")
    sets = World.open(synthetic_world).eval_sets
    a = cr.evaluate(ckpt, sets)
    b = cr.evaluate("hashed-ngram:dim=64", sets)
    assert a.checkpoint == str(ckpt) and a.eval_sets["frozen_eval"]["3"] == b.eval_sets["frozen_eval"]["3"]


def test_bad_eval_set_fails_before_model(tmp_path: Path) -> None:
    (tmp_path / "e.jsonl").write_text("{}\n")
    with pytest.raises(cr.DataError, match=r"e\.jsonl:1: field 'bundle_id'"):
        cr.evaluate("minilm:model=/nonexistent", [tmp_path / "e.jsonl"])


@pytest.mark.st
@pytest.mark.slow
def test_minilm_beats_untrained_hashed_on_wordnet(wordnet_world: Path, minilm: cr.Encoder) -> None:
    sets = {"frozen_eval": World.open(wordnet_world).path("frozen_eval")}
    pretrained = cr.evaluate(minilm, sets)
    hashed = cr.evaluate("hashed-ngram", sets)
    assert pretrained.retention is not None and hashed.retention is not None
    # A pretrained sentence model reads glosses; a random n-gram projection mostly cannot.
    assert pretrained.eval_sets["frozen_eval"]["all"]["accuracy"] > hashed.eval_sets["frozen_eval"]["all"]["accuracy"]
    assert np.isfinite(pretrained.eval_sets["frozen_eval"]["3"]["margin"]["mean"])
