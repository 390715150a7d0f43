"""The command line: CliRunner for behaviour, one real subprocess for the installed entry point."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from crucible_ray.cli import app
from crucible_ray.cli._main import run


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = run(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_help_everywhere() -> None:
    runner = CliRunner()
    for args in (
        ["--help"],
        ["data", "--help"],
        ["data", "build", "--help"],
        ["data", "inspect", "--help"],
        ["data", "validate", "--help"],
        ["eval", "--help"],
        ["demo", "--help"],
        ["train", "--help"],
        ["sweep", "--help"],
        ["sweep", "ratio", "--help"],
        ["sweep", "run", "--help"],
        ["pareto", "--help"],
        ["guardrail", "check", "--help"],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, args
        assert "Usage:" in result.output


def test_data_build_and_eval(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(
        ["data", "build", "--world", "synthetic", "--out", str(tmp_path / "w"), "--seed", "3", "-o", "families=3"],
        capsys,
    )
    assert code == 0 and "legacy" in out
    manifest = json.loads((tmp_path / "w" / "manifest.json").read_text())
    assert manifest["config"]["families"] == 3 and manifest["seed"] == 3
    board = tmp_path / "sb.json"
    code, out, _ = _run(
        [
            "eval",
            "--encoder",
            "hashed-ngram:dim=64,seed=1",
            "--eval-set",
            str(tmp_path / "w" / "frozen_eval.jsonl"),
            "--eval-set",
            f"holdout={tmp_path / 'w' / 'organic_holdout.jsonl'}",
            "--generalization-set",
            "holdout",
            "--output",
            str(board),
        ],
        capsys,
    )
    assert code == 0, out
    doc = json.loads(board.read_text())
    assert set(doc["eval_sets"]) == {"frozen_eval", "holdout"}
    assert doc["generalization"] == doc["eval_sets"]["holdout"]["3"]["accuracy"] is not None
    assert doc["encoder"]["spec"]["dim"] == 64
    assert "retention (frozen_eval" in out


def test_inspect_with_ratio(synthetic_world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["data", "inspect", str(synthetic_world), "--ratio", "75_15_10", "--batch-size", "16"], capsys)
    assert code == 0
    assert "ratio 75_15_10, batch size 16" in out
    legacy_row = next(line for line in out.splitlines() if line.startswith("legacy ") and "%" in line)
    assert legacy_row.split()[:3] == ["legacy", "75%", "12"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["data", "inspect", "{world}", "--ratio", "75_15_5"], "sums to 95"),
        (["data", "inspect", "{world}", "--ratio", "80_20"], "has 2 parts but there are 3 pools"),
        (["data", "build", "--world", "synthetic", "--out", "{tmp}/x", "-o", "colour=red"], "option 'colour'"),
        (
            ["eval", "--encoder", "nope", "--eval-set", "{world}/frozen_eval.jsonl", "--output", "{tmp}/o.json"],
            "unknown encoder kind 'nope'",
        ),
        (
            ["eval", "--encoder", "hashed-ngram", "--eval-set", "{tmp}/bad.jsonl", "--output", "{tmp}/o.json"],
            "bad.jsonl:2: field 'negatives[0].tier'",
        ),
        (
            ["eval", "--encoder", "hashed-ngram", "--eval-set", "{tmp}/empty.jsonl", "--output", "{tmp}/o.json"],
            "empty.jsonl: file is empty",
        ),
        (
            [
                "eval",
                "--encoder",
                "hashed-ngram",
                "--checkpoint",
                "{tmp}/c.pt",
                "--eval-set",
                "{tmp}/bad.jsonl",
                "--output",
                "{tmp}/o.json",
            ],
            "exactly one of --checkpoint",
        ),
        (
            [
                "eval",
                "--checkpoint",
                "{tmp}/missing.pt",
                "--eval-set",
                "{world}/frozen_eval.jsonl",
                "--output",
                "{tmp}/o.json",
            ],
            "missing.pt: no such checkpoint",
        ),
        (
            ["eval", "--encoder", "hashed-ngram", "--output", "{tmp}/o.json"],
            "--eval-set PATH (repeatable) or --data WORLD",
        ),
        (["data", "validate", "{tmp}/bad.jsonl"], "bad.jsonl:2:"),
        (["nosuchcommand"], "No such command"),
        # one comma-list parser (crucible_ray.config.parse_ints): this exited 3 (internal error) once
        (
            ["sweep", "run", "--space", "{tmp}/s.yaml", "--steps", "200,x"]
            + ["--data", "{world}", "--output-dir", "{tmp}/o"],
            "--steps takes comma-separated integers such as 42,123, but got '200,x'",
        ),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    args: list[str], message: str, tmp_path: Path, synthetic_world: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = (synthetic_world / "frozen_eval.jsonl").read_text().splitlines()[0]
    bad = json.loads(good)
    bad["bundle_id"] = "other"
    bad["negatives"][0]["tier"] = 7
    (tmp_path / "bad.jsonl").write_text(good + "\n" + json.dumps(bad) + "\n")
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "s.yaml").write_text("steps: [10]\ngrid: {ratio: [85_10_5], seed: [1]}\n")
    before = set(tmp_path.iterdir())
    code, out, err = _run([a.format(world=synthetic_world, tmp=tmp_path) for a in args], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("crucible-ray: error: "), err
    assert message in lines[0]
    assert "Traceback" not in err
    assert set(tmp_path.iterdir()) == before  # nothing written


def test_debug_shows_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(
        [
            "eval",
            "--encoder",
            "hashed-ngram",
            "--eval-set",
            str(tmp_path / "none.jsonl"),
            "--output",
            str(tmp_path / "o.json"),
            "--debug",
        ],
        capsys,
    )
    assert code == 2 and "Traceback" in err and "none.jsonl: no such file" in err


def test_installed_command_runs_as_subprocess(synthetic_world: Path, tmp_path: Path) -> None:
    exe = shutil.which("crucible-ray", path=str(Path(sys.executable).parent))
    assert exe, "the crucible-ray console script is not installed next to this Python"
    ok = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "crucible-ray" in ok.stdout
    bad = subprocess.run(
        [
            exe,
            "eval",
            "--encoder",
            "hashed-ngram",
            "--eval-set",
            str(tmp_path / "x.jsonl"),
            "--output",
            str(tmp_path / "o.json"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip() == f"crucible-ray: error: {tmp_path / 'x.jsonl'}: no such file"


@pytest.mark.slow
def test_quick_demo_runs_the_whole_pipeline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_dir = tmp_path / "d"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    code, out, err = _run(
        ["demo", "--output-dir", str(out_dir), "--world", "synthetic", "--quick", "--mlflow-uri", uri], capsys
    )
    assert code == 0, err
    for stage in ("[1/7]", "[3/7]", "[5/7]", "[7/7]"):
        assert stage in err  # progress at every stage
    assert "world: synthetic" in out and "recommended:" in out and "dashboard.html" in out
    assert "  why: on the retention/generalization frontier in" in out and "guardrails" in out
    assert "findings (95% intervals across seeds):" in out and "  dilution at step 100:" in out
    assert "1 seed, no interval" in out  # --quick runs one seed: an estimate, honestly without an interval
    results = pd.read_parquet(out_dir / "sweep" / "results.parquet")
    assert len(results) == 4 and set(results["status"]) == {"complete"}
    assert (out_dir / "base" / "checkpoint_final.pt").is_file()
    assert (out_dir / "sweep" / "guardrails.json").is_file()
    assert (out_dir / "dashboard.html").stat().st_size > 1_000_000
    mined = json.loads((out_dir / "world" / "organic_mined.manifest.json").read_text())
    assert mined["model"]["checkpoint"] == str(
        out_dir.resolve() / "base" / "checkpoint_final.pt"
    )  # mined with the base model
    # --mlflow-uri: the base model's run, the sweep's run and its trials' runs (docs/tracking.md)
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("crucible-ray")
    assert exp is not None
    runs = client.search_runs([exp.experiment_id])
    kinds = sorted(r.data.tags["crucible.kind"] for r in runs)
    assert kinds == ["sweep", "train"] + ["trial"] * results["trial_id"].nunique()
    assert all(r.info.status == "FINISHED" for r in runs)
    trials = [r for r in runs if r.data.tags["crucible.kind"] == "trial"]
    # the trials trained on the pools the base model mined: the miner's settings are their params
    assert all(r.data.params["miner.organic_mined.lineups"] == str(mined["config"]["lineups"]) for r in trials)
    assert "INFO mlflow" not in err and "Creating initial MLflow database tables" not in err  # MLflow kept quiet


def test_miner_options_come_from_the_miner_config() -> None:
    """Every MinerConfig field is an option of `mine` (all but the holdout of `expand`), with the model's
    default: the CLI cannot drift from the config."""
    from crucible_ray.cli._mine import expand_command, mine_command

    from crucible_ray.mining import MinerConfig

    for command, skip in ((mine_command, set()), (expand_command, {"holdout_fraction"})):
        params = {p.name: p for p in command.params}
        for name, field in MinerConfig.model_fields.items():
            if name in skip:
                continue
            assert name in params, (command.name, name)
            assert params[name].default == field.default, (command.name, name)
            assert field.description and field.description.lower() in (params[name].help or "").lower()


def test_train_options_come_from_the_train_config() -> None:
    """The training settings of `train` take type, default and help from TrainConfig; the ratio and the
    milestones take their defaults from it too."""
    from crucible_ray.cli._train import TRAIN_FIELDS, train_command

    from crucible_ray.training import TrainConfig

    params = {p.name: p for p in train_command.params}
    fields = TrainConfig.model_fields
    for name in TRAIN_FIELDS:
        field = fields[name]
        assert params[name].default == field.default, name
        assert field.description and field.description.lower() in (params[name].help or "").lower(), name
    assert params["quality_weighting"].is_flag  # type: ignore[attr-defined]
    assert params["ratio"].default == str(fields["ratio"].default) == "75_15_10"
    assert params["steps"].default == ",".join(map(str, fields["steps"].default))
    undocumented = {"pools", "ratio", "steps", "encoder", "use_gpu", "danger_margin", "retention_set"}
    assert set(TRAIN_FIELDS) >= {n for n, f in fields.items() if f.description} - undocumented


def test_execution_options_come_from_the_execution_config() -> None:
    """The execution options of `mine` and `expand` take their defaults and help from MiningExecution."""
    from crucible_ray.cli._mine import expand_command, mine_command

    from crucible_ray.mining import MiningExecution

    for command in (mine_command, expand_command):
        params = {p.name: p for p in command.params}
        for name in ("actors", "batch_size", "use_gpu", "gpus_per_actor", "address", "corpus_store"):
            field = MiningExecution.model_fields[name]
            assert params[name].default == field.default, (command.name, name)
            assert field.description and field.description.lower() in (params[name].help or "").lower()
        assert params["restart"].is_flag and MiningExecution.model_fields["resume"].default is True  # type: ignore[attr-defined]
