"""Do milestones mean what they say? One run evaluated at several steps vs separate runs to each step.

    python benchmarks/milestones.py [--world DIR] [--encoder minilm:mode=frozen-head] [--ratio 100_0_0]
                                    [--steps 250,1000,4000] [--seeds 1,2,3] [--schedules cosine,constant]

A sweep trains each config once to its last milestone and evaluates it on the way. With a schedule
that decays to the last milestone (cosine, linear), "step 1,000" of a 4,000-step run is a model still
at a high learning rate, not the model a 1,000-step run would give. For each schedule this trains, per
seed, one run with every milestone and one separate run per milestone (same seed, so the same batches),
in-process (no Ray), and prints the difference (one run minus separate run) of retention and of the
generalization reference at each milestone, with a 95% interval across seeds.

The constant schedule warms up for a fixed number of steps (5% of the first milestone) in every run, so
its milestones are the separate runs exactly; the decaying schedules warm up for 5% of each run's last
step, as ``crucible-ray train`` does by default. Without ``--world`` a WordNet world (legacy only) is
built in a temporary folder. The table goes to stdout; README and docs/findings.md keep the latest.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

import crucible_ray as cr
from crucible_ray.analysis import seed_summary
from crucible_ray.training import TrainConfig, WorkerContext, prepare_training, train_worker
from crucible_ray.worlds import REFERENCE_SET


def _run(world: Path, out: Path, cfg: TrainConfig) -> dict[int, cr.Scoreboard]:
    prepared = prepare_training(world, cfg)
    train_worker(cfg, prepared.data, out, WorkerContext())
    return {s: cr.Scoreboard.read(out / f"scoreboard_step_{s}.json") for s in cfg.steps}


def _metric(board: cr.Scoreboard, name: str) -> float:
    if name == "retention":
        value = board.retention
    else:
        value = board.accuracy(name)
    return float("nan") if value is None else float(value)  # 0.0 is a measurement, not a missing value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--world", type=Path, default=None)
    ap.add_argument("--encoder", default="minilm:mode=frozen-head")
    ap.add_argument("--ratio", default="100_0_0")
    ap.add_argument("--steps", default="250,1000,4000")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--schedules", default="cosine,constant")
    args = ap.parse_args()
    steps = [int(s) for s in args.steps.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="crucible-milestones-"))
    world = args.world or cr.build_world("wordnet", tmp / "world", seed=0)
    eval_sets = cr.World.open(world).eval_sets
    generalization = REFERENCE_SET if REFERENCE_SET in eval_sets else "organic_holdout"
    metrics = ["retention", generalization]
    print(f"# milestones: {args.encoder}, ratio {args.ratio}, steps {steps}, seeds {seeds}")
    print(f"# machine: {platform.machine()}, {platform.python_version()}; world {world}")
    rows = []
    for schedule in args.schedules.split(","):
        fixed = {"warmup_steps": max(1, steps[0] // 20)} if schedule == "constant" else {}
        common = dict(ratio=args.ratio, encoder=args.encoder, schedule=schedule, **fixed)
        diffs: dict[tuple[int, str], list[float]] = {}
        t0 = time.perf_counter()
        for seed in seeds:
            long = _run(world, tmp / f"{schedule}-s{seed}-all", TrainConfig(steps=steps, seed=seed, **common))
            for s in steps:
                alone = _run(world, tmp / f"{schedule}-s{seed}-{s}", TrainConfig(steps=[s], seed=seed, **common))[s]
                for m in metrics:
                    diffs.setdefault((s, m), []).append(_metric(long[s], m) - _metric(alone, m))
        for (s, m), d in sorted(diffs.items()):
            st = seed_summary(np.array(d))
            rows.append((schedule, s, m, st["mean"], st["ci_low"], st["ci_high"]))
        print(f"# {schedule}: {time.perf_counter() - t0:.0f} s", flush=True)
    print("\n| schedule | milestone | metric | one run - separate run (mean over seeds) | 95% CI |")
    print("|---|---|---|---|---|")
    for schedule, s, m, mean, lo, hi in rows:
        print(f"| {schedule} | {s} | {m} | {mean:+.4f} | {lo:+.4f} to {hi:+.4f} |")


if __name__ == "__main__":
    main()
