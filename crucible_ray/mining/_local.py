"""``mine_local``: the miner in one process, without Ray (the same kernel over the same inputs).

:func:`crucible_ray.mine` streams candidate batches through Ray actors that each call
:func:`~crucible_ray.mining.mine_batch`; this runs the very same calls in a plain loop. Every verdict
is a pure function of the candidate, its negatives and the seed (docs/mining.md), so the accepted set
is the one the Ray run writes. Use it for small inputs, tests and benchmarks.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa

from crucible_ray.data import Candidate, CorpusDoc, read_corpus
from crucible_ray.encoders import DEFAULT_ENCODER, Encoder, cache_config, with_embedding_cache
from crucible_ray.mining._batch import RESULT_SCHEMA, CandidateBatch, mine_batch
from crucible_ray.mining._config import MinerConfig
from crucible_ray.mining._corpus import CorpusIndex, dedupe_corpus
from crucible_ray.mining._execution import CPU_ENCODE_BATCH, GPU_ENCODE_BATCH, MINE_BATCH
from crucible_ray.mining._inputs import CANDIDATE_SCHEMA, CandidateScan, check_feasible, scan_candidates
from crucible_ray.mining._model import ModelSource


def mine_local(
    candidates: str | Path | Iterable[Candidate],
    *,
    model: Encoder | str | Path | dict[str, Any] = DEFAULT_ENCODER,
    corpus: str | Path | Iterable[CorpusDoc] | None = None,
    config: MinerConfig | None = None,
    batch_size: int = MINE_BATCH,
    encode_batch_size: int | None = None,
    embedding_cache: bool | str | Path = False,
    **options: Any,
) -> pa.Table:
    """Validate candidates in this process, batch by batch, exactly as the Ray actors of ``mine`` do.

    Args:
        candidates: a JSONL/Parquet candidates file, or :class:`~crucible_ray.data.Candidate` objects.
        model: a checkpoint (``*.pt``), an encoder spec, or an :class:`Encoder` (used where it is).
        corpus: a corpus file or :class:`~crucible_ray.data.CorpusDoc` objects, for candidates without
            their own negatives (de-duplicated by normalised text, as ``mine`` does).
        config: a :class:`MinerConfig`; or pass its fields as keyword ``options``.
        batch_size: candidates per :func:`~crucible_ray.mining.mine_batch` call.
        encode_batch_size: texts per forward pass (default 32 on CPU, 128 on GPU).
        embedding_cache: ``True`` (the default cache), a folder, or ``False`` (default): as
            :func:`~crucible_ray.evaluate`'s (docs/mining.md, "The embedding cache").

    Returns:
        One result row per candidate (:data:`~crucible_ray.mining.RESULT_SCHEMA`), in input order:
        the rows of ``mine``'s results file, without writing anything.

    Raises:
        DataError: a bad candidate or corpus row. ConfigError: options that cannot work (as ``mine``).

    Example:
        >>> rows = mine_local("world/organic_candidates.jsonl", corpus="world/corpus.jsonl",
        ...                   lineups=10, lineup_size=4, min_passes=3)  # doctest: +SKIP
        >>> sum(rows.column("accepted").to_pylist())  # doctest: +SKIP
        412
    """
    from crucible_ray.errors import ConfigError

    if config is not None and options:
        raise ConfigError(f"give either config= or miner options, not both (got {sorted(options)})")
    cfg = config if config is not None else MinerConfig.from_options(**options)
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, but got {batch_size}")
    shards: list[pa.Table] = []
    scan = _scan(candidates, shards, batch_size)
    check_feasible(scan, cfg, has_corpus=corpus is not None)
    encoder = model if isinstance(model, Encoder) else _load(model)
    if embedding_cache is not False:
        where = None if embedding_cache is True else embedding_cache
        encoder = with_embedding_cache(encoder, cache_config(where))
    ebs = encode_batch_size or (GPU_ENCODE_BATCH if encoder.device.type == "cuda" else CPU_ENCODE_BATCH)
    index = None
    if corpus is not None and scan.without_negatives:
        docs = read_corpus(corpus) if isinstance(corpus, (str, Path)) else list(corpus)
        ids, texts, dups = dedupe_corpus(docs)
        index = CorpusIndex(ids, texts, encoder.encode(texts, batch_size=ebs), dups)
    tables = [
        mine_batch(CandidateBatch.from_arrow(shard.slice(i, batch_size)), encoder, cfg, index, encode_batch_size=ebs)
        for shard in shards
        for i in range(0, shard.num_rows, batch_size)
    ]
    return pa.concat_tables(tables) if tables else RESULT_SCHEMA.empty_table()


def _load(model: str | Path | dict[str, Any]) -> Encoder:
    source, encoder = ModelSource.load(model)
    return encoder if encoder is not None else source.build("cpu")


def _scan(candidates: str | Path | Iterable[Candidate], shards: list[pa.Table], batch_size: int) -> CandidateScan:
    """Validated candidates as Arrow shards, and what they hold (as ``mine``'s input scan)."""
    if isinstance(candidates, (str, Path)):
        return scan_candidates(candidates, on_shard=shards.append, shard_rows=batch_size)
    rows = list(candidates)
    given = [len(c.negatives) for c in rows if c.negatives is not None]
    for i in range(0, len(rows), batch_size):
        shards.append(pa.Table.from_pylist([c.model_dump() for c in rows[i : i + batch_size]], schema=CANDIDATE_SCHEMA))
    return CandidateScan("candidates", len(rows), 0, len(given), len(rows) - len(given), max(given, default=0))
