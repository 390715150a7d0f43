"""Step 1 of a mining run, *plan*: every input read and checked, the resume key taken; no Ray, no writes.

A run is three named steps (docs/mining.md "The Python API"): :func:`plan_mining` (this module),
``execute_mining`` (the Ray Data run, in :mod:`crucible_ray.distributed`) and
:func:`~crucible_ray.mining.finalise_mining` (results, bundles, manifest, world registration).
Bad input fails here, with nothing written and no Ray started.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from crucible_ray.data import check_outputs, file_sha256, read_corpus
from crucible_ray.encoders import Encoder, cache_config, with_embedding_cache
from crucible_ray.errors import ConfigError, MiningError
from crucible_ray.mining._config import MinerConfig
from crucible_ray.mining._corpus import dedupe_corpus
from crucible_ray.mining._execution import MiningExecution
from crucible_ray.mining._inputs import CandidateScan, check_feasible, scan_candidates
from crucible_ray.mining._kernel import SCORING
from crucible_ray.mining._lineups import DRAW_SCHEME
from crucible_ray.mining._model import ModelSource
from crucible_ray.mining._workdir import WorkDir, run_key
from crucible_ray.mining._world import check_world_targets


def manifest_path_for(out: Path) -> Path:
    """``mined.parquet`` -> ``mined.manifest.json``."""
    return out.with_name(out.name.removesuffix(out.suffix) + ".manifest.json")


@dataclass(frozen=True)
class MiningOutputs:
    """Where a run writes: the results table, its manifest, the bundles by role, the optional export."""

    results: Path
    manifest: Path
    bundles_dir: Path
    bundles: dict[str, Path]  # "train" and, unless no holdout is kept, "holdout"
    st_export: Path | None
    st_negatives: int

    def files(self) -> list[Path]:
        """Every file the run writes at the end."""
        return [self.results, self.manifest, *self.bundles.values(), *([self.st_export] if self.st_export else [])]


@dataclass(frozen=True)
class MiningInputs:
    """The validated inputs: the candidate shards (in file order), the de-duplicated corpus, the model."""

    candidates: str | Path
    candidates_sha256: str
    scan: CandidateScan
    model: ModelSource
    corpus_ids: list[str]
    corpus_texts: list[str]
    corpus: dict[str, Any] | None  # path, sha256, unique, duplicates (None without a corpus)
    shards: list[pa.Table] = field(repr=False)
    #: The CPU encoder the model check built, reused when the driver embeds the corpus (``None`` for
    #: an :class:`Encoder` given by the caller, which is never moved or shared).
    driver_encoder: Encoder | None = field(default=None, repr=False)

    def take_shards(self) -> list[pa.Table]:
        """Hand the shards over (the plan keeps none): each can then leave the driver's memory as it
        enters Ray's object store. A plan is executed once.

        Raises:
            MiningError: the plan was executed already (plan the run again to retry it: the work
                folder keeps what was mined).
        """
        if not self.shards and self.scan.rows:
            raise MiningError("this mining plan was executed already; plan the run again to retry or resume it")
        shards = list(self.shards)
        self.shards.clear()
        return shards


@dataclass(frozen=True)
class MiningPlan:
    """Everything a mining run needs, checked: what it computes, how it runs, from what, to where.

    ``key`` is the resume key: a sha256 over what determines the results (the miner config without
    the output split, the draw scheme and scoring, the model's fingerprint, the inputs' hashes).
    ``execution`` is not part of it: more actors or another batch size reuse an interrupted run.
    """

    config: MinerConfig
    execution: MiningExecution
    inputs: MiningInputs
    outputs: MiningOutputs
    key: str
    manifest_extra: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)  # when planning began (the manifest's seconds)

    @property
    def work(self) -> WorkDir:
        """The run's work folder (``.<results name>.work``), keyed by :attr:`key`."""
        return WorkDir(self.outputs.results, self.key)


def resume_key(config: MinerConfig, model: ModelSource, candidates_sha256: str, corpus: dict[str, Any] | None) -> str:
    """The resume key of a run (see :class:`MiningPlan`); the output split is not part of it."""
    return run_key(
        {
            "config": config.model_dump(exclude={"holdout_fraction"}),  # the split happens at assembly
            "draws": DRAW_SCHEME,
            "scoring": SCORING,
            "model": model.fingerprint,
            "candidates": candidates_sha256,
            "corpus": corpus,
        }
    )


def plan_mining(
    candidates: str | Path,
    *,
    out: str | Path,
    model: Encoder | str | Path | dict[str, Any],
    corpus: str | Path | None = None,
    config: MinerConfig,
    execution: MiningExecution | None = None,
    bundles_dir: str | Path | None = None,
    pool: str = "organic",
    holdout_pool: str | None = "organic_holdout",
    st_export: str | Path | None = None,
    st_negatives: int = 3,
    manifest_extra: dict[str, Any] | None = None,
) -> MiningPlan:
    """Check every option and input of a mining run and take its resume key (arguments as ``mine``).

    Reads the model, the corpus and every candidate row; writes nothing and starts no Ray.

    Raises:
        DataError: a bad candidate or corpus row, an unusable work folder.
        ConfigError: options or outputs that cannot work (see :func:`crucible_ray.mine`).
    """
    started = time.monotonic()
    execution = execution or MiningExecution()
    out = Path(out)
    if out.suffix.lower() not in (".parquet", ".pq"):
        raise ConfigError(f"--out must be a .parquet file (the results table), but got {out}")
    if st_export is not None and Path(st_export).suffix.lower() != ".jsonl":
        raise ConfigError(f"the sentence-transformers export is JSONL; name it *.jsonl (got {st_export})")
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
    WorkDir(out, "").check()
    # Everything that can be checked is checked before any work: the model, the corpus, every candidate
    # row and whether the options can validate them.
    source, driver_encoder = ModelSource.load(model)
    cache = cache_config(execution.embedding_cache, execution.embedding_cache_size)
    source = source.with_cache(cache)
    if driver_encoder is not None:
        driver_encoder = with_embedding_cache(driver_encoder, cache)
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
    scan = scan_candidates(candidates, on_shard=shards.append, shard_rows=max(64, execution.batch_size))
    check_feasible(scan, config, has_corpus=corpus is not None)
    cand_sha = file_sha256(candidates)
    inputs = MiningInputs(
        candidates, cand_sha, scan, source, corpus_ids, corpus_texts, corpus_info, shards, driver_encoder
    )
    outputs = MiningOutputs(out, mpath, bdir, bundles, Path(st_export) if st_export is not None else None, st_negatives)
    key = resume_key(config, source, cand_sha, corpus_info)
    return MiningPlan(config, execution, inputs, outputs, key, dict(manifest_extra or {}), started)
