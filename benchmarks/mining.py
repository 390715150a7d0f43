"""Mining benchmarks, side by side in one run (ratios matter; absolute times depend on the machine).

    python benchmarks/mining.py                  # every part
    python benchmarks/mining.py --parts st       # one part: pipeline, validation, st, encode, memory

- pipeline:   ``crucible_ray.mine`` (the Ray Data pipeline, one actor) vs a plain script that reads the
              same files, runs the same kernel in its own process (``mine_local``) and writes the
              results; default encoder, pools of 6,000 and 60,000 candidates (the WordNet world's organic
              candidates, repeated) against the world's 30,000-text corpus. ``mine`` also writes the
              bundle files and the manifest; the loop does not.
- validation: K=10 lineup validation vs encode + retrieve alone (same batches, paired batch by batch,
              each case in several fresh processes): default encoder on the world's corpus and on a
              100k corpus, MiniLM on a slice.
- st:         sentence-transformers ``mine_hard_negatives`` vs ``crucible_ray.mine`` with MiniLM, same
              candidates and corpus (range_max = N, 8 negatives, torch search); Ray start-up included;
              then the same pool mined again with other miner settings, every vector from the embedding
              cache the first run filled (``mine_hard_negatives`` encodes everything every time).
- memory:     peak memory (driver and all Ray processes) mining 100k candidates against a 100k corpus.
- encode:     MiniLM backbone on the world's candidate texts, in this process with all its torch threads:
              one batch at a time on every thread vs batches in single-threaded streams (one per torch
              thread; the default on a CPU), rounds alternating; and whether both give the one-thread bits.
"""

from __future__ import annotations

import argparse
import gc
import logging
import multiprocessing
import os
import platform
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "token")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("TQDM_DISABLE", "1")
# What `import crucible_ray` sets (docs/mining.md), here before torch is imported below; both sides of
# every comparison run in this process and share it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# No embedding cache unless a part names one: a second run of this script must not find a warm cache.
os.environ["CRUCIBLE_RAY_EMBEDDING_CACHE"] = "off"  # sentence-transformers' progress bars would flood the table

import numpy as np  # noqa: E402
import psutil  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import torch  # noqa: E402

import crucible_ray as cr  # noqa: E402
from crucible_ray.data import Candidate, CorpusDoc, read_candidates, read_corpus, write_candidates, write_corpus  # noqa: E402
from crucible_ray.mining import (  # noqa: E402
    MINE_BATCH,
    CandidateBatch,
    CorpusIndex,
    MinerConfig,
    dedupe_corpus,
    embed_texts,
    mine_batch,
    retrieve,
)

CFG = MinerConfig(lineups=10, lineup_size=4, min_passes=3, neighbors=16)
ROWS: list[tuple[str, str, str]] = []


def row(part: str, what: str, value: str) -> None:
    ROWS.append((part, what, value))
    print(f"  {part:<11} {what:<58} {value}", flush=True)


def world(tmp: Path) -> Path:
    path = tmp / "wordnet"
    if not (path / "manifest.json").exists():
        cr.build_world("wordnet", path)
    return path


def batches(cands: list[Candidate], size: int = MINE_BATCH) -> list[CandidateBatch]:
    return [
        CandidateBatch.from_arrow(pa.Table.from_pylist([c.model_dump() for c in cands[i : i + size]]))
        for i in range(0, len(cands), size)
    ]


def local_loop(cands: list[Candidate], corpus: list[CorpusDoc], spec: str) -> tuple[float, pa.Table]:
    """The same kernel in a plain single-process loop (:func:`crucible_ray.mine_local`), timed."""
    t0 = time.perf_counter()
    out = cr.mine_local(cands, model=spec, corpus=corpus, config=CFG)
    return time.perf_counter() - t0, out


def accepted_ids(table: pa.Table) -> set[str]:
    return {r["candidate_id"] for r in table.select(["candidate_id", "accepted"]).to_pylist() if r["accepted"]}


