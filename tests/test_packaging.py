"""What `pip install .` installs: only crucible_ray, a working console script, package data."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import crucible_ray

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out), str(ROOT)],
        check=True,
        timeout=300,
        capture_output=True,
    )
    return next(out.glob("crucible_ray-*.whl"))


def test_wheel_installs_only_crucible_ray(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert top == {"crucible_ray"}
    assert "crucible_ray/cli/__init__.py" in names
    assert "crucible_ray/py.typed" in names
    assert any(n.startswith("crucible_ray/search_spaces/") and n.endswith(".yaml") for n in names)
    # every source package is shipped
    for init in (ROOT / "crucible_ray").rglob("__init__.py"):
        assert str(init.relative_to(ROOT)) in names


def test_console_script_entry_point(wheel: Path) -> None:
    zf = zipfile.ZipFile(wheel)
    entry = next(n for n in zf.namelist() if n.endswith("entry_points.txt"))
    assert "crucible-ray = crucible_ray.cli:main" in zf.read(entry).decode()


def test_wheel_works_from_a_clean_target(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        timeout=300,
        capture_output=True,
    )
    code = "import crucible_ray, crucible_ray.cli as c; print(crucible_ray.__file__); c.app.main(['--version'])"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(str(target)) and crucible_ray.__version__ in out.stdout


def test_public_api_is_pinned() -> None:
    # The API changes only on purpose: update this list together with the docs.
    assert sorted(crucible_ray.__all__) == sorted(
        [
            "DEFAULT_ENCODER",
            "DEFAULT_POOLS",
            "Bundle",
            "Candidate",
            "ConfigError",
            "CorpusDoc",
            "CrucibleError",
            "DataError",
            "Encoder",
            "EncoderError",
            "GuardrailConfig",
            "GuardrailReport",
            "GuardrailViolation",
            "MinerConfig",
            "MiningError",
            "MiningExecution",
            "MiningResult",
            "Negative",
            "ParetoResult",
            "Ratio",
            "Scoreboard",
            "SweepResult",
            "SweepSpace",
            "TrainConfig",
            "TrainResult",
            "TrainingError",
            "World",
            "__version__",
            "build_encoder",
            "build_world",
            "check_guardrails",
            "evaluate",
            "expand",
            "export_sentence_transformer",
            "import_world",
            "load_encoder",
            "load_space",
            "mine",
            "mine_local",
            "pareto",
            "read_bundles",
            "read_candidates",
            "read_corpus",
            "register_encoder",
            "report",
            "save_checkpoint",
            "sweep",
            "train",
            "write_bundles",
            "write_candidates",
            "write_corpus",
        ]
    )
    for name in crucible_ray.__all__:
        assert hasattr(crucible_ray, name), name
