"""The Ray Data actors of the miner: one encoder per actor, the corpus shared through the object store.

Both classes are callable classes for ``Dataset.map_batches(..., compute=ActorPoolStrategy(...))``.
Their class names are what the Ray dashboard shows (``MapWorker(MapBatches(CrucibleMiner))``).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from crucible_ray.mining import CandidateBatch, CorpusIndex, MinerConfig, ModelSource, await_embeddings, mine_batch

# Where a GPU actor keeps the corpus: on the GPU when it takes at most this share of GPU memory.
_GPU_CORPUS_SHARE = 0.25


def _setup_torch(threads: int) -> None:
    torch.set_num_threads(max(1, threads))


def _device(use_gpu: bool) -> str:
    return "cuda" if use_gpu and torch.cuda.is_available() else "cpu"


class CrucibleCorpusEncoder:
    """Embeds corpus texts: ``{"row", "text"}`` in, ``{"row", "embedding"}`` out."""

    def __init__(self, model: list[Any], *, threads: int, use_gpu: bool, encode_batch_size: int) -> None:
        import ray

        _setup_torch(threads)
        source: ModelSource = ray.get(model[0])
        self.encoder = source.build(_device(use_gpu))
        self.encode_batch_size = encode_batch_size

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        emb = self.encoder.encode([str(t) for t in batch["text"]], batch_size=self.encode_batch_size)
        return {"row": batch["row"], "embedding": emb}


class _MinerMetrics:
    """Counters and a gauge in the Ray dashboard (Prometheus names ``ray_crucible_miner_*``)."""

    def __init__(self, run_id: str) -> None:
        from ray.util.metrics import Counter, Gauge

        tags = ("run",)
        self.tags = {"run": run_id}
        self.seen = Counter("crucible_miner_candidates_seen", "candidates validated", tag_keys=tags)
        self.lineups = Counter("crucible_miner_lineups_evaluated", "negative lineups evaluated", tag_keys=tags)
        self.accepted = Counter("crucible_miner_accepted", "candidates accepted", tag_keys=tags)
        self.pass_rate = Gauge("crucible_miner_pass_rate", "accepted / seen, this actor", tag_keys=tags)
        self._seen = self._accepted = 0

    def record(self, table: pa.Table) -> None:
        n = table.num_rows
        accepted = int(sum(table.column("accepted").to_pylist()))
        lineups = int(sum(table.column("lineups").to_pylist()))
        self._seen += n
        self._accepted += accepted
        self.seen.inc(n, tags=self.tags)
        if lineups:
            self.lineups.inc(lineups, tags=self.tags)
        if accepted:
            self.accepted.inc(accepted, tags=self.tags)
        self.pass_rate.set(self._accepted / self._seen, tags=self.tags)


class CrucibleMiner:
    """Validates candidate batches (Arrow in, result rows out) with :func:`~crucible_ray.mining.mine_batch`."""

    def __init__(
        self,
        model: list[Any],
        corpus: list[Any] | None,
        *,
        config: MinerConfig,
        threads: int,
        use_gpu: bool,
        encode_batch_size: int,
        run_id: str,
    ) -> None:
        import ray

        _setup_torch(threads)
        source: ModelSource = ray.get(model[0])
        self.encoder = source.build(_device(use_gpu))
        self.config = config  # the validated object itself, pickled with the actor's arguments
        self.encode_batch_size = encode_batch_size
        self.corpus: CorpusIndex | None = None
        self.corpus_tensor: torch.Tensor | None = None
        # The embeddings may still be in the making on the driver (a file that appears when done):
        # the actor starts and loads its model meanwhile, and opens the corpus at its first batch.
        self._shared: dict[str, Any] | None = ray.get(corpus[0]) if corpus is not None else None
        self.metrics = _MinerMetrics(run_id)

    def _open_corpus(self, shared: dict[str, Any]) -> None:
        emb = shared["embeddings"] if shared["embeddings"] is not None else await_embeddings(shared["path"])
        self.corpus = CorpusIndex(shared["ids"], shared["texts"], emb, shared["n_duplicates"])
        self.corpus_tensor = self._place(emb)

    def _place(self, emb: np.ndarray) -> torch.Tensor | None:
        device = self.encoder.device
        with warnings.catch_warnings():
            # Object-store and memory-mapped arrays are read-only; the kernel never writes to them.
            warnings.simplefilter("ignore", UserWarning)
            host = torch.from_numpy(emb)
        if device.type == "cpu":
            return host
        free, _ = torch.cuda.mem_get_info(device)
        if emb.nbytes <= _GPU_CORPUS_SHARE * free:
            return host.to(device)
        return None  # too large for the GPU: streamed chunk by chunk from host memory

    def __call__(self, batch: pa.Table) -> pa.Table:
        if self._shared is not None:
            self._open_corpus(self._shared)
            self._shared = None
        out = mine_batch(
            CandidateBatch.from_arrow(batch),
            self.encoder,
            self.config,
            self.corpus,
            corpus_tensor=self.corpus_tensor,
            encode_batch_size=self.encode_batch_size,
        )
        self.metrics.record(out)
        return out
