"""``crucible_ray.mine``: validate a candidate pool on Ray and write results, bundles and a manifest.

A run is three named steps (docs/mining.md "The Python API"):
:func:`~crucible_ray.mining.plan_mining` (check everything, take the resume key; no Ray, no writes),
:func:`~crucible_ray.distributed.execute_mining` (the Ray Data run, resumable) and
:func:`~crucible_ray.mining.finalise_mining` (results, bundles, manifest, world registration).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from crucible_ray.distributed._execute import execute_mining
from crucible_ray.encoders import DEFAULT_ENCODER, Encoder
from crucible_ray.errors import ConfigError
from crucible_ray.mining import (
    MINE_BATCH,
    MinerConfig,
    MiningExecution,
    MiningResult,
    check_world_targets,
    finalise_mining,
    manifest_path_for,
    plan_mining,
)

__all__ = ["MINE_BATCH", "MiningResult", "check_world_targets", "manifest_path_for", "mine"]


def mine(
    candidates: str | Path | Any,
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
    embedding_cache: str | Path | None = None,
    embedding_cache_size: str | int | None = None,
    manifest_extra: dict[str, Any] | None = None,
    execution: MiningExecution | None = None,
    columns: dict[str, str] | None = None,
    **options: Any,
) -> MiningResult:
    """Mine a candidate pool with multi-lineup validation on Ray Data.

    Args:
        candidates: JSONL or Parquet candidates (``candidate_id``, ``anchor``, ``positive``, optional
            ``negatives``, ``positive_id`` and ``other_positives``); or a pandas ``DataFrame`` or a
            ``datasets.Dataset`` with ``anchor`` and ``positive`` columns (else its first two, as
            sentence-transformers' ``mine_hard_negatives`` takes them; ``columns`` maps other names), kept
            as ``<out stem>.candidates.parquet`` beside ``out`` (the run's input, for resume and the
            manifest). The accepted rows come back in sentence-transformers layouts from
            :meth:`MiningResult.sentence_transformers`.
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
        embedding_cache: the folder of the embedding cache, or ``"off"`` (default:
            ``$CRUCIBLE_RAY_EMBEDDING_CACHE``, else ``~/.cache/crucible-ray/embeddings``): texts the model
            embedded in an earlier run (mine, expand, eval) are not embedded again (docs/mining.md).
        embedding_cache_size: the cache's size limit, e.g. ``"2GB"`` (default 8 GB); the least recently
            read entries are deleted first.
        manifest_extra: more top-level entries for the manifest (``expand`` records its generator).
        execution: the execution settings as one :class:`~crucible_ray.mining.MiningExecution`
            (``actors`` ... ``part_rows``); instead of their keywords, not with them.

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
    cfg = config if config is not None else MinerConfig.from_options(**options)
    if config is not None and options:
        raise ConfigError(f"give either config= or miner options, not both (got {sorted(options)})")
    given = {
        "actors": actors,
        "batch_size": batch_size,
        "use_gpu": use_gpu,
        "gpus_per_actor": gpus_per_actor,
        "address": address,
        "corpus_store": corpus_store,
        "encode_batch_size": encode_batch_size,
        "resume": resume,
        "part_rows": part_rows,
        "embedding_cache": None if embedding_cache is None else str(embedding_cache),
        "embedding_cache_size": None if embedding_cache_size is None else str(embedding_cache_size),
    }
    execution = _execution(execution, given)
    if not isinstance(candidates, (str, Path)):
        candidates = _candidates_file(candidates, Path(out), columns)
    elif columns:
        raise ConfigError("columns= maps the columns of a DataFrame or Dataset; a candidates file has its own names")
    plan = plan_mining(
        candidates,
        out=out,
        model=model,
        corpus=corpus,
        config=cfg,
        execution=execution,
        bundles_dir=bundles_dir,
        pool=pool,
        holdout_pool=holdout_pool,
        st_export=st_export,
        st_negatives=st_negatives,
        manifest_extra=manifest_extra,
    )
    record = execute_mining(plan)
    return finalise_mining(plan, record)


def _candidates_file(table: Any, out: Path, columns: dict[str, str] | None) -> Path:
    """Write an in-memory candidates table beside ``out`` (atomically; unchanged content keeps its hash)."""
    from crucible_ray.data import write_candidates
    from crucible_ray.worlds import read_candidate_table

    rows = read_candidate_table(table, columns)
    path = out.with_name(f"{out.stem}.candidates.parquet")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_candidates(path, rows)
    return path


def _execution(execution: MiningExecution | None, given: dict[str, Any]) -> MiningExecution:
    """The execution config: ``execution=``, or one built from the execution keywords (not both)."""
    if execution is None:
        return MiningExecution.from_options(**given)
    changed = sorted(k for k, v in given.items() if v != _KEYWORD_DEFAULTS[k])
    if changed:
        raise ConfigError(f"give either execution= or execution keywords, not both (got {changed})")
    return execution


# The keyword defaults of ``mine``/``expand`` are MiningExecution's own (one place to change them).
_KEYWORD_DEFAULTS: dict[str, Any] = {name: f.default for name, f in MiningExecution.model_fields.items()}
