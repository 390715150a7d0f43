"""GPU benchmarks, side by side in one run: what a GPU gives the miner and the trainer.

    python benchmarks/gpu.py          # on a machine with a CUDA GPU (a few minutes on one GPU)
    python benchmarks/gpu.py --cpu    # the same parts on the CPU at a small size (CI runs it so it cannot rot)

- encode:   encode-only throughput of the MiniLM encoder (``minilm``, as the miner loads it) at the miner
            actor's encode batch (128 on a GPU, 32 on a CPU), in this process: texts/s.
- pipeline: ``crucible_ray.mine`` with the same model, one actor on the GPU, after Ray start-up (timed
            apart): candidates/s, and texts/s counting every text it embedded (the corpus, each anchor,
            each positive that is not a corpus text); the pipeline's texts/s as a share of encode-only
            (goal >= 80%: the GPU is kept busy).
- train:    the training loop of one Ray Train worker on the GPU vs the same worker loop in this process
            (MiniLM fine-tuned in full, same batches): samples/s (goal >= 0.9x).
- memory:   peak GPU memory of each part, device-wide (sampled every 0.1 s), or peak RSS of this
            process and its children with ``--cpu``.

Ray runs as a local instance (or joins ``RAY_ADDRESS``); the embedding cache is off (every run embeds
everything).
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "token")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ["CRUCIBLE_RAY_EMBEDDING_CACHE"] = "off"

import json  # noqa: E402

import psutil  # noqa: E402
import torch  # noqa: E402

import crucible_ray as cr  # noqa: E402
from crucible_ray.data import read_candidates, read_corpus, write_candidates, write_corpus  # noqa: E402
from crucible_ray.mining import CPU_ENCODE_BATCH, GPU_ENCODE_BATCH, MinerConfig, dedupe_corpus  # noqa: E402
from crucible_ray.training import TrainConfig, WorkerContext, prepare_training, train_worker  # noqa: E402

MODEL = "minilm"
TRAIN_MODEL = "minilm:mode=full"
CFG = MinerConfig(lineups=10, lineup_size=4, min_passes=3, neighbors=16)
ROWS: list[tuple[str, str, str]] = []


def row(part: str, what: str, value: str) -> None:
    ROWS.append((part, what, value))
    print(f"  {part:<9} {what:<66} {value}", flush=True)


@contextmanager
def peak_memory(gpu: bool) -> Iterator[dict[str, float]]:
    """``{"peak_mib": ...}`` once the block ends: device-wide GPU memory in use (above what was in use
    when it began), or the RSS of this process and its children."""
    out: dict[str, float] = {"peak_mib": 0.0}
    stop = threading.Event()
    me = psutil.Process()

    def used() -> float:
        if gpu:
            free, total = torch.cuda.mem_get_info()
            return float(total - free)
        total_rss = 0.0
        for p in [me, *me.children(recursive=True)]:
            try:
                total_rss += p.memory_info().rss
            except psutil.Error:
                continue
        return total_rss

    base = used() if gpu else 0.0
    peak = [base]

    def sample() -> None:
        while not stop.wait(0.1):
            peak[0] = max(peak[0], used())

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    try:
        yield out
    finally:
        stop.set()
        t.join()
        peak[0] = max(peak[0], used())
        out["peak_mib"] = (peak[0] - base) / 2**20


def inputs(tmp: Path, n_cand: int, n_corpus: int) -> tuple[Path, Path, int]:
    """A candidates file and a corpus file from the WordNet world, and how many texts mining them embeds."""
    world = tmp / "wordnet"
    if not (world / "manifest.json").exists():
        cr.build_world("wordnet", world)
    cands = read_candidates(world / "organic_candidates.jsonl")[:n_cand]
    corpus = read_corpus(world / "corpus.jsonl")[:n_corpus]
    cpath, kpath = tmp / "cands.jsonl", tmp / "corpus.jsonl"
    write_candidates(cpath, cands)
    write_corpus(kpath, corpus)
    _, texts, _ = dedupe_corpus(corpus)
    known = set(texts)
    embedded = len(texts) + len(cands) + sum(c.positive not in known for c in cands)
    return cpath, kpath, embedded


def start_ray() -> None:
    import ray

    if os.environ.get("RAY_ADDRESS"):
        ray.init(log_to_driver=False, logging_level=logging.WARNING)
    else:
        ray.init(num_cpus=os.cpu_count(), log_to_driver=False, logging_level=logging.WARNING)


def part_encode(kpath: Path, device: str, batch: int) -> float:
    texts = [d.text for d in read_corpus(kpath)]
    enc = cr.build_encoder(MODEL, device=device)
    enc.encode(texts[: 4 * batch], batch_size=batch)  # warm-up: kernels, allocator
    with peak_memory(device == "cuda") as mem:
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        enc.encode(texts, batch_size=batch)
        if device == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
    rate = len(texts) / seconds
    row("encode", f"MiniLM encode-only, {len(texts)} texts at batch {batch}", f"{rate:,.0f} texts/s")
    row("memory", "encode-only, peak", f"{mem['peak_mib']:,.0f} MiB")
    del enc
    return rate


def part_pipeline(tmp: Path, cpath: Path, kpath: Path, embedded: int, gpu: bool, encode_rate: float) -> None:
    import ray

    t0 = time.perf_counter()
    start_ray()
    started = time.perf_counter() - t0
    try:
        with peak_memory(gpu) as mem:
            t0 = time.perf_counter()
            res = cr.mine(
                cpath, corpus=kpath, out=tmp / "mined.parquet", model=MODEL, config=CFG, actors=1, use_gpu=gpu
            )
            seconds = time.perf_counter() - t0
    finally:
        ray.shutdown()
    n = res.counts["candidates"]
    texts_rate = embedded / seconds
    row("pipeline", "Ray start-up (ray.init)", f"{started:.1f} s")
    row(
        "pipeline",
        f"mine, 1 actor{' on the GPU' if gpu else ''}, {n} candidates x {embedded - n} other texts",
        f"{seconds:.1f} s: {n / seconds:,.0f} candidates/s, {texts_rate:,.0f} texts/s",
    )
    row("pipeline", "pipeline texts/s / encode-only texts/s (goal >= 80%)", f"{100 * texts_rate / encode_rate:.0f}%")
    row("pipeline", f"embedded by: {res.manifest['execution']['corpus_embedded_by']}", "")
    row("memory", "pipeline (driver + actors), peak", f"{mem['peak_mib']:,.0f} MiB")


def part_train(tmp: Path, steps: int, batch_size: int, gpu: bool) -> None:
    import ray

    world = cr.build_world("synthetic", tmp / "synthetic", seed=0)
    opts = dict(ratio="75_15_10", steps=[steps], seed=1, batch_size=batch_size, encoder=TRAIN_MODEL)
    cfg = TrainConfig(**opts)  # type: ignore[arg-type]
    prep = prepare_training(world, cfg)
    ctx = WorkerContext(device=torch.device("cuda" if gpu else "cpu"))
    warm = TrainConfig(**{**opts, "steps": [max(2, steps // 10)]})  # type: ignore[arg-type]
    train_worker(warm, prep.data, tmp / "warm-up", ctx)  # first-run allocations, not timed
    with peak_memory(gpu) as mem_plain:
        train_worker(cfg, prep.data, tmp / "plain", ctx)
    plain = json.loads((tmp / "plain" / "timing.json").read_text())
    start_ray()
    try:
        with peak_memory(gpu) as mem_ray:
            cr.train(world, output_dir=tmp / "ray", use_gpu=gpu, **opts)  # type: ignore[arg-type]
    finally:
        ray.shutdown()
    on_ray = json.loads((tmp / "ray" / "timing.json").read_text())
    where = "GPU" if gpu else "CPU"
    row(
        "train",
        f"plain loop on the {where}, MiniLM full, {steps} steps x {batch_size}",
        f"{plain['samples_per_second']:,.0f} samples/s",
    )
    row("train", f"Ray Train, 1 {where} worker, after start-up", f"{on_ray['samples_per_second']:,.0f} samples/s")
    row(
        "train",
        "Ray Train / plain (goal >= 0.9x)",
        f"{on_ray['samples_per_second'] / plain['samples_per_second']:.2f}x",
    )
    row(
        "memory",
        "training, plain loop / Ray Train, peak",
        f"{mem_plain['peak_mib']:,.0f} / {mem_ray['peak_mib']:,.0f} MiB",
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpu", action="store_true", help="run on the CPU at a small size (a check that it still runs)")
    ap.add_argument("--candidates", type=int, default=None, help="default 6,000 (GPU) or 100 (--cpu)")
    ap.add_argument("--corpus", type=int, default=None, help="default 30,000 (GPU) or 500 (--cpu)")
    ap.add_argument("--steps", type=int, default=None, help="training steps; default 300 (GPU) or 4 (--cpu)")
    ap.add_argument("--batch-size", type=int, default=None, help="training batch; default 64 (GPU) or 8 (--cpu)")
    ap.add_argument("--parts", default="encode,pipeline,train")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    gpu = not args.cpu
    if gpu and not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU here: run with --cpu for the small CPU check")
    n_cand = args.candidates or (6000 if gpu else 100)
    n_corpus = args.corpus or (30000 if gpu else 500)
    steps = args.steps or (300 if gpu else 4)
    batch_size = args.batch_size or (64 if gpu else 8)
    logging.getLogger("crucible_ray").setLevel(logging.WARNING)
    device = "cuda" if gpu else "cpu"
    what = torch.cuda.get_device_name() if gpu else f"CPU only ({platform.processor() or platform.machine()})"
    print(f"machine: {what}, {os.cpu_count()} CPUs, torch {torch.__version__}", flush=True)
    parts = args.parts.split(",")
    with tempfile.TemporaryDirectory() as d:
        tmp = args.workdir or Path(d)
        tmp.mkdir(parents=True, exist_ok=True)
        cpath, kpath, embedded = inputs(tmp, n_cand, n_corpus)
        rate = part_encode(kpath, device, GPU_ENCODE_BATCH if gpu else CPU_ENCODE_BATCH)
        if "pipeline" in parts:
            part_pipeline(tmp, cpath, kpath, embedded, gpu, rate)
        if "train" in parts:
            part_train(tmp, steps, batch_size, gpu)
    print("\n| part | measurement | result |\n|---|---|---|")
    for p, w, v in ROWS:
        print(f"| {p} | {w} | {v} |")


if __name__ == "__main__":
    main()