def write_pool(w: Path, n: int, path: Path) -> None:
    """``n`` candidates: the world's organic candidates, repeated under new ids with a copy marker."""
    base = read_candidates(w / "organic_candidates.jsonl")
    write_candidates(
        path,
        (
            Candidate(candidate_id=f"c{i}", anchor=f"{c.anchor} ({i // len(base)})", positive=c.positive)
            for i, c in ((i, base[i % len(base)]) for i in range(n))
        ),
    )


def loop_run(cands: Path, corpus: Path, out: Path) -> tuple[float, float, pa.Table]:
    """A plain script's run: read both files, mine in this process, write the results. (wall s, CPU-s)."""
    me = psutil.Process()
    cpu0 = sum(me.cpu_times()[:2])
    t0 = time.perf_counter()
    table = cr.mine_local(read_candidates(cands), model=cr.DEFAULT_ENCODER, corpus=read_corpus(corpus), config=CFG)
    pq.write_table(table, out)
    return time.perf_counter() - t0, sum(me.cpu_times()[:2]) - cpu0, table


def part_pipeline(tmp: Path, sizes: list[int]) -> None:
    """Both ways on pools of each size, against the world's corpus; Ray starts once, before the first run.

    The difference between two sizes cancels what a run pays once (actors starting, imports, the
    corpus): the ratio of those differences is the pipeline's cost per candidate against the loop's."""
    import ray

    w = world(tmp)
    corpus = w / "corpus.jsonl"
    pools = {n: tmp / f"pipeline_{n}.parquet" for n in sizes}
    for n, path in pools.items():
        write_pool(w, n, path)
    loops = {n: loop_run(path, corpus, tmp / f"loop_{n}.parquet") for n, path in pools.items()}
    t0 = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), log_to_driver=False, logging_level=logging.WARNING)
    t_start = time.perf_counter() - t0
    runs: dict[int, tuple[float, ProcessTree, pa.Table]] = {}
    for n, path in pools.items():
        with ProcessTree() as tree:
            t0 = time.perf_counter()
            res = cr.mine(path, corpus=corpus, out=tmp / f"ray_{n}" / "mined.parquet", config=CFG, resume=False)
            elapsed = time.perf_counter() - t0
        runs[n] = (elapsed, tree, pq.read_table(res.results))
    ray.shutdown()
    row("pipeline", "Ray start-up (ray.init), once", f"{t_start:.1f} s")
    for n in sizes:
        (t_loop, cpu_loop, local), (t_ray, tree, mined) = loops[n], runs[n]
        same = accepted_ids(mined) == accepted_ids(local)
        row(
            "pipeline",
            f"plain loop: read, mine {n:,} x the world's corpus, write",
            f"{t_loop:.1f} s ({n / t_loop:,.0f}/s)",
        )
        row(
            "pipeline",
            f"crucible_ray.mine, same {n:,} (1 actor, after start-up)",
            f"{t_ray:.1f} s ({n / t_ray:,.0f}/s): {t_ray / t_loop:.2f}x the loop, same accepted set: {same}",
        )
        groups = " / ".join(f"{tree.cpu[g]:.0f}" for g in ("driver", "miners", "ray"))
        row(
            "pipeline",
            f"CPU-s at {n:,}: loop / pipeline driver / miner actor / Ray's processes",
            f"{cpu_loop:.0f} / {groups}",
        )
    if len(sizes) > 1:
        small, big = min(sizes), max(sizes)
        d_loop = loops[big][0] - loops[small][0]
        d_ray = runs[big][0] - runs[small][0]
        row(
            "pipeline",
            f"per extra candidate ({small:,} -> {big:,}): pipeline / loop (target <= 1.5x)",
            f"{d_ray / d_loop:.2f}x ({1e6 * d_ray / (big - small):.0f} vs {1e6 * d_loop / (big - small):.0f} us)",
        )


