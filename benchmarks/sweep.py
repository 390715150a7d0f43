"""Sweep benchmark, side by side in one run (ratios matter; absolute times depend on the machine).

    python benchmarks/sweep.py [--steps 100,200,300]

- sweep: ``crucible-ray sweep ratio`` over 3 ratios x 2 seeds x 3 milestones on the synthetic world
  (one Ray instance, trials packed onto the CPUs by the trial plan) vs the same six training runs
  as a shell loop of ``crucible-ray train`` processes (each starting its own Ray).
- overhead: per-trial orchestration overhead, the median of (trial wall time - training-loop time).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

RATIOS = ["85_10_5", "75_15_10", "65_25_10"]
SEEDS = [1, 2]
CLI = str(Path(sys.executable).parent / "crucible-ray")


def timed(args: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([CLI, "--quiet", *args], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", default="100,200,300")
    args = ap.parse_args()
    print(f"machine: {os.cpu_count()} CPUs ({platform.machine()}), Python {platform.python_version()}", flush=True)
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        subprocess.run([CLI, "--quiet", "data", "build", "--world", "synthetic", "--out", str(tmp / "w")], check=True)
        sweep_wall = timed(
            [
                "sweep",
                "ratio",
                "--data",
                str(tmp / "w"),
                "--ratios",
                ",".join(RATIOS),
                "--seeds",
                ",".join(map(str, SEEDS)),
                "--steps",
                args.steps,
                "--output-dir",
                str(tmp / "sweep"),
            ]
        )
        table = pd.read_parquet(tmp / "sweep" / "results.parquet").drop_duplicates("trial_id")
        sweep_overhead = statistics.median(table["wall_seconds"] - table["train_seconds"])
        loop_walls, loop_overheads = [], []
        for ratio in RATIOS:
            for seed in SEEDS:
                out = tmp / f"loop-{ratio}-{seed}"
                wall = timed(
                    [
                        "train",
                        "--data",
                        str(tmp / "w"),
                        "--ratio",
                        ratio,
                        "--seed",
                        str(seed),
                        "--steps",
                        args.steps,
                        "--output-dir",
                        str(out),
                    ]
                )
                loop_walls.append(wall)
                loop_overheads.append(wall - json.loads((out / "timing.json").read_text())["loop_seconds"])
        loop_wall = sum(loop_walls)
    n = len(RATIOS) * len(SEEDS)
    rows.append(
        (
            "sweep",
            f"crucible-ray sweep ratio, {n} trials x {len(args.steps.split(','))} milestones",
            f"{sweep_wall:.1f} s",
        )
    )
    rows.append(("sweep", f"shell loop of {n} crucible-ray train processes", f"{loop_wall:.1f} s"))
    rows.append(("sweep", "sweep / loop wall time", f"{sweep_wall / loop_wall:.2f}x"))
    rows.append(("overhead", "per trial in the sweep (median trial wall - loop time)", f"{sweep_overhead:.1f} s"))
    rows.append(
        ("overhead", "per process in the loop (median wall - loop time)", f"{statistics.median(loop_overheads):.1f} s")
    )
    print("\n| part | measurement | result |\n|---|---|---|")
    for part, what, value in rows:
        print(f"| {part} | {what} | {value} |")


if __name__ == "__main__":
    main()
