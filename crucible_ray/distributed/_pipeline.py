"""The Ray Data pipelines of the miner: corpus embedding, then candidate validation.

Both stream through actor pools (``ActorPoolStrategy``); results come back to the driver in input
order (``preserve_order``) so that finished work forms a prefix that an interrupted run can skip.

A lost actor (killed, out of memory, its node gone) is replaced by the driver, not by Ray: the
actors are created with ``max_restarts=0`` and, when one dies, the pipeline starts again over the
input it had not delivered yet. Ray's own restart would rebuild an actor from constructor arguments
that Ray Data keeps in the object store, which Ray cannot guarantee (and says so on every run, as an
error line: ray-project/ray#53727); restarting from the driver needs nothing but the input.
"""

from __future__ import annotations

import logging
import time
import warnings
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
from crucible_ray.mining import CORPUS_CHUNK, MinerConfig

log = get_logger(__name__)

PROGRESS_EVERY_S = 5.0
#: Lost actors in a row (no result delivered in between) before a pipeline gives up.
MAX_ACTOR_LOSSES = 3


def actor_lost(error: BaseException) -> bool:
    """True when ``error`` (or what caused it) says a Ray actor or its node died, not that its code failed
    (an actor whose constructor raised did not get lost: starting another would fail the same way)."""
    from ray.exceptions import NodeDiedError, ObjectLostError, OwnerDiedError, RayActorError

    lost = (RayActorError, NodeDiedError, ObjectLostError, OwnerDiedError)
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, lost):
            return not getattr(cause, "actor_init_failed", False)
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


def _restarts(what: str, run: Callable[[], None], progress: Callable[[], int]) -> None:
    """Call ``run`` (one pass of a pipeline over what is left) until it finishes, again after each lost
    actor; ``progress`` counts the rows delivered so far. More than :data:`MAX_ACTOR_LOSSES` losses
    with no row delivered in between re-raise the last one."""
    losses = 0
    while True:
        before = progress()
        try:
            run()
            return
        except Exception as e:
            if not actor_lost(e):
                raise
            losses = 1 if progress() > before else losses + 1
            if losses > MAX_ACTOR_LOSSES:
                raise
            log.warning("%s: an actor was lost (%s); new actors take the rest", what, type(e).__name__)


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


def _map(ds: Any, actor: type, **kwargs: Any) -> Any:
    """``ds.map_batches(actor, **kwargs)``. Ray 2.60 has no named parameter for ``max_restarts`` yet and
    warns that passing it among the remote arguments is deprecated (for Ray 2.64; the project pins
    2.60): that notice is for Ray's API, not the user, so it is not shown."""
    from ray.util.annotations import RayDeprecationWarning

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated", category=RayDeprecationWarning)
        return ds.map_batches(actor, **kwargs)


def _map_args(plan: ActorPlan, blocks: int) -> dict[str, Any]:
    """The actor pool's arguments; no more actors than input blocks (an actor without a block to take
    would only start, load its model and stop; Ray Data warns about such a pool)."""
    from ray.data import ActorPoolStrategy

    args: dict[str, Any] = {
        "compute": ActorPoolStrategy(size=max(1, min(plan.actors, blocks))),
        "num_cpus": plan.num_cpus,
        "max_restarts": 0,  # the driver replaces lost actors (module docstring)
    }
    if plan.use_gpu:
        args["num_gpus"] = plan.num_gpus
    return args


def embed_corpus(
    texts: list[str],
    model_ref: Any,
    plan: ActorPlan,
    out: Path,
    *,
    encode_batch_size: int,
    shard_rows: int = CORPUS_CHUNK,
) -> Path:
    """Embed ``texts`` with the actor pool into a ``.npy`` file (written atomically, row order kept).

    Each actor call embeds one shard of ``shard_rows`` texts, as the driver embeds a chunk
    (:data:`~crucible_ray.mining.CORPUS_CHUNK`): the vectors are the same bits either way.
    """
    import ray

    done = np.zeros(len(texts), dtype=bool)
    # Each batch carries its row numbers and is written to its rows: any order of arrival is fine.
    with _data_context(preserve_order=False), atomic_path(out) as tmp:
        array: list[np.memmap] = []
        last = [time.monotonic()]

        def run() -> None:
            left = np.flatnonzero(~done)
            shards = [
                pa.table({"row": left[i : i + shard_rows], "text": [texts[j] for j in left[i : i + shard_rows]]})
                for i in range(0, len(left), shard_rows)
            ]
            ds = _map(
                ray.data.from_arrow(shards),
                CrucibleCorpusEncoder,
                batch_size=shard_rows,
                batch_format="numpy",
                fn_constructor_args=([model_ref],),
                fn_constructor_kwargs={
                    "threads": plan.threads,
                    "use_gpu": plan.use_gpu,
                    "encode_batch_size": encode_batch_size,
                },
                **_map_args(plan, len(shards)),
            )
            for batch in ds.iter_batches(batch_format="numpy", batch_size=None):
                emb = np.asarray(batch["embedding"], dtype=np.float32)
                if not array:
                    shape = (len(texts), emb.shape[1])
                    array.append(np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=shape))
                array[0][batch["row"]] = emb
                done[batch["row"]] = True
                if time.monotonic() - last[0] > PROGRESS_EVERY_S:
                    log.info("corpus: embedded %d/%d texts", int(done.sum()), len(texts))
                    last[0] = time.monotonic()

        _restarts("corpus embedding", run, lambda: int(done.sum()))
        if not array:
            raise RuntimeError("corpus embedding produced no rows")
        array[0].flush()
        array.clear()
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

    left = list(shard_refs)
    delivered = [0]  # rows delivered in this pass (an input-order prefix of ``left``)
    total = [0]

    def run() -> None:
        left[:] = _drop_rows(left, delivered[0])
        delivered[0] = 0
        # Results must come back in input order (resume and the output file rely on it): the dataset is
        # created inside the context so that it keeps preserve_order.
        with _data_context(preserve_order=True):
            ds = _map(
                ray.data.from_arrow_refs(left),
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
                **_map_args(plan, len(left)),
            )
            for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
                on_rows(batch)
                delivered[0] += len(batch)  # a pyarrow.Table: its rows
                total[0] += len(batch)

    _restarts("mining", run, lambda: total[0])


def _drop_rows(refs: list[Any], rows: int) -> list[Any]:
    """The shards (object refs of Arrow tables) without their first ``rows`` rows."""
    import ray

    out = list(refs)
    while rows and out:
        table = ray.get(out[0])
        if table.num_rows > rows:
            out[0] = ray.put(table.slice(rows))
            break
        rows -= table.num_rows
        out.pop(0)
    return out
