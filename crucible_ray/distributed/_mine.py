"""``crucible_ray.mine``: validate a candidate pool on Ray and write results, bundles and a manifest."""

from __future__ import annotations

import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa

from crucible_ray._logging import get_logger
from crucible_ray.data import check_outputs, file_sha256, read_corpus, remove_stale_temporaries, write_json
from crucible_ray.distributed._corpus import (
    CPU_ENCODE_BATCH,
    GPU_ENCODE_BATCH,
    DriverEmbedding,
    driver_embeds,
    share_corpus,
)
from crucible_ray.distributed._resources import plan_actors
from crucible_ray.distributed._session import cluster_cpus_gpus, quiet_ray_environment, ray_session
from crucible_ray.encoders import DEFAULT_ENCODER, Encoder
from crucible_ray.errors import ConfigError
from crucible_ray.mining import DRAW_SCHEME, SCORING, MinerConfig, dedupe_corpus
from crucible_ray.mining._inputs import check_feasible, scan_candidates, skip_done
from crucible_ray.mining._model import ModelSource
from crucible_ray.mining._outputs import assemble
from crucible_ray.mining._workdir import WorkDir, run_key
from crucible_ray.worlds import MINED_ORIGIN

log = get_logger(__name__)

PART_SECONDS = 30.0
#: Candidates per actor call. Validation has a fixed cost per call (about 1 ms on a CPU: a hundred
#: small array operations), which 1,024 candidates amortise; retrieval scores anchors 256 at a time
#: on a CPU whatever the batch, so larger batches cost it nothing.
MINE_BATCH = 1024


@dataclass(frozen=True)
class MiningResult:
    """Where a mining run wrote its outputs, and its manifest (counts, pass rate, histogram)."""

    results: Path
    manifest_path: Path
    manifest: dict[str, Any]

    @property
    def counts(self) -> dict[str, Any]:
        return dict(self.manifest["counts"])


def manifest_path_for(out: Path) -> Path:
    """``mined.parquet`` -> ``mined.manifest.json``."""
    return out.with_name(out.name.removesuffix(out.suffix) + ".manifest.json")