# (encoder, candidates (None: all), corpus texts (None: the world's), encode batch, repeats, mine batch).
# The hashing encoder makes encoding nearly free, so the world's small corpus is the worst case; the
# 100k corpus shows retrieval growing with the corpus; MiniLM (a slice: CPU encoding is slow) is what a
# real run looks like. The old default batch of 256 is kept for comparison.
VALIDATION_CASES: tuple[tuple[str, int | None, int | None, int, int, int], ...] = (
    (cr.DEFAULT_ENCODER, None, None, 256, 15, MINE_BATCH),
    (cr.DEFAULT_ENCODER, None, None, 256, 15, 256),
    (cr.DEFAULT_ENCODER, None, 100_000, 256, 5, MINE_BATCH),
    ("minilm", 1000, 5000, 32, 3, MINE_BATCH),
)


def part_validation(tmp: Path, processes: int) -> None:
    """Each case in ``processes`` fresh processes: within one process the two sides' retrieval speeds
    can differ by a few percent for the whole run (memory placement), so one process is not enough."""
    w = world(tmp)
    ctx = multiprocessing.get_context("spawn")
    for case in VALIDATION_CASES:
        runs = []
        for _ in range(processes):
            with ProcessPoolExecutor(1, mp_context=ctx) as pool:
                runs.append(pool.submit(_validation_times, w, *case).result())
        spec, n_cand, n_docs, _, _, size = case
        n = runs[0][2]
        base, val = (float(np.median([r[i] for r in runs])) for i in (0, 1))
        over = sorted(100 * (r[1] / r[0] - 1) for r in runs)
        what = f"{spec.split(':')[0]}, {n} candidates x {runs[0][3]} corpus, batches of {size}"
        row("validation", f"encode + retrieve alone ({what})", f"{base:.2f} s")
        row("validation", f"+ K={CFG.lineups} lineups, kills, killers (mine_batch)", f"{val:.2f} s")
        row(
            "validation",
            f"validation overhead, median of {processes} processes (range)",
            f"{float(np.median(over)):+.1f}% ({over[0]:+.1f}..{over[-1]:+.1f}%), "
            f"{float(np.median([1e6 * (r[1] - r[0]) / n for r in runs])):.1f} us per candidate",
        )


def _validation_times(
    w: Path, spec: str, n_cand: int | None, n_docs: int | None, ebs: int, repeats: int, size: int
) -> tuple[float, float, int, int]:
    """Encode + retrieve alone vs ``mine_batch``, paired batch by batch: (base s, validated s, candidates,
    corpus texts)."""
    logging.getLogger("crucible_ray").setLevel(logging.WARNING)
    cands = read_candidates(w / "organic_candidates.jsonl")[:n_cand]
    corpus = read_corpus(w / "corpus.jsonl")
    docs = corpus if n_docs is None else corpus[:n_docs] if n_docs <= len(corpus) else suffixed_corpus(corpus, n_docs)
    enc = cr.build_encoder(spec, device="cpu")
    ids, texts, dups = dedupe_corpus(docs)
    index = CorpusIndex(ids, texts, enc.encode(texts, batch_size=ebs), dups)
    corpus_t = torch.from_numpy(index.embeddings)

    def retrieve_only(b: CandidateBatch) -> None:
        # What a plain top-N miner does: encode, retrieve, read the negatives' texts.
        texts = [*b.anchor, *b.positive]
        rows = np.array([index.row_of_text(t) for t in texts])  # looked up once, as mine_batch does
        e = embed_texts(texts, enc, index, corpus_t, batch_size=ebs, text_rows=rows)
        n = len(b)
        ex = torch.tensor(np.stack([rows[n:], rows[:n], np.full(n, -1)], axis=1))
        _, idx = retrieve(e[:n], corpus_t, k=CFG.neighbors, exclude=ex)
        _ = [[index.texts[j] for j in r if j >= 0] for r in idx.tolist()]

    def validated(b: CandidateBatch) -> None:
        mine_batch(b, enc, CFG, index, corpus_tensor=corpus_t, encode_batch_size=ebs)

    # Both sides on the same batch one right after the other (either first, in turn), every batch
    # `repeats` times; per batch the median, summed. Pairs this close cancel the machine's drifts,
    # which move whole-run timings on a shared VM by more than the difference measured here.
    bs = batches(cands, size)
    times = np.zeros((2, repeats, len(bs)))
    gc.collect()
    gc.disable()
    for r in range(repeats):
        for j, b in enumerate(bs):
            for side in (0, 1) if (r + j) % 2 == 0 else (1, 0):
                t0 = time.perf_counter()
                (retrieve_only, validated)[side](b)
                times[side, r, j] = time.perf_counter() - t0
    gc.enable()
    base, val = np.median(times, axis=1).sum(axis=1)
    return float(base), float(val), len(cands), len(texts)


