"""The Ray Data pipelines of the miner: corpus embedding, then candidate validation.

Both stream through actor pools (``ActorPoolStrategy``); results come back to the driver in input
order (``preserve_order``) so that finished work forms a prefix that an interrupted run can skip.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from crucible_ray._logging import get_logger
from crucible_ray.data import atomic_path
from crucible_ray.distributed._actors import CrucibleCorpusEncoder, CrucibleMiner
from crucible_ray.distributed._resources import ActorPlan
from crucible_ray.mining import MinerConfig

log = get_logger(__name__)

PROGRESS_EVERY_S = 5.0


@contextmanager
def _data_context(*, preserve_order: bool) -> Iterator[None]:
    """Ray Data settings for the datasets *created* inside the block (a dataset keeps a copy of the
    context current when it was created: settings changed later do not reach it)."""
    from ray.data import DataContext

    ctx = DataContext.get_current()
    saved = (ctx.execution_options.preserve_order, ctx.enable_progress_bars)
    ctx.execution_options.preserve_order = preserve_order
    ctx.enable_progress_bars = False  # progress goes to our log instead (one line every few seconds)
    # Ray Data logs every execution plan to the console at INFO; keep that in its session log file only.
    console = [
        h
        for h in logging.getLogger("ray.data").handlers
        if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
    ]
    levels = [h.level for h in console]
    for h in console:
        h.setLevel(max(h.level, logging.WARNING))
    # ...and its one-time warning that progress bars are off (they are, on purpose).
    progress = logging.getLogger("ray.data._internal.progress")
    progress_level = progress.level
    progress.setLevel(logging.ERROR)
    try:
        yield
    finally:
        ctx.execution_options.preserve_order, ctx.enable_progress_bars = saved
        for h, level in zip(console, levels, strict=True):
            h.setLevel(level)
        progress.setLevel(progress_level)


def _map_args(plan: ActorPlan) -> dict[str, Any]:
    from ray.data import ActorPoolStrategy

    args: dict[str, Any] = {"compute": ActorPoolStrategy(size=plan.actors), "num_cpus": plan.num_cpus}
    if plan.use_gpu:
        args["num_gpus"] = plan.num_gpus
    return args


def embed_corpus(
    texts: list[str], model_ref: Any, plan: ActorPlan, out: Path, *, encode_batch_size: int, shard_rows: int = 4096
) -> Path:
    """Embed ``texts`` with the actor pool into a ``.npy`` file (written atomically, row order kept)."""
    import ray

    shards = [
        pa.table(
            {"row": np.arange(i, min(i + shard_rows, len(texts)), dtype=np.int64), "text": texts[i : i + shard_rows]}
        )
        for i in range(0, len(texts), shard_rows)
    ]
    # Each batch carries its row numbers and is written to its rows: any order of arrival is fine.
    with _data_context(preserve_order=False), atomic_path(out) as tmp:
        ds = ray.data.from_arrow(shards).map_batches(
            CrucibleCorpusEncoder,
            batch_size=shard_rows,
            batch_format="numpy",
            fn_constructor_args=([model_ref],),
            fn_constructor_kwargs={
                "threads": plan.threads,
                "use_gpu": plan.use_gpu,
                "encode_batch_size": encode_batch_size,
            },
            **_map_args(plan),
        )
        done, last = 0, time.monotonic()
        array: np.memmap | None = None
        for batch in ds.iter_batches(batch_format="numpy", batch_size=None):
            emb = np.asarray(batch["embedding"], dtype=np.float32)
            if array is None:
                array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(texts), emb.shape[1]))
            array[batch["row"]] = emb
            done += len(emb)
            if time.monotonic() - last > PROGRESS_EVERY_S:
                log.info("corpus: embedded %d/%d texts", done, len(texts))
                last = time.monotonic()
        if array is None:
            raise RuntimeError("corpus embedding produced no rows")
        array.flush()
        del array
    return out


def run_miner(
    shard_refs: list[Any],
    *,
    model_ref: Any,
    corpus_ref: Any | None,
    config: MinerConfig,
    plan: ActorPlan,
    batch_size: int,
    encode_batch_size: int,
    run_id: str,
    on_rows: Callable[[pa.Table], None],
) -> None:
    """Stream the candidate shards through the miner actors; ``on_rows`` gets result tables in input order."""
    import ray

    # Results must come back in input order (resume and the output file rely on it): the dataset is
    # created inside the context so that it keeps preserve_order.
    with _data_context(preserve_order=True):
        ds = ray.data.from_arrow_refs(shard_refs).map_batches(
            CrucibleMiner,
            batch_size=batch_size,
            batch_format="pyarrow",
            fn_constructor_args=([model_ref], None if corpus_ref is None else [corpus_ref]),
            fn_constructor_kwargs={
                "config": config,
                "threads": plan.threads,
                "use_gpu": plan.use_gpu,
                "encode_batch_size": encode_batch_size,
                "run_id": run_id,
            },
            **_map_args(plan),
        )
        for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
            on_rows(batch)
