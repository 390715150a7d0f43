"""Guardrail semantics on crafted numbers and tables, and the `guardrail check` command."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from crucible_ray.cli._main import run

import crucible_ray as cr
from crucible_ray.guardrails import dilution_floor, dilution_outcome, overfitting_cliff, regression


def test_dilution_floor_guards_the_legacy_share() -> None:
    assert dilution_floor(cr.Ratio.parse("70_20_10"), 0.70) is None  # exactly at the floor passes
    v = dilution_floor(cr.Ratio.parse("65_25_10"), 0.70)
    assert v is not None and v.check == "dilution_floor" and v.value == pytest.approx(0.65)
    custom = cr.Ratio.parse("20_80", pools=("mix", "legacy"))
    assert dilution_floor(custom, 0.70) is None  # the pool named legacy, wherever it is


def test_dilution_outcome_needs_both_a_retention_drop_and_a_generalization_gain() -> None:
    assert dilution_outcome("c", -0.05, +0.03, 0.02) is not None
    assert dilution_outcome("c", -0.05, -0.01, 0.02) is None  # worse on both: not dilution
    assert dilution_outcome("c", -0.01, +0.10, 0.02) is None  # within the threshold


def test_regression_names_each_metric_that_fell() -> None:
    found = regression(
        "run", {"retention": 0.80, "generalization": 0.50}, {"retention": 0.85, "generalization": 0.49}, 0.02
    )
    assert [v.message.split()[0] for v in found] == ["retention"]
    assert regression("run", {"retention": 0.84}, {"retention": 0.85}, 0.02) == []


def test_overfitting_cliff_recommends_the_peak() -> None:
    step, v = overfitting_cliff("a", [(1000, 0.40), (2000, 0.45), (4000, 0.41)], 0.02)
    assert step == 2000 and v is not None and v.value == pytest.approx(-0.04)
    step, v = overfitting_cliff("b", [(1000, 0.40), (2000, 0.45), (4000, 0.44)], 0.02)
    assert step == 2000 and v is None  # a small dip is not a cliff
    step, v = overfitting_cliff("c", [(1000, 0.40), (2000, 0.40)], 0.02)
    assert step == 1000 and v is None  # ties go to the earlier step


def _sweep_dir(tmp_path: Path) -> Path:
    rows = []
    curves = {
        "85_10_5": [(0.90, 0.30), (0.90, 0.31), (0.90, 0.32)],
        "75_15_10": [(0.85, 0.40), (0.85, 0.45), (0.85, 0.38)],  # dilution outcome + a cliff after 200
        "65_25_10": [(0.89, 0.33), (0.89, 0.34), (0.89, 0.35)],  # below the floor, no outcome problem
    }
    for ratio, curve in curves.items():
        for seed in (1, 2):
            for step, (r, g) in zip((100, 200, 300), curve, strict=True):
                rows.append(dict(ratio=ratio, seed=seed, step=step, retention=r, generalization=g, status="complete"))
    pd.DataFrame(rows).to_parquet(tmp_path / "results.parquet")
    return tmp_path


def test_results_dir_check_finds_each_violation_and_writes_guardrails_json(tmp_path: Path) -> None:
    d = _sweep_dir(tmp_path)
    report = cr.check_guardrails(results_dir=d, config=cr.GuardrailConfig(mode="block"))
    kinds = {(v.check, v.subject) for v in report.violations}
    assert ("dilution_floor", "65_25_10") in kinds
    assert ("overfitting_cliff", "75_15_10") in kinds
    assert {s for c, s in kinds if c == "dilution_outcome"} == {"75_15_10@100", "75_15_10@200", "75_15_10@300"}
    assert not any(s.startswith("85_10_5") for _, s in kinds)
    assert report.early_stop == {"65_25_10": 300, "75_15_10": 200, "85_10_5": 300}
    assert report.blocked and report.exit_code == 1
    doc = json.loads((d / "guardrails.json").read_text())
    assert doc["status"] == "blocked" and len(doc["violations"]) == len(report.violations)


def test_guardrail_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = _sweep_dir(tmp_path)
    assert run(["guardrail", "check", "--results-dir", str(d)]) == 0  # warn mode reports and passes
    assert "dilution_floor" in capsys.readouterr().out
    assert run(["guardrail", "check", "--results-dir", str(d), "--mode", "block"]) == 1
    assert "blocked" in capsys.readouterr().err
    assert (
        run(
            [
                "guardrail",
                "check",
                "--results-dir",
                str(d),
                "--mode",
                "block",
                "--dilution-floor",
                "0.6",
                "--dilution-drop",
                "0.5",
                "--cliff-drop",
                "0.5",
            ]
        )
        == 0
    )
    assert run(["guardrail", "check", "--results-dir", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no results file" in err


def test_scoreboard_regression_check(tmp_path: Path, synthetic_world: Path) -> None:
    sets = [synthetic_world / "frozen_eval.jsonl", synthetic_world / "organic_holdout.jsonl"]
    good = cr.evaluate("hashed-ngram:seed=0", sets)
    worse = cr.evaluate("hashed-ngram:seed=1,buckets=64,dim=8", sets)
    good.write(tmp_path / "good.json")
    worse.write(tmp_path / "worse.json")
    report = cr.check_guardrails(scoreboard=tmp_path / "worse.json", baseline=tmp_path / "good.json")
    assert report.checked == ["regression"] and report.violations
    assert all(v.value < -0.02 for v in report.violations)
    same = cr.check_guardrails(scoreboard=tmp_path / "good.json", baseline=tmp_path / "good.json")
    assert same.violations == []
    assert (
        run(
            [
                "guardrail",
                "check",
                "--scoreboard",
                str(tmp_path / "worse.json"),
                "--baseline",
                str(tmp_path / "good.json"),
                "--mode",
                "block",
            ]
        )
        == 1
    )