def part_st(tmp: Path, n_cand: int, n_corpus: int) -> None:
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.util import mine_hard_negatives

    w = world(tmp)
    base_c = read_candidates(w / "organic_candidates.jsonl")
    base_k = read_corpus(w / "corpus.jsonl")
    # Beyond the world's 6,000 x 30,000 its texts repeat, each copy marked with its number (new texts
    # for both sides' encoders, so nothing is embedded once for several copies).
    cands = (
        base_c[:n_cand]
        if n_cand <= len(base_c)
        else [
            Candidate(candidate_id=f"c{i}", anchor=f"{c.anchor} ({i // len(base_c)})", positive=c.positive)
            for i, c in ((i, base_c[i % len(base_c)]) for i in range(n_cand))
        ]
    )
    corpus = base_k[:n_corpus] if n_corpus <= len(base_k) else suffixed_corpus(base_k, n_corpus)
    run = tmp / f"st-{time.time_ns()}"  # a new folder: no embedding or feature cache from an earlier run
    run.mkdir()
    cpath, kpath = run / "st_cands.jsonl", run / "st_corpus.jsonl"
    write_candidates(cpath, cands)
    write_corpus(kpath, corpus)
    model_path = cr.build_encoder("minilm", device="cpu").module.model_path  # the same packaged weights
    me = psutil.Process()
    cpu0 = sum(me.cpu_times()[:2])
    t0 = time.perf_counter()
    st_model = SentenceTransformer(str(model_path), device="cpu")
    ds = Dataset.from_dict({"anchor": [c.anchor for c in cands], "positive": [c.positive for c in cands]})
    mined = mine_hard_negatives(
        ds,
        st_model,
        corpus=[d.text for d in corpus],
        range_max=16,
        num_negatives=8,
        sampling_strategy="top",
        output_format="n-tuple",
        use_faiss=False,
        verbose=False,
        batch_size=32,
    )
    t_st = time.perf_counter() - t0
    cpu_st = sum(me.cpu_times()[:2]) - cpu0
    cache = run / "embedding-cache"  # empty: the first run is cold
    t0 = time.perf_counter()
    with ProcessTree() as tree:
        res = cr.mine(
            cpath, corpus=kpath, out=run / "st_ours.parquet", model="minilm", config=CFG, embedding_cache=str(cache)
        )
    t_ours = time.perf_counter() - t0
    other = CFG.model_copy(update={"lineups": 8, "min_passes": 4, "neighbors": 24})
    t0 = time.perf_counter()
    again = cr.mine(
        cpath, corpus=kpath, out=run / "st_again.parquet", model="minilm", config=other, embedding_cache=str(cache)
    )
    t_again = time.perf_counter() - t0
    row("st", f"sentence-transformers mine_hard_negatives ({n_cand} x {n_corpus})", f"{t_st:.1f} s, {len(mined)} rows")
    row(
        "st",
        "crucible-ray mine, MiniLM, K=10 validated, Ray start-up incl.",
        f"{t_ours:.1f} s, {res.counts['accepted']} accepted",
    )
    row("st", "crucible-ray / sentence-transformers", f"{t_ours / t_st:.2f}x")
    row(
        "st",
        "crucible-ray mine again, other settings (K=8, P=4, N=24), vectors from the embedding cache",
        f"{t_again:.1f} s, {again.counts['accepted']} accepted",
    )
    row("st", "sentence-transformers / crucible-ray re-mine (target >= 3x)", f"{t_st / t_again:.1f}x")
    row("st", "CPU-seconds, sentence-transformers (one process)", f"{cpu_st:.0f}")
    row(
        "st",
        "CPU-seconds, crucible-ray: driver (reads, embeds the corpus) / miner actor / Ray's own processes",
        " / ".join(f"{tree.cpu[g]:.0f}" for g in ("driver", "miners", "ray")),
    )


