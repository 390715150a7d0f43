"""How the miner actors get the corpus embeddings.

Across a cluster, or with GPUs, an actor pool embeds the corpus (:func:`~._pipeline.embed_corpus`)
and the result is shared through the object store (or a memory-mapped file for very large corpora).

On a single CPU machine the driver embeds the corpus itself, in a background thread that starts
before Ray does (:class:`DriverEmbedding`): Ray's start-up and the miner actors' model loading
happen meanwhile instead of one after the other, and the actors memory-map the finished file (same
machine, same disk) when their first batch arrives.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from crucible_ray._logging import get_logger
from crucible_ray.data import atomic_write
from crucible_ray.encoders import Encoder
from crucible_ray.mining import (
    CORPUS_CHUNK,
    CPU_ENCODE_BATCH,
    GPU_ENCODE_BATCH,
    WorkDir,
    embed_corpus_to_file,
    failure_note,
)

log = get_logger(__name__)

OBJECT_STORE_CORPUS_LIMIT = 2 * 1024**3  # larger corpora are memory-mapped ("auto")
__all__ = [
    "CPU_ENCODE_BATCH",
    "GPU_ENCODE_BATCH",
    "OBJECT_STORE_CORPUS_LIMIT",
    "DriverEmbedding",
    "driver_embeds",
    "share_corpus",
]


def driver_embeds(address: str | None, use_gpu: bool | None) -> bool:
    """True when the run happens on this one machine without GPUs: the driver embeds the corpus.

    Decided before Ray starts: a new local instance is this machine; a running one counts when it
    has a single node, on this machine (the actors read the driver's file), and no GPUs.
    """
    if use_gpu:
        return False
    if "ray" in sys.modules:
        import ray

        if ray.is_initialized():
            if ray.util.client.ray.is_connected():  # Ray Client: the cluster is elsewhere
                return False
            alive = [n for n in ray.nodes() if n.get("Alive")]
            here = ray.util.get_node_ip_address()
            return (
                len(alive) == 1
                and alive[0].get("NodeManagerAddress") == here
                and not ray.cluster_resources().get("GPU", 0)
            )
    if address or os.environ.get("RAY_ADDRESS"):
        return False
    import torch

    return not torch.cuda.is_available()


class DriverEmbedding:
    """The corpus embedded into a ``.npy`` file by a background thread of the driver.

    The file appears (atomically) when it is complete; on failure a one-line note appears beside it
    instead (:func:`~crucible_ray.mining.failure_note`), which the waiting actors report.
    """

    def __init__(
        self,
        texts: list[str],
        encoder: Encoder,
        path: Path,
        *,
        encode_batch_size: int,
        feature_cache: Path | None = None,
    ) -> None:
        self.path = path
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        failure_note(path).unlink(missing_ok=True)
        if path.is_file():  # an interrupted run embedded it already
            return
        self._thread = threading.Thread(
            target=self._run,
            args=(texts, encoder, encode_batch_size, feature_cache),
            name="crucible-corpus",
            daemon=True,
        )
        self._thread.start()

    def _run(self, texts: list[str], encoder: Encoder, encode_batch_size: int, feature_cache: Path | None) -> None:
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(len(os.sched_getaffinity(0)))
        started = time.monotonic()
        log.info("embedding the corpus on the driver: %d unique texts", len(texts))
        try:
            embed_corpus_to_file(
                texts,
                encoder,
                self.path,
                encode_batch_size=encode_batch_size,
                chunk=CORPUS_CHUNK,
                stop=self._stop,
                feature_cache=feature_cache,
            )
            log.info("corpus embedded in %.1f s", time.monotonic() - started)
        except BaseException as e:  # noqa: BLE001 - reported to the actors and re-raised by the driver
            self.error = e
            if self._stop.is_set():
                return  # cancelled: nobody is waiting
            reason = " ".join(str(e).split()) or type(e).__name__
            with atomic_write(failure_note(self.path)) as f:
                f.write(reason + "\n")
        finally:
            torch.set_num_threads(threads)

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join()

    def cancel(self) -> None:
        """Stop at the next chunk and wait for the thread (a no-op once it has finished)."""
        self._stop.set()
        self.join()

    def raise_if_failed(self) -> None:
        """Re-raise the thread's error in the driver, unless the thread was cancelled."""
        self.join()
        if self.error is not None and not self._stop.is_set():
            raise self.error


def share_corpus(
    ids: list[str],
    texts: list[str],
    n_duplicates: int,
    *,
    model_ref: Any,
    plan: Any,
    work: WorkDir,
    store: str,
    encode_batch_size: int,
    driver_job: DriverEmbedding | None,
) -> Any:
    """An object-store reference to what the miner actors need to open the corpus."""
    import numpy as np
    import ray

    from crucible_ray.distributed._pipeline import embed_corpus

    npy = work.path("corpus_embeddings.npy")
    shared: dict[str, Any] = {"ids": ids, "texts": texts, "n_duplicates": n_duplicates}
    if driver_job is not None and store != "object":
        # Same machine: the actors wait for the file the driver thread is writing and map it.
        return ray.put({**shared, "embeddings": None, "path": str(npy.resolve())})
    if driver_job is not None:
        driver_job.raise_if_failed()  # the object store was asked for: wait for the embeddings
    elif not npy.is_file():
        log.info("embedding the corpus with %s: %d unique texts", plan.describe(), len(texts))
        embed_corpus(texts, model_ref, plan, npy, encode_batch_size=encode_batch_size)
    emb = np.load(npy, mmap_mode="r", allow_pickle=False)
    use_mmap = store == "mmap" or (store == "auto" and emb.nbytes > OBJECT_STORE_CORPUS_LIMIT)
    return ray.put(
        {
            **shared,
            "embeddings": None if use_mmap else np.ascontiguousarray(emb),
            "path": str(npy.resolve()) if use_mmap else None,
        }
    )
