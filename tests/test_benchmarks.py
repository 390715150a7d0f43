"""The GPU benchmark cannot rot: ``benchmarks/gpu.py --cpu`` runs every part at a small size on the CPU
(on the session's cluster) and prints its table."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.wordnet
def test_the_gpu_benchmark_runs_on_the_cpu(ray_cluster: Any, tmp_path: Path) -> None:
    env = {**os.environ, "RAY_ADDRESS": ray_cluster.address}
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--cpu", "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    table = done.stdout[done.stdout.index("| part |") :]
    rates = {
        part: float(m.group(1).replace(",", ""))
        for part, m in (
            ("encode", re.search(r"\| encode \| .* \| ([\d,]+) texts/s \|", table)),
            ("pipeline", re.search(r"\| pipeline \| mine, .* ([\d,]+) texts/s \|", table)),
            ("train", re.search(r"\| train \| Ray Train, 1 CPU worker.* \| ([\d,]+) samples/s \|", table)),
        )
        if m is not None
    }
    assert set(rates) == {"encode", "pipeline", "train"}, table
    assert all(v > 0 for v in rates.values()), rates
    assert re.search(r"\| pipeline \| pipeline texts/s / encode-only .* \| \d+% \|", table), table
    assert re.search(r"\| memory \| training, plain loop / Ray Train, peak \| [\d,]+ / [\d,]+ MiB \|", table), table