class ProcessTree:
    """Samples this process and its descendants (GCS, raylet, dashboard, Ray workers) every 0.5 s:
    peak RSS of this process and of all, and CPU-seconds by group: this process (``driver``), the miner
    actors (``miners``) and Ray's other processes (``ray``)."""

    def __init__(self) -> None:
        self.peak_driver = 0
        self.peak_total = 0
        self.cpu = {"driver": 0.0, "miners": 0.0, "ray": 0.0}
        self._used: dict[int, float] = {}  # CPU-seconds of each process at its last sample
        self._stop = threading.Event()
        self._me = psutil.Process()

    def _sample(self, *, prime: bool = False) -> None:
        """``prime``: only note what each process already used (processes from before the block, such
        as a Ray started earlier, count from here on; processes started later count in full)."""
        total = 0
        for p in [self._me, *self._me.children(recursive=True)]:
            try:
                rss = p.memory_info().rss
                used = sum(p.cpu_times()[:2])
                title = " ".join(p.cmdline())
            except psutil.Error:
                continue
            total += rss
            mine = p.pid == self._me.pid
            if mine:
                self.peak_driver = max(self.peak_driver, rss)
            group = "driver" if mine else "miners" if "Crucible" in title else "ray"
            if not prime:
                self.cpu[group] += used - self._used.get(p.pid, used if mine else 0.0)  # new children: all of it
            self._used[p.pid] = used
        self.peak_total = max(self.peak_total, total)

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            self._sample()

    def __enter__(self) -> ProcessTree:
        self._sample(prime=True)
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def suffixed_corpus(base: list[CorpusDoc], n: int) -> list[CorpusDoc]:
    """``n`` corpus texts: ``base`` repeated, each copy's texts suffixed with its copy number."""
    return [
        CorpusDoc(id=f"d{i}", text=f"{d.text} {i // len(base)}")
        for i, d in ((i, base[i % len(base)]) for i in range(n))
    ]


def part_memory(tmp: Path, n: int) -> None:
    w = world(tmp)
    base_c = read_candidates(w / "organic_candidates.jsonl")
    base_k = read_corpus(w / "corpus.jsonl")
    cands = [
        Candidate(candidate_id=f"{i}", anchor=f"{c.anchor} ({i // len(base_c)})", positive=c.positive)
        for i, c in ((i, base_c[i % len(base_c)]) for i in range(n))
    ]
    write_candidates(tmp / "mem_c.parquet", cands)
    write_corpus(tmp / "mem_k.parquet", suffixed_corpus(base_k, n))
    del cands
    with ProcessTree() as tree:
        t0 = time.perf_counter()
        res = cr.mine(tmp / "mem_c.parquet", corpus=tmp / "mem_k.parquet", out=tmp / "mem.parquet", config=CFG)
        elapsed = time.perf_counter() - t0
    row(
        "memory",
        f"{n} candidates x {n} corpus, default encoder",
        f"{elapsed:.0f} s ({n / elapsed:.0f}/s), {res.counts['accepted']} accepted",
    )
    row("memory", "peak RSS, driver", f"{tree.peak_driver / 2**20:.0f} MiB")
    row("memory", "peak RSS, driver + Ray processes (shared pages counted twice)", f"{tree.peak_total / 2**20:.0f} MiB")


