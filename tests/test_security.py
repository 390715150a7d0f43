"""Security by default: token-protected clusters, nothing unpickled from files, hostile paths refused.

The threat model is SECURITY.md's: input files (data, checkpoints, search spaces, results folders
someone sent you) are untrusted; the Ray cluster is trusted only behind its token.
"""

from __future__ import annotations

import ast
import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from test_report import make_sweep_dir
from test_sweep_ray import TINY

from crucible_ray.data import path_inside
from crucible_ray.distributed._fit import STATE_FILE, latest_state
from crucible_ray.reporting import compute_report
from crucible_ray.sweeps import collect_results

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [p for d in ("crucible_ray", "cli", "cluster", "benchmarks") for p in (ROOT / d).rglob("*.py")]


# -- nothing is unpickled from a file, nothing is extracted ------------------------------------------


def _call_name(node: ast.Call) -> str:
    f = node.func
    parts = []
    while isinstance(f, ast.Attribute):
        parts.append(f.attr)
        f = f.value
    if isinstance(f, ast.Name):
        parts.append(f.id)
    return ".".join(reversed(parts))


def _kwarg(node: ast.Call, name: str) -> Any:
    for kw in node.keywords:
        if kw.arg == name:
            return kw.value.value if isinstance(kw.value, ast.Constant) else kw.value
    return None


def test_no_code_path_unpickles_files_or_extracts_archives() -> None:
    findings = []
    for path in SOURCES:
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
                bad = {"tarfile", "zipfile", "shelve", "marshal", "dill", "joblib", "cloudpickle"}
                if any(n and n.split(".")[0] in bad for n in names):
                    findings.append(f"{where}: imports {names}")
            if not isinstance(node, ast.Call):
                continue
            name = _call_name(node)
            if name in {"pickle.load", "pickle.loads", "pickle.Unpickler", "pd.read_pickle", "pandas.read_pickle"}:
                findings.append(f"{where}: {name}")
            if name == "torch.load" and _kwarg(node, "weights_only") is not True:
                findings.append(f"{where}: torch.load without weights_only=True")
            if name in {"np.load", "numpy.load"} and _kwarg(node, "allow_pickle") is True:
                findings.append(f"{where}: np.load(allow_pickle=True)")
            if name in {"shutil.unpack_archive", "eval", "exec", "yaml.unsafe_load", "yaml.full_load"}:
                findings.append(f"{where}: {name}")
            if name == "yaml.load" and not (
                isinstance(_kwarg(node, "Loader"), ast.Name) and _kwarg(node, "Loader").id == "_Loader"
            ):
                findings.append(f"{where}: yaml.load with a loader other than the SafeLoader subclass")
            if name.startswith("subprocess.") and _kwarg(node, "shell") is True:
                findings.append(f"{where}: subprocess with shell=True")
    assert not findings, findings


def test_the_yaml_loader_is_a_safe_loader() -> None:
    import yaml

    from crucible_ray.sweeps._space import _Loader

    assert issubclass(_Loader, yaml.SafeLoader)
    with pytest.raises(yaml.constructor.ConstructorError):
        yaml.load("!!python/object/apply:os.system ['true']", Loader=_Loader)  # noqa: S506 - the point