def mine(
    candidates: str | Path,
    *,
    out: str | Path,
    model: Encoder | str | Path | dict[str, Any] = DEFAULT_ENCODER,
    corpus: str | Path | None = None,
    config: MinerConfig | None = None,
    actors: int | None = None,
    batch_size: int = MINE_BATCH,
    use_gpu: bool | None = None,
    gpus_per_actor: float = 1.0,
    address: str | None = None,
    bundles_dir: str | Path | None = None,
    pool: str = "organic",
    holdout_pool: str | None = "organic_holdout",
    st_export: str | Path | None = None,
    st_negatives: int = 3,
    corpus_store: str = "auto",
    encode_batch_size: int | None = None,
    resume: bool = True,
    part_rows: int = 8192,
    manifest_extra: dict[str, Any] | None = None,
    **options: Any,
) -> MiningResult:
    """Mine a candidate pool with multi-lineup validation on Ray Data.

    Args:
        candidates: JSONL or Parquet candidates (``candidate_id``, ``anchor``, ``positive``, optional
            ``negatives`` and ``positive_id``).
        out: the results file (``.parquet``); a manifest ``<stem>.manifest.json`` is written beside it.
        model: a checkpoint (``*.pt``), an encoder spec, or an :class:`Encoder`.
        corpus: JSONL or Parquet ``id``/``text`` rows, for candidates without their own negatives.
        config: a :class:`MinerConfig`; or pass its fields as keyword ``options`` (``lineups=10``...).
        actors: encoder actors (default: one per GPU, else one per 4 CPUs).
        batch_size: candidates per actor call (default ``MINE_BATCH``).
        use_gpu: default: when the cluster has GPUs.
        address: a Ray cluster (``"auto"``); default ``RAY_ADDRESS`` or a local instance.
        bundles_dir: where accepted rows become ``<pool>.jsonl`` and ``<holdout_pool>.jsonl`` bundles
            (default: the folder of ``out``). When it is a world folder, its manifest lists them.
        holdout_pool: ``None`` keeps no holdout (every accepted row goes to ``pool``).
        st_export: also write accepted rows as a sentence-transformers ``anchor, positive, negative_1..n``
            JSONL file with ``st_negatives`` negatives (killers first).
        corpus_store: ``"object"`` (the Ray object store), ``"mmap"`` (a memory-mapped file; needs a
            filesystem shared by all nodes), or ``"auto"`` (mmap above 2 GiB of embeddings).
        part_rows: rows per resumable part file (also written every 30 s).
        resume: reuse the finished parts of an interrupted run with the same inputs and settings.
        encode_batch_size: texts per encoder forward pass (default 32 on CPU, 128 on GPU).
        manifest_extra: more top-level entries for the manifest (``expand`` records its generator).

    Returns:
        :class:`MiningResult` with the paths and the manifest.

    Raises:
        DataError: a bad candidate or corpus row (file, row and field in the message).
        ConfigError: options that cannot work (``min_passes > lineups``, ``lineup_size`` above every
            candidate's negatives, no corpus for candidates without negatives...).

    Example:
        >>> res = cr.mine("world/organic_candidates.jsonl", corpus="world/corpus.jsonl",
        ...               out="mined/organic.parquet", lineups=10, lineup_size=4, min_passes=3)  # doctest: +SKIP
        >>> res.counts["pass_rate"]  # doctest: +SKIP
        0.41
    """
    started = time.monotonic()
    cfg = config if config is not None else MinerConfig.from_options(**options)
    if config is not None and options:
        raise ConfigError(f"give either config= or miner options, not both (got {sorted(options)})")
    out = Path(out)
    if out.suffix.lower() not in (".parquet", ".pq"):
        raise ConfigError(f"--out must be a .parquet file (the results table), but got {out}")
    if st_export is not None and Path(st_export).suffix.lower() != ".jsonl":
        raise ConfigError(f"the sentence-transformers export is JSONL; name it *.jsonl (got {st_export})")
    if corpus_store not in ("auto", "object", "mmap"):
        raise ConfigError(f"corpus_store must be auto, object or mmap, but got {corpus_store!r}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, but got {batch_size}")
    bdir = Path(bundles_dir) if bundles_dir is not None else out.parent
    bundles = {"train": bdir / f"{pool}.jsonl"}
    if holdout_pool is not None:
        bundles["holdout"] = bdir / f"{holdout_pool}.jsonl"
    model_file = model if isinstance(model, Path) or (isinstance(model, str) and model.endswith(".pt")) else None
    mpath = manifest_path_for(out)
    check_outputs(
        outputs={
            "--out": out,
            "the manifest": mpath,
            f"the {pool!r} bundles": bundles["train"],
            f"the {holdout_pool!r} bundles": bundles.get("holdout"),
            "--st-export": st_export,
        },
        inputs={"--candidates": candidates, "--corpus": corpus, "--checkpoint": model_file},
    )
    check_world_targets(bdir, bundles)
    work = WorkDir(out, "")
    work.check()
    # Everything that can be checked is checked before any work: the model, the corpus, every candidate
    # row and whether the options can validate them. Bad input fails here, with nothing written and no
    # Ray started.
    source, driver_encoder = ModelSource.load(model)

    corpus_ids: list[str] = []
    corpus_texts: list[str] = []
    corpus_info: dict[str, Any] | None = None
    if corpus is not None:
        corpus_ids, corpus_texts, dups = dedupe_corpus(read_corpus(corpus))
        corpus_info = {
            "path": str(corpus),
            "sha256": file_sha256(corpus),
            "unique": len(corpus_ids),
            "duplicates": dups,
        }
    # One batch per block: blocks are what the pool hands out, so even a small pool keeps every actor busy.
    shards: list[pa.Table] = []
    scan = scan_candidates(candidates, on_shard=shards.append, shard_rows=max(64, batch_size))
    check_feasible(scan, cfg, has_corpus=corpus is not None)
    cand_sha = file_sha256(candidates)
    key = run_key(
        {
            "config": cfg.model_dump(exclude={"holdout_fraction"}),  # the split happens at assembly
            "draws": DRAW_SCHEME,
            "scoring": SCORING,
            "model": source.fingerprint,
            "candidates": cand_sha,
            "corpus": corpus_info,
        }
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    work = WorkDir(out, key)
    resumed = work.open(resume=resume)
    done = work.done_ids() if resumed else set()
    skipped = 0
    if done:
        log.info("resuming: %d candidates already mined in %s", len(done), work.root)
        shards, skipped = skip_done(shards, done)

    quiet_ray_environment()  # before Ray is imported
    pending = scan.rows - skipped
    needs_corpus = corpus is not None and scan.without_negatives > 0 and pending > 0
    driver_job: DriverEmbedding | None = None
    if needs_corpus and driver_embeds(address, use_gpu):
        # One CPU machine: the driver embeds the corpus now, while Ray and the actors start up.
        driver_job = DriverEmbedding(
            corpus_texts,
            driver_encoder or source.build("cpu"),
            work.path("corpus_embeddings.npy"),
            encode_batch_size=encode_batch_size or CPU_ENCODE_BATCH,
        )
    plan = None
    corpus_by: str | None = None
    if pending:
        with ExitStack() as session:
            if driver_job is not None:
                session.callback(driver_job.cancel)  # on any way out (Ctrl-C, a failure): stop, then wait
            session.enter_context(ray_session(address))
            import ray

            refs = []
            shards.reverse()
            while shards:  # each shard leaves the driver's memory as it enters the object store
                refs.append(ray.put(shards.pop()))
            cpus, gpus = cluster_cpus_gpus()
            plan = plan_actors(cpus, gpus, actors=actors, use_gpu=use_gpu, gpus_per_actor=gpus_per_actor)
            ebs = encode_batch_size or (GPU_ENCODE_BATCH if plan.use_gpu else CPU_ENCODE_BATCH)
            log.info("mining %d candidates (%d already done) with %s", pending, skipped, plan.describe())
            model_ref = ray.put(source)
            corpus_ref = None
            if needs_corpus:
                corpus_by = "driver" if driver_job is not None else "actors"
                corpus_ref = share_corpus(
                    corpus_ids,
                    corpus_texts,
                    (corpus_info or {}).get("duplicates", 0),
                    model_ref=model_ref,
                    plan=plan,
                    work=work,
                    store=corpus_store,
                    encode_batch_size=ebs,
                    driver_job=driver_job,
                )
            try:
                _run(refs, model_ref, corpus_ref, cfg, plan, batch_size, ebs, work, pending, out, part_rows)
            except Exception:
                if driver_job is not None:
                    driver_job.raise_if_failed()  # the actors failed because the corpus did: say why
                raise
            refs.clear()  # release the shards from the object store

    bdir.mkdir(parents=True, exist_ok=True)
    outputs = [out, mpath, *bundles.values(), *([Path(st_export)] if st_export is not None else [])]
    for path in outputs:  # what a run killed while assembling left half-written
        remove_stale_temporaries(path)
    tally = assemble(
        work.parts(),
        out,
        bundles=bundles,
        holdout_fraction=cfg.holdout_fraction,
        st_export=Path(st_export) if st_export is not None else None,
        st_negatives=st_negatives,
    )
    from crucible_ray.provenance import versions

    elapsed = time.monotonic() - started
    manifest = {
        "schema_version": 1,
        "kind": "mining",
        "config": cfg.model_dump(),
        "lineup_draws": DRAW_SCHEME,
        "scoring": SCORING,
        "model": source.describe(),
        "inputs": {
            "candidates": {"path": str(candidates), "sha256": cand_sha, "rows": scan.rows},
            "corpus": corpus_info,
        },
        "counts": tally.summary(cfg.lineups),
        "outputs": {
            "results": out.name,
            "bundles": {k: str(v) for k, v in bundles.items()},
            "st_export": str(st_export) if st_export is not None else None,
        },
        "execution": {
            **(
                {
                    "actors": plan.actors,
                    "num_cpus_per_actor": plan.num_cpus,
                    "num_gpus_per_actor": plan.num_gpus,
                    "device": "cuda" if plan.use_gpu else "cpu",
                }
                if plan is not None
                else {}
            ),
            "batch_size": batch_size,
            "corpus_embedded_by": corpus_by,
            "resumed_candidates": skipped,
            "seconds": round(elapsed, 3),
            "candidates_per_second": round(pending / elapsed, 2) if elapsed > 0 else None,
        },
        **(manifest_extra or {}),
        "versions": versions(),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    write_json(mpath, manifest)
    _register_in_world(bdir, bundles, tally.bundles)
    work.remove()
    c = manifest["counts"]
    log.info(
        "mined %d candidates: %d accepted (pass rate %.1f%%), %d rejected, %d insufficient -> %s",
        c["candidates"],
        c["accepted"],
        100 * c["pass_rate"],
        c["rejected"],
        c["insufficient"],
        out,
    )
    return MiningResult(out, mpath, manifest)


def check_world_targets(folder: Path, bundles: dict[str, Path]) -> None:
    """Refuse bundles that would overwrite a file a world was built with (its legacy pool, corpus...).

    Pools and eval sets that an earlier mining run registered may be replaced by a new one.
    """
    from crucible_ray.worlds import World

    world = World.find(folder) if folder.is_dir() else None
    if world is None:
        return
    for path in bundles.values():
        entry = world.manifest["files"].get(path.stem)
        if entry is not None and entry.get("origin") != MINED_ORIGIN:
            raise ConfigError(
                f"{folder} is a world whose {path.stem!r} ({entry.get('role')}) was not mined: writing "
                f"{path.name} would replace it; choose another pool name (--pool/--holdout-pool) or --bundles-dir"
            )


def _register_in_world(folder: Path, bundles: dict[str, Path], rows: Any) -> None:
    """When the bundles land in a world folder, list them in its manifest (training reads pools from it)."""
    from crucible_ray.worlds import World

    world = World.find(folder)
    if world is None:
        return
    for role, path in bundles.items():
        world = world.register(
            path.stem,
            path,
            role="pool" if role == "train" else "eval",
            rows=rows.get(path.stem, 0),
            origin=MINED_ORIGIN,
        )
    log.info("registered %s in the world manifest of %s", ", ".join(p.name for p in bundles.values()), folder)


def _run(
    refs: list[Any],
    model_ref: Any,
    corpus_ref: Any,
    cfg: MinerConfig,
    plan: Any,
    batch_size: int,
    encode_batch_size: int,
    work: WorkDir,
    pending: int,
    out: Path,
    part_rows: int,
) -> None:
    from crucible_ray.distributed._pipeline import PROGRESS_EVERY_S, run_miner

    buf: list[pa.Table] = []
    state = {"rows": 0, "accepted": 0, "buffered": 0, "flushed_at": time.monotonic(), "logged_at": time.monotonic()}
    t0 = time.monotonic()

    def flush() -> None:
        if buf:
            work.write_part(pa.concat_tables(buf))
            buf.clear()
            state["buffered"] = 0
        state["flushed_at"] = time.monotonic()

    def on_rows(table: pa.Table) -> None:
        buf.append(table)
        state["rows"] += table.num_rows
        state["buffered"] += table.num_rows
        state["accepted"] += int(sum(table.column("accepted").to_pylist()))
        now = time.monotonic()
        if state["buffered"] >= part_rows or now - state["flushed_at"] > PART_SECONDS:
            flush()
        if now - state["logged_at"] > PROGRESS_EVERY_S:
            rate = state["rows"] / (now - t0)
            log.info(
                "mining: %d/%d candidates (%.0f%%), %d accepted, %.0f candidates/s",
                state["rows"],
                pending,
                100 * state["rows"] / max(pending, 1),
                state["accepted"],
                rate,
            )
            state["logged_at"] = now

    run_miner(
        refs,
        model_ref=model_ref,
        corpus_ref=corpus_ref,
        config=cfg.model_dump(),
        plan=plan,
        batch_size=batch_size,
        encode_batch_size=encode_batch_size,
        run_id=f"{out.stem}-{work.key[:8]}",
        on_rows=on_rows,
    )
    flush()
