"""Training benchmarks, side by side in one run (ratios matter; absolute times depend on the machine).

    python benchmarks/training.py [--steps 600] [--batch-size 64]

- loop:     samples per second of the Ray Train loop (1 worker, TorchTrainer) vs the same worker loop called
            in-process (plain PyTorch), same model, same batches, same thread count; Ray's start-up
            (ray.init, controller, worker group) is reported separately.
- cluster:  2 workers on a simulated two-node cluster (``ray.cluster_utils.Cluster``, 1 CPU per node),
            gradients averaged across the nodes every step.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import secrets
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "token")
# The simulated clusters below start Ray's processes directly: they need a token even on a machine
# where no crucible-ray run has written ~/.ray/auth_token yet.
os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")

import torch  # noqa: E402

import crucible_ray as cr  # noqa: E402
from crucible_ray.training import TrainConfig, WorkerContext, prepare_training, train_worker  # noqa: E402

ROWS: list[tuple[str, str, str]] = []


def row(part: str, what: str, value: str) -> None:
    ROWS.append((part, what, value))
    print(f"  {part:<8} {what:<62} {value}", flush=True)


def timing(out: Path) -> dict[str, float]:
    return json.loads((out / "timing.json").read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(
        f"machine: {os.cpu_count()} CPUs ({platform.machine()}), torch {torch.__version__}, "
        f"{'GPU' if torch.cuda.is_available() else 'no GPU'}",
        flush=True,
    )
    opts = dict(ratio="75_15_10", steps=[args.steps], seed=1, batch_size=args.batch_size)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        world = cr.build_world("synthetic", tmp / "world", seed=0)
        cfg = TrainConfig(**opts)  # type: ignore[arg-type]
        prep = prepare_training(world, cfg)
        torch.set_num_threads(1)  # what the single Ray worker gets on this machine (one CPU left free)
        warm = TrainConfig(**{**opts, "steps": [50]})  # type: ignore[arg-type]
        train_worker(warm, prep.data, tmp / "warm-up", WorkerContext())  # first-run allocations, not timed
        train_worker(cfg, prep.data, tmp / "plain", WorkerContext())
        plain = timing(tmp / "plain")
        row(
            "loop",
            f"plain PyTorch loop ({args.steps} steps x {args.batch_size})",
            f"{plain['samples_per_second']:.0f} samples/s",
        )

        import ray

        t0 = time.time()
        ray.init(num_cpus=os.cpu_count(), log_to_driver=False, logging_level=logging.WARNING)
        cr.train(world, output_dir=tmp / "ray1", **opts)  # type: ignore[arg-type]
        t_end = time.time()
        ray1 = timing(tmp / "ray1")
        ray.shutdown()
        startup = ray1["loop_started_at"] - t0
        row("loop", "Ray Train, 1 worker, after start-up", f"{ray1['samples_per_second']:.0f} samples/s")
        row(
            "loop",
            "Ray Train / plain (target >= 0.9x)",
            f"{ray1['samples_per_second'] / plain['samples_per_second']:.2f}x",
        )
        row("loop", "Ray start-up: ray.init + TorchTrainer until the first step", f"{startup:.1f} s")
        row("loop", "Ray run wall time, start-up included", f"{t_end - t0:.1f} s")

        from ray.cluster_utils import Cluster

        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False, logging_level=logging.WARNING)
        t0 = time.time()
        cr.train(world, output_dir=tmp / "ray2", workers=2, **opts)  # type: ignore[arg-type]
        ray2 = timing(tmp / "ray2")
        ray.shutdown()
        cluster.shutdown()
        row(
            "cluster",
            "Ray Train, 2 workers on 2 simulated nodes (samples/s, both)",
            f"{2 * ray2['samples_per_second']:.0f} samples/s",
        )
        row("cluster", "2 workers / 1 worker", f"{2 * ray2['samples_per_second'] / ray1['samples_per_second']:.2f}x")
        row("cluster", "start-up until the first step", f"{ray2['loop_started_at'] - t0:.1f} s")
    print("\n| part | measurement | result |\n|---|---|---|")
    for part, what, value in ROWS:
        print(f"| {part} | {what} | {value} |")


if __name__ == "__main__":
    main()