class _Payload:
    """Unpickling this would create a marker file (the classic pickle attack)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (self.marker,))


def test_a_hostile_recovery_state_is_skipped_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    run = tmp_path / "run"
    good = {"step": 100, "weights": torch.zeros(2)}
    (run / "checkpoint_2026-01-01_00-00-00.000000").mkdir(parents=True)
    torch.save(good, run / "checkpoint_2026-01-01_00-00-00.000000" / STATE_FILE)
    (run / "checkpoint_2026-01-02_00-00-00.000000").mkdir()
    with (run / "checkpoint_2026-01-02_00-00-00.000000" / STATE_FILE).open("wb") as f:
        pickle.dump({"step": 200, "evil": _Payload(marker)}, f)  # newer, but not weights-only
    state = latest_state(run)
    assert state is not None and state["step"] == 100  # the newest *loadable* state
    assert not marker.exists()


# -- hostile paths: `../` and links out of a results folder ----------------------------------------


def test_path_inside_refuses_dot_dot_and_links_out(tmp_path: Path) -> None:
    base = tmp_path / "base"
    (base / "a").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (base / "link").symlink_to(tmp_path / "outside")
    (base / "inner").symlink_to(base / "a")
    assert path_inside(base, "a", "x.json") == base / "a" / "x.json"
    assert path_inside(base, "inner", "x.json") == base / "inner" / "x.json"  # a link that stays inside
    assert path_inside(base, "..", "outside") is None
    assert path_inside(base, "a/../../outside/x") is None
    assert path_inside(base, "link", "x.json") is None
    assert path_inside(base, "/etc/passwd") is None


def test_a_hostile_results_folder_reads_nothing_outside_it(tmp_path: Path, synthetic_world: Path) -> None:
    d = make_sweep_dir(tmp_path, synthetic_world)
    # Scoreboards planted outside the results folder, reachable by `../` trial ids and by a link.
    evil = tmp_path / "evil"
    shutil.copytree(d / "trials" / "r75_15_10-s1", evil)
    for p in evil.glob("scoreboard_step_*.json"):
        doc = json.loads(p.read_text())
        for tiers in doc["eval_sets"].values():
            for m in tiers.values():
                if isinstance(m, dict) and isinstance(m.get("margin"), dict):
                    m["margin"] = {k: 123.0 for k in m["margin"]}  # unmistakable if it is ever read
        p.write_text(json.dumps(doc))
    clean = pd.read_parquet(d / "results.parquet")

    def margins() -> list[float]:
        data = compute_report(d, n_bootstrap=20)
        return [v for m in data.margins for v in m.quantiles.values()]

    # `../` in the trial ids of seed 1: the margins come from seed 2's folders only.
    table = clean.copy()
    table["trial_id"] = table["trial_id"].where(table["seed"] == 2, "../../evil")
    table.to_parquet(d / "results.parquet")
    values = margins()
    assert values and 123.0 not in values
    # Seed 2's folder of every ratio replaced by a link to the planted folder: not followed.
    clean.to_parquet(d / "results.parquet")
    for trial in clean.loc[clean["seed"] == 2, "trial_id"].unique():
        shutil.rmtree(d / "trials" / trial)
        (d / "trials" / trial).symlink_to(evil)
    values = margins()
    assert values and 123.0 not in values

    # A sweep folder whose trial entry is a link to a trial elsewhere: skipped when results are rebuilt.
    sweep = tmp_path / "sweep2"
    (sweep / "trials").mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "trial.json").write_text(
        json.dumps({"trial_id": "x", "ratio": "85_10_5", "seed": 1, "steps": [10], "params": {}})
    )
    (sweep / "trials" / "x").symlink_to(elsewhere)
    assert collect_results(sweep).empty


# -- token-protected clusters ----------------------------------------------------------------------


def _mine_cli(world: Path, out: Path, address: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """Start ``crucible-ray mine`` against ``address`` (the three cases of the test run side by side)."""
    args = [
        str(Path(sys.executable).parent / "crucible-ray"),
        "mine",
        "--candidates",
        str(world / "organic_candidates.jsonl"),
        "--corpus",
        str(world / "corpus.jsonl"),
        "--out",
        str(out),
        "--encoder",
        TINY,
        "--lineups",
        "4",
        "--min-passes",
        "2",
        "--address",
        address,
    ]
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_a_token_protected_cluster_needs_the_token(ray_cluster: Any, synthetic_world: Path, tmp_path: Path) -> None:
    address = ray_cluster.address
    home = tmp_path / "home"  # no ~/.ray/auth_token there
    home.mkdir()
    base = {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS")}
    base["HOME"] = str(home)
    token_file = tmp_path / "token"
    token_file.write_text(os.environ["RAY_AUTH_TOKEN"])
    token_file.chmod(0o600)
    cases = {  # name: (environment, the words of the one-line error, or None for success)
        "with-token-file": ({**base, "RAY_AUTH_TOKEN_PATH": str(token_file)}, None),
        "no-token": (base, "requires an authentication token"),
        "wrong-token": ({**base, "RAY_AUTH_TOKEN": "0" * 64}, "rejected the authentication token"),
    }
    procs = {
        name: _mine_cli(synthetic_world, tmp_path / f"{name}.parquet", address, env) for name, (env, _) in cases.items()
    }
    for name, proc in procs.items():
        _, stderr = proc.communicate(timeout=300)
        words = cases[name][1]
        out = tmp_path / f"{name}.parquet"
        if words is None:
            assert proc.returncode == 0, stderr[-2000:]
            assert out.is_file()
            continue
        assert proc.returncode == 2, stderr[-2000:]
        lines = [line for line in stderr.splitlines() if line.startswith("crucible-ray: error")]
        # Ray's own retry lines come first (~1 a second for 20 s with a wrong token); ours is the last line.
        assert len(lines) == 1 and stderr.strip().splitlines()[-1] == lines[0]
        assert words in lines[0] and address in lines[0], stderr[-2000:]
        assert "Traceback" not in stderr and "RAY_AUTH_TOKEN" in lines[0]
        assert not out.exists()
