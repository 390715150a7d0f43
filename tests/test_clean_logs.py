"""A normal run prints crucible-ray's own lines and nothing of Ray's: no internal error or warning lines
(``core_worker.cc ...``, ``(raylet) WARNING ...``, deprecation notices, actor output) on a user's terminal.

The commands run as a user runs them: the installed console script in a subprocess, on the session's
cluster (``RAY_ADDRESS``), with whatever Ray forwards to the driver.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest


def _run(args: list[str], cluster: Any, cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("crucible-ray", path=str(Path(sys.executable).parent))
    assert exe, "the crucible-ray console script is not installed next to this Python"
    env = {**os.environ, "RAY_ADDRESS": cluster.address}
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=600, env=env, cwd=cwd)


def _foreign(stderr: str) -> list[str]:
    """The stderr lines that are not crucible-ray's own (each of those starts ``crucible-ray:``)."""
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith("crucible-ray:")]


@pytest.mark.slow
def test_mine_and_sweep_print_only_their_own_lines(ray_cluster: Any, synthetic_world: Path, tmp_path: Path) -> None:
    world = tmp_path / "world"
    shutil.copytree(synthetic_world, world)
    mine = _run(
        [
            "mine",
            "--candidates",
            str(world / "organic_candidates.jsonl"),
            "--corpus",
            str(world / "corpus.jsonl"),
            "--out",
            str(tmp_path / "mined" / "results.parquet"),
            "--embedding-cache",
            str(tmp_path / "cache"),
            "--actors",  # more than the pool has blocks: Ray Data would warn of idle actors
            "4",
        ],
        ray_cluster,
        tmp_path,
    )
    assert mine.returncode == 0, mine.stderr
    assert "crucible-ray: mined " in mine.stderr  # its own progress lines do reach the terminal
    assert _foreign(mine.stderr) == []
    assert list((tmp_path / "cache").glob("*/*.npy")), "the run went through the embedding cache"

    sweep = _run(
        [
            "sweep",
            "ratio",
            "--ratios",
            "80_10_10,60_20_20",
            "--seeds",
            "1,2",
            "--steps",
            "20,40",
            "--data",
            str(world),
            "--output-dir",
            str(tmp_path / "sweep"),
        ],
        ray_cluster,
        tmp_path,
    )
    assert sweep.returncode == 0, sweep.stderr
    assert (tmp_path / "sweep" / "results.parquet").is_file()
    assert _foreign(sweep.stderr) == []