def part_encode(tmp: Path, n: int, rounds: int) -> None:
    from crucible_ray.encoders._features import CPU_FEATURE_BATCH
    from crucible_ray.encoders._streams import encode_sorted

    w = world(tmp)
    cands = read_candidates(w / "organic_candidates.jsonl")
    texts = list(dict.fromkeys([c.anchor for c in cands] + [c.positive for c in cands]))[:n]
    enc = cr.build_encoder("minilm", device="cpu")
    module, threads = enc.module, torch.get_num_threads()

    def features(batch: list[str]) -> np.ndarray:
        return module.backbone_embed(batch, enc.device).float().numpy()

    me = psutil.Process()
    took: dict[int, list[tuple[float, float]]] = {1: [], threads: []}
    out: dict[int, np.ndarray] = {}
    for r in range(rounds):
        for streams in (1, threads) if r % 2 == 0 else (threads, 1):  # either side first in turn
            gc.collect()
            cpu0, t0 = sum(me.cpu_times()[:2]), time.perf_counter()
            out[streams] = encode_sorted(texts, features, batch_size=CPU_FEATURE_BATCH, streams=streams)
            took[streams].append((time.perf_counter() - t0, sum(me.cpu_times()[:2]) - cpu0))
    torch.set_num_threads(1)
    one = encode_sorted(texts, features, batch_size=CPU_FEATURE_BATCH)
    torch.set_num_threads(threads)
    wall = {k: float(np.median([t for t, _ in v])) for k, v in took.items()}
    cpu = {k: float(np.median([c for _, c in v])) for k, v in took.items()}
    what = f"{len(texts):,} texts, batches of {CPU_FEATURE_BATCH}, median of {rounds}"
    row("encode", f"one batch at a time on {threads} torch threads ({what})", f"{wall[1]:.1f} s, {cpu[1]:.0f} CPU-s")
    row("encode", f"{threads} single-threaded streams", f"{wall[threads]:.1f} s, {cpu[threads]:.0f} CPU-s")
    row(
        "encode",
        "streams / one batch at a time: wall, CPU-s",
        f"{wall[threads] / wall[1]:.2f}x, {cpu[threads] / cpu[1]:.2f}x",
    )
    same = np.array_equal(out[threads], one)
    row("encode", "streams give the bits of one torch thread", "yes" if same else "NO")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default="pipeline,validation,st,encode,memory")
    ap.add_argument("--pipeline-sizes", default="6000,60000", help="candidate pools of the pipeline part")
    ap.add_argument("--st-candidates", type=int, default=6000)
    ap.add_argument("--st-corpus", type=int, default=30000)
    ap.add_argument("--memory-rows", type=int, default=100_000)
    ap.add_argument("--encode-texts", type=int, default=8000, help="texts of the encode part")
    ap.add_argument("--encode-rounds", type=int, default=4, help="rounds of the encode part (both sides each)")
    ap.add_argument("--validation-processes", type=int, default=3, help="fresh processes per validation case")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    logging.getLogger("crucible_ray").setLevel(logging.WARNING)
    cpu = platform.processor() or platform.machine()
    print(
        f"machine: {os.cpu_count()} CPUs ({cpu}), torch {torch.__version__}, no GPU"
        if not torch.cuda.is_available()
        else f"machine: {torch.cuda.get_device_name()}"
    )
    with tempfile.TemporaryDirectory() as d:
        tmp = args.workdir or Path(d)
        tmp.mkdir(parents=True, exist_ok=True)
        for part in args.parts.split(","):
            if part == "pipeline":
                part_pipeline(tmp, [int(x) for x in args.pipeline_sizes.split(",")])
            elif part == "validation":
                part_validation(tmp, args.validation_processes)
            elif part == "st":
                part_st(tmp, args.st_candidates, args.st_corpus)
            elif part == "memory":
                part_memory(tmp, args.memory_rows)
            elif part == "encode":
                part_encode(tmp, args.encode_texts, args.encode_rounds)
            else:
                raise SystemExit(f"unknown part {part!r}")
    print("\n| part | measurement | result |\n|---|---|---|")
    for p, w, v in ROWS:
        print(f"| {p} | {w} | {v} |")


if __name__ == "__main__":
    main()
