"""Scale benchmarks, side by side in one run (ratios matter; absolute times depend on the machine).

    python benchmarks/scale.py                         # every part
    python benchmarks/scale.py --parts pool --sizes 10000,100000,1000000

- pool:    mining throughput and peak memory as the candidate pool grows (default 10k, 100k, 1M
           candidates) against one large corpus (100k texts), default encoder. Each size runs in its own
           process with its own Ray, so each peak is its own: driver RSS, and the sum over the driver and
           every Ray process (shared object-store pages are counted once per process that maps them).
- nodes:   the same mining job and the same 6-trial sweep on 1, 2 and 3 simulated nodes
           (``ray.cluster_utils.Cluster``: a head with no CPUs plus N worker nodes of 1 CPU each).
           On a machine with fewer cores than nodes the extra nodes share cores: read the ratios
           against the machine's core count. The default encoder is cheap, so this job measures
           Ray's own costs as much as the mining.
- nodes-minilm: the same mining job with MiniLM (6,000 x 20,000 by default) on 1 and 2 nodes: compute
           bound, as mining with a real transformer is, so it shows what a second node adds.
- sweep27: a 27-trial sweep (3 ratios x 3 seeds x 3 learning rates) on the synthetic world, one Ray.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("RAY_AUTH_MODE", "token")
# The simulated clusters below start Ray's processes directly: they need a token even on a machine
# where no crucible-ray run has written ~/.ray/auth_token yet.
os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")

import psutil  # noqa: E402
from mining import ProcessTree, suffixed_corpus, write_pool  # noqa: E402  (benchmarks/mining.py)
from mining import world as wordnet  # noqa: E402  (the WordNet world, built once per workdir)

import crucible_ray as cr  # noqa: E402
from crucible_ray.data import read_corpus, write_corpus  # noqa: E402
from crucible_ray.mining import MinerConfig  # noqa: E402

CFG = MinerConfig(lineups=10, lineup_size=4, min_passes=3, neighbors=16)
TINY = "hashed-ngram:buckets=4096,dim=32"


def row(part: str, what: str, value: str) -> None:
    print(f"  {part:<8} {what:<62} {value}", flush=True)


def write_big_corpus(w: Path, n: int, path: Path) -> None:
    write_corpus(path, suffixed_corpus(read_corpus(w / "corpus.jsonl"), n))


def one_pool(cands: Path, corpus: Path, out: Path) -> dict[str, Any]:
    """Mine one pool in this process (its own Ray) and report time and peaks as JSON."""
    with ProcessTree() as tree:
        t0 = time.perf_counter()
        res = cr.mine(cands, corpus=corpus, out=out, config=CFG, holdout_pool=None)
        elapsed = time.perf_counter() - t0
    return {
        "seconds": elapsed,
        "candidates": res.counts["candidates"],
        "accepted": res.counts["accepted"],
        "driver_mib": tree.peak_driver / 2**20,
        "total_mib": tree.peak_total / 2**20,
    }


def part_pool(tmp: Path, sizes: list[int], corpus_size: int) -> None:
    w = wordnet(tmp)
    corpus = tmp / f"corpus_{corpus_size}.parquet"
    write_big_corpus(w, corpus_size, corpus)
    for n in sizes:
        cands = tmp / f"pool_{n}.parquet"
        write_pool(w, n, cands)
        out = tmp / f"mined_{n}.parquet"
        proc = subprocess.run(
            [sys.executable, __file__, "--one-pool", str(cands), str(corpus), str(out)],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            row("pool", f"{n:,} candidates", f"FAILED: {proc.stderr.strip().splitlines()[-1:]}")
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        row(
            "pool",
            f"{n:,} candidates x {corpus_size:,} corpus",
            f"{r['seconds']:.0f} s, {n / r['seconds']:,.0f} candidates/s, {r['accepted']:,} accepted",
        )
        row("pool", "  peak RSS driver / driver + Ray processes", f"{r['driver_mib']:,.0f} / {r['total_mib']:,.0f} MiB")
        cands.unlink()
        for p in tmp.glob(f"mined_{n}*"):
            p.unlink()


def _cluster(nodes: int) -> Any:
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    for _ in range(nodes):
        cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False, logging_level=logging.WARNING)
    return cluster


def part_nodes(
    tmp: Path,
    node_counts: list[int],
    mine_n: int,
    corpus_n: int,
    what: set[str],
    model: str | None = None,
    part: str = "nodes",
) -> None:
    import hashlib

    import ray

    w = wordnet(tmp)
    cands, corpus = tmp / f"{part}_pool.parquet", tmp / f"{part}_corpus.parquet"
    write_pool(w, mine_n, cands)
    write_big_corpus(w, corpus_n, corpus)
    synth = cr.build_world("synthetic", tmp / "synthetic") if "sweep" in what else None
    base_mine = base_sweep = None
    digests: dict[int, str] = {}
    for nodes in node_counts:
        cluster = _cluster(nodes)
        t_mine = t_sweep = 0.0
        try:
            if "mine" in what:
                out = tmp / f"{part}_{nodes}" / "mined.parquet"
                with ProcessTree() as tree:
                    t0 = time.perf_counter()
                    cr.mine(
                        cands,
                        corpus=corpus,
                        out=out,
                        model=model or cr.DEFAULT_ENCODER,
                        config=CFG,
                        actors=nodes,
                        holdout_pool=None,
                        resume=False,
                        embedding_cache="off",  # every run embeds everything: no run reuses another's vectors
                    )
                    t_mine = time.perf_counter() - t0
                busy = sum(tree.cpu.values()) / t_mine
                # The results and the bundles, byte for byte (the manifest records times and hosts).
                produced = out.read_bytes() + (out.parent / "organic.jsonl").read_bytes()
                digests[nodes] = hashlib.sha256(produced).hexdigest()
            if synth is not None:
                t0 = time.perf_counter()
                table = cr.sweep(
                    synth,
                    output_dir=tmp / f"sweep_nodes_{nodes}_{time.time_ns()}",
                    ratios="85_10_5,75_15_10,65_25_10",
                    seeds="1,2",
                    steps="100,200",
                    encoder=TINY,
                    batch_size=16,
                ).table
                t_sweep = time.perf_counter() - t0
        finally:
            ray.shutdown()
            cluster.shutdown()
        if t_mine:
            base_mine = base_mine or t_mine
            row(
                part,
                f"{nodes} node(s): mine {mine_n:,} x {corpus_n:,}, {model or 'default'} encoder ({nodes} actor(s))",
                f"{t_mine:.0f} s, {mine_n / t_mine:,.0f} candidates/s, {base_mine / t_mine:.2f}x of 1 node, "
                f"output {'byte-identical to' if digests[nodes] == digests[node_counts[0]] else 'DIFFERS from'} "
                f"{node_counts[0]} node(s)'s",
            )
            row(
                part,
                f"{nodes} node(s): cores busy on average (CPU-s of all processes / wall s)",
                f"{busy:.2f} of {os.cpu_count()}; CPU-s driver / miners / Ray: "
                + " / ".join(f"{tree.cpu[g]:.0f}" for g in ("driver", "miners", "ray")),
            )
        if t_sweep:
            base_sweep = base_sweep or t_sweep
            done = int((table.drop_duplicates("trial_id")["status"] == "complete").sum())
            row(
                part,
                f"{nodes} node(s): sweep, 6 trials x 200 steps ({done} complete)",
                f"{t_sweep:.0f} s, {6 * 3600 / t_sweep:.0f} trials/h, {base_sweep / t_sweep:.2f}x of 1 node",
            )


def part_sweep27(tmp: Path) -> None:
    synth = cr.build_world("synthetic", tmp / "synthetic27")
    space = tmp / "space27.yaml"
    space.write_text(
        "name: scale27\n"
        "grid:\n"
        "  ratio: ['85_10_5', '75_15_10', '65_25_10']\n"
        "  seed: [1, 2, 3]\n"
        "  params: {lr: [0.0005, 0.001, 0.002]}\n"
        "steps: [100, 200]\n"
        f"train: {{encoder: '{TINY}', batch_size: 16}}\n"
    )
    t0 = time.perf_counter()
    table = cr.sweep(synth, output_dir=tmp / "sweep27", space=space).table
    wall = time.perf_counter() - t0
    trials = table.drop_duplicates("trial_id")
    done = int((trials["status"] == "complete").sum())
    front = cr.pareto(tmp / "sweep27", n_bootstrap=200)
    row("sweep27", f"27 trials (3 ratios x 3 seeds x 3 lr), steps 100,200: {done} complete", f"{wall:.0f} s")
    row("sweep27", "per trial (wall / trials)", f"{wall / len(trials):.1f} s")
    row("sweep27", "recommended config", front.recommended)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--one-pool":
        logging.getLogger("crucible_ray").setLevel(logging.WARNING)
        print(json.dumps(one_pool(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", default="pool,nodes,nodes-minilm,sweep27")
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--corpus", type=int, default=100_000)
    ap.add_argument("--nodes", default="1,2,3")
    ap.add_argument("--nodes-mine", type=int, default=100_000, help="candidates the nodes part mines")
    ap.add_argument("--nodes-corpus", type=int, default=20_000, help="corpus texts of the nodes part")
    ap.add_argument("--nodes-what", default="mine,sweep", help="What the nodes part runs: mine, sweep or both.")
    ap.add_argument("--nodes-model", default=None, help="The encoder the nodes part mines with (default: the default).")
    ap.add_argument("--minilm-mine", type=int, default=6000, help="candidates the nodes-minilm part mines")
    ap.add_argument("--minilm-corpus", type=int, default=20_000, help="corpus texts of the nodes-minilm part")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    logging.getLogger("crucible_ray").setLevel(logging.WARNING)
    print(
        f"machine: {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB, Python {platform.python_version()}",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as d:
        tmp = args.workdir or Path(d)
        tmp.mkdir(parents=True, exist_ok=True)
        for part in args.parts.split(","):
            if part == "pool":
                part_pool(tmp, [int(s) for s in args.sizes.split(",")], args.corpus)
            elif part == "nodes":
                what = set(args.nodes_what.split(","))
                part_nodes(
                    tmp,
                    [int(s) for s in args.nodes.split(",")],
                    args.nodes_mine,
                    args.nodes_corpus,
                    what,
                    args.nodes_model,
                )
            elif part == "nodes-minilm":
                part_nodes(tmp, [1, 2], args.minilm_mine, args.minilm_corpus, {"mine"}, "minilm", part)
            elif part == "sweep27":
                part_sweep27(tmp)
            else:
                raise SystemExit(f"unknown part {part!r}")


if __name__ == "__main__":
    main()
