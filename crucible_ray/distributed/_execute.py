"""Step 2 of a mining run, *execute*: the Ray Data run over a plan, resumable part by part.

The candidates the run's work folder already holds (an interrupted run with the same resume key) are
skipped; the rest stream through the miner actors in input order and are written as part files.
Nothing is assembled here: :func:`~crucible_ray.mining.finalise_mining` does that from the parts.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pyarrow as pa

from crucible_ray._logging import get_logger
from crucible_ray.distributed._corpus import (
    CPU_ENCODE_BATCH,
    GPU_ENCODE_BATCH,
    DriverEmbedding,
    driver_embeds,
    share_corpus,
)
from crucible_ray.distributed._resources import ActorPlan, plan_actors
from crucible_ray.distributed._session import cluster_cpus_gpus, quiet_ray_environment, ray_session
from crucible_ray.encoders import CachingEncoder, feature_table, is_frozen_backbone
from crucible_ray.mining import ExecutionRecord, MiningInputs, MiningPlan, ModelSource, skip_done

log = get_logger(__name__)

#: A part file is written at least this often (seconds), whatever ``part_rows``.
PART_SECONDS = 30.0


def execute_mining(plan: MiningPlan) -> ExecutionRecord:
    """Mine the plan's candidates that no earlier run finished, on Ray, into the work folder's parts.

    Starts Ray only when there is work left. On one CPU machine the driver embeds the corpus in a
    thread while Ray and the actors start (docs/mining.md "Running it on Ray"). Consumes the plan's shards.
    """
    ex = plan.execution
    inputs = plan.inputs
    shards = inputs.take_shards()
    plan.outputs.results.parent.mkdir(parents=True, exist_ok=True)
    work = plan.work
    resumed = work.open(resume=ex.resume)
    done = work.done_ids() if resumed else set()
    skipped = 0
    if done:
        log.info("resuming: %d candidates already mined in %s", len(done), work.root)
        shards, skipped = skip_done(shards, done)

    quiet_ray_environment()  # before Ray is imported
    pending = inputs.scan.rows - skipped
    needs_corpus = inputs.corpus is not None and inputs.scan.without_negatives > 0 and pending > 0
    driver_job: DriverEmbedding | None = None
    one_machine = driver_embeds(ex.address, ex.use_gpu)
    model = inputs.model
    if pending:
        model = _with_cached_features(inputs, shards, encode=one_machine)
    if needs_corpus and one_machine:
        # One CPU machine: the driver embeds the corpus now, while Ray and the actors start up.
        driver_job = DriverEmbedding(
            inputs.corpus_texts,
            inputs.driver_encoder or inputs.model.build("cpu"),
            work.path("corpus_embeddings.npy"),
            encode_batch_size=ex.encode_batch_size or CPU_ENCODE_BATCH,
            feature_cache=Path(inputs.corpus["path"]).parent if inputs.corpus else None,  # shared with training
        )
    actors: ActorPlan | None = None
    corpus_by: str | None = None
    if pending:
        with ExitStack() as session:
            if driver_job is not None:
                session.callback(driver_job.cancel)  # on any way out (Ctrl-C, a failure): stop, then wait
            session.enter_context(ray_session(ex.address))
            import ray

            refs = []
            shards.reverse()
            while shards:  # each shard leaves the driver's memory as it enters the object store
                refs.append(ray.put(shards.pop()))
            cpus, gpus = cluster_cpus_gpus()
            actors = plan_actors(cpus, gpus, actors=ex.actors, use_gpu=ex.use_gpu, gpus_per_actor=ex.gpus_per_actor)
            ebs = ex.encode_batch_size or (GPU_ENCODE_BATCH if actors.use_gpu else CPU_ENCODE_BATCH)
            log.info("mining %d candidates (%d already done) with %s", pending, skipped, actors.describe())
            model_ref = ray.put(model)
            corpus_ref = None
            if needs_corpus:
                corpus_by = "driver" if driver_job is not None else "actors"
                corpus_ref = share_corpus(
                    inputs.corpus_ids,
                    inputs.corpus_texts,
                    (inputs.corpus or {}).get("duplicates", 0),
                    model_ref=model_ref,
                    plan=actors,
                    work=work,
                    store=ex.corpus_store,
                    encode_batch_size=ebs,
                    driver_job=driver_job,
                )
            try:
                _run(plan, refs, model_ref, corpus_ref, actors, ebs, pending)
            except Exception:
                if driver_job is not None:
                    driver_job.raise_if_failed()  # the actors failed because the corpus did: say why
                raise
            refs.clear()  # release the shards from the object store
    pool = (
        {
            "actors": actors.actors,
            "num_cpus_per_actor": actors.num_cpus,
            "num_gpus_per_actor": actors.num_gpus,
            "device": "cuda" if actors.use_gpu else "cpu",
        }
        if actors is not None
        else {}
    )
    return ExecutionRecord(pending=pending, resumed=skipped, actors=pool, corpus_embedded_by=corpus_by)


def _with_cached_features(inputs: MiningInputs, shards: list[pa.Table], *, encode: bool) -> ModelSource:
    """A frozen-backbone model carries the backbone features of the candidates' texts to its actors.

    The cache is the one training uses, beside the corpus (or the candidates file): texts it lacks are
    embedded here when the driver shares the machine with the actors (``encode``), and are left to
    the actors otherwise (a GPU cluster embeds faster than its driver).
    """
    spec = inputs.model.spec
    if spec.get("kind") != "sentence-transformer" or spec.get("mode") != "frozen-head":
        return inputs.model  # decided from the spec: no model is loaded for it
    encoder = inputs.driver_encoder or inputs.model.build("cpu")
    if not is_frozen_backbone(encoder):
        return inputs.model
    texts: list[str] = []
    for table in shards:  # as the backbone sees them: each with its role's prompt
        texts.extend(encoder.prompted(table.column("anchor").to_pylist(), "query"))
        texts.extend(encoder.prompted(table.column("positive").to_pylist(), "document"))
        if "negatives" in table.column_names:
            negatives = [t for negs in table.column("negatives").to_pylist() if negs for t in negs]
            texts.extend(encoder.prompted(negatives, "document"))
    if isinstance(encoder, CachingEncoder):  # texts whose embeddings are cached need no backbone features
        found = encoder.cache.contains(texts)
        texts = [t for t, hit in zip(texts, found, strict=True) if not hit]
        if not texts:
            return inputs.model
    root = Path(inputs.corpus["path"]).parent if inputs.corpus else Path(inputs.candidates).parent
    try:
        table = feature_table(encoder, texts, root, encode=encode).subset(texts)
    except OSError as e:  # a read-only data folder: the actors embed the texts themselves
        log.warning("no feature cache in %s (%s): the actors embed the candidates", root, e.strerror or e)
        return inputs.model
    log.info("the actors take %d of %d candidate texts from the feature cache", len(table), len(set(texts)))
    return inputs.model.with_features(table)


def _run(
    plan: MiningPlan,
    refs: list[Any],
    model_ref: Any,
    corpus_ref: Any,
    actors: ActorPlan,
    encode_batch_size: int,
    pending: int,
) -> None:
    """Stream the shards through the miner actors; buffer result rows into part files of the work folder."""
    from crucible_ray.distributed._pipeline import PROGRESS_EVERY_S, run_miner

    work, part_rows = plan.work, plan.execution.part_rows
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
        config=plan.config,
        plan=actors,
        batch_size=plan.execution.batch_size,
        encode_batch_size=encode_batch_size,
        run_id=f"{plan.outputs.results.stem}-{work.key[:8]}",
        on_rows=on_rows,
    )
    flush()
