"""Step 3 of a mining run, *finalise*: the results table, bundles and export, the manifest, the world.

It reads only the finished parts in the run's work folder (:class:`~crucible_ray.mining.WorkDir`),
so it is Ray-free and safe to repeat: a run killed while assembling continues here on its next start.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crucible_ray._logging import get_logger
from crucible_ray.data import remove_stale_temporaries
from crucible_ray.errors import MiningError
from crucible_ray.mining._kernel import SCORING
from crucible_ray.mining._lineups import DRAW_SCHEME
from crucible_ray.mining._outputs import ST_LAYOUTS, assemble, st_layout_rows
from crucible_ray.mining._plan import MiningPlan
from crucible_ray.mining._world import register_in_world
from crucible_ray.provenance import build_manifest, write_manifest

log = get_logger(__name__)


@dataclass(frozen=True)
class MiningResult:
    """Where a mining run wrote its outputs, and its manifest (counts, pass rate, histogram)."""

    results: Path
    manifest_path: Path
    manifest: dict[str, Any]

    @property
    def counts(self) -> dict[str, Any]:
        return dict(self.manifest["counts"])

    def sentence_transformers(self, layout: str = "triplet", *, negatives: int = 3, dataset: bool = False) -> Any:
        """The accepted rows in a sentence-transformers layout: ``"triplet"`` (default, as
        ``mine_hard_negatives``), ``"n-tuple"`` or ``"labeled-pair"``; killers first, at most
        ``negatives`` per row. A list of dicts, or a ``datasets.Dataset`` with ``dataset=True``
        (needs the ``datasets`` extra), ready for a sentence-transformers trainer.

        Example:
            >>> res.sentence_transformers("n-tuple", negatives=2, dataset=True)  # doctest: +SKIP
            Dataset({features: ['anchor', 'positive', 'negative_1', 'negative_2'], num_rows: 412})
        """
        import pyarrow.parquet as pq

        from crucible_ray.errors import ConfigError

        if layout not in ST_LAYOUTS:
            raise ConfigError(f"layout must be one of {', '.join(ST_LAYOUTS)}, not {layout!r}")
        if negatives < 1:
            raise ConfigError(f"negatives must be at least 1, but got {negatives}")
        columns = ["accepted", "anchor", "positive", "killers", "near_misses"]
        rows = st_layout_rows(pq.read_table(self.results, columns=columns).to_pylist(), layout, negatives)
        if not dataset:
            return rows
        try:
            from datasets import Dataset
        except ImportError:
            raise ConfigError("dataset=True needs the datasets package: pip install 'crucible-ray[datasets]'") from None
        return Dataset.from_list(rows)


@dataclass(frozen=True)
class ExecutionRecord:
    """What the execute step did, as the manifest's ``execution`` entry records it.

    ``actors`` is the actor pool (``actors``, ``num_cpus_per_actor``, ``num_gpus_per_actor``,
    ``device``), empty when every candidate was already mined and no Ray ran.
    """

    pending: int  # candidates mined by this run
    resumed: int  # candidates reused from an interrupted run
    actors: dict[str, Any] = field(default_factory=dict)
    corpus_embedded_by: str | None = None  # "driver", "actors", or None (no corpus was needed)


def finalise_mining(plan: MiningPlan, record: ExecutionRecord) -> MiningResult:
    """Assemble the parts into the outputs, write the manifest, register bundles in a world folder,
    and remove the work folder.

    Every output is written atomically; leftovers of a run killed while assembling are removed first.
    """
    out = plan.outputs
    cfg = plan.config
    out.bundles_dir.mkdir(parents=True, exist_ok=True)
    for path in out.files():  # what a run killed while assembling left half-written
        remove_stale_temporaries(path)
    work = plan.work
    tally = assemble(
        work.parts(),
        out.results,
        bundles=out.bundles,
        holdout_fraction=cfg.holdout_fraction,
        st_export=out.st_export,
        st_negatives=out.st_negatives,
    )
    if tally.rows != plan.inputs.scan.rows:  # never report a partial run as done, nor drop its work
        raise MiningError(
            f"{plan.work.root}: holds results for {tally.rows} of {plan.inputs.scan.rows} candidates; "
            "run the same command again to mine the rest (the work folder is kept)"
        )
    elapsed = time.monotonic() - plan.started
    inputs = plan.inputs
    manifest = build_manifest(
        "mining",
        schema_version=1,
        config=cfg.model_dump(),
        lineup_draws=DRAW_SCHEME,
        scoring=SCORING,
        model=inputs.model.describe(),
        inputs={
            "candidates": {
                "path": str(inputs.candidates),
                "sha256": inputs.candidates_sha256,
                "rows": inputs.scan.rows,
            },
            "corpus": inputs.corpus,
        },
        counts=tally.summary(cfg.lineups),
        outputs={
            "results": out.results.name,
            "bundles": {k: str(v) for k, v in out.bundles.items()},
            "st_export": str(out.st_export) if out.st_export is not None else None,
        },
        execution={
            **record.actors,
            "batch_size": plan.execution.batch_size,
            "corpus_embedded_by": record.corpus_embedded_by,
            "embedding_cache": c.describe() if (c := plan.inputs.model.embedding_cache) and c.enabled else None,
            "resumed_candidates": record.resumed,
            "seconds": round(elapsed, 3),
            "candidates_per_second": round(record.pending / elapsed, 2) if elapsed > 0 else None,
        },
        **plan.manifest_extra,
    )
    write_manifest(out.manifest.parent, manifest, name=out.manifest.name)
    register_in_world(out.bundles_dir, out.bundles, tally.bundles)
    work.remove()
    c = manifest["counts"]
    log.info(
        "mined %d candidates: %d accepted (pass rate %.1f%%), %d rejected, %d insufficient -> %s",
        c["candidates"],
        c["accepted"],
        100 * c["pass_rate"],
        c["rejected"],
        c["insufficient"],
        out.results,
    )
    return MiningResult(out.results, out.manifest, manifest)
