"""``crucible_ray.expand``: generate tier-3 candidates near the legacy killers and keep only the vetted ones."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from crucible_ray._logging import get_logger
from crucible_ray.data import check_outputs, write_candidates
from crucible_ray.distributed._mine import mine
from crucible_ray.encoders import DEFAULT_ENCODER, Encoder
from crucible_ray.errors import ConfigError, MiningError
from crucible_ray.mining import (
    CandidateGenerator,
    MinerConfig,
    MiningExecution,
    MiningResult,
    check_world_targets,
    resolve_generator,
)
from crucible_ray.worlds import MANIFEST, MINED_ORIGIN, World

log = get_logger(__name__)


def expand(
    data: str | Path,
    *,
    out: str | Path,
    model: Encoder | str | Path | dict[str, Any] = DEFAULT_ENCODER,
    generator: str | CandidateGenerator | None = None,
    limit: int = 2000,
    config: MinerConfig | None = None,
    **kwargs: Any,
) -> MiningResult:
    """Generate expansion candidates from a world's legacy killers, vet them, write the expansion pool.

    Args:
        data: a world folder (``crucible-ray data build``).
        out: the vetted pool (``.jsonl`` bundles; the pool is named by the file stem, e.g. ``expansion``).
            Beside it: ``<stem>_generated.jsonl`` (the candidates the generator produced) and
            ``<stem>_mined.parquet`` + manifest (the validation of each one). Inside the world folder,
            the pool is registered in the world's manifest.
        model: a checkpoint, an encoder spec or an :class:`Encoder` (the model whose killers we want).
        generator: ``"wordnet"``, ``"world"``, ``"package.module:function"`` or a callable
            ``(world, limit) -> Iterable[Candidate]``; default ``wordnet`` for WordNet worlds, else ``world``.
        limit: at most this many candidates are generated.
        config: miner settings (or pass them as keyword options, as for :func:`mine`); the holdout
            fraction is forced to 0: every vetted candidate joins the pool.
        kwargs: the execution options of :func:`mine` (``execution=`` or ``actors``, ``batch_size``,
            ``address``...), ``st_export`` and ``st_negatives``.

    Raises:
        ConfigError: an unknown generator or a bad option; MiningError: the generator produced nothing.
    """
    world = World.open(data)
    out = Path(out)
    if out.suffix.lower() != ".jsonl":
        raise ConfigError(f"--out is the vetted bundle pool and must be a .jsonl file, but got {out}")
    if limit < 1:
        raise ConfigError(f"limit must be >= 1, but got {limit}")
    exec_keys = {*MiningExecution.model_fields, "execution", "st_export", "st_negatives"}
    options = {k: v for k, v in kwargs.items() if k not in exec_keys}
    execution = {k: v for k, v in kwargs.items() if k in exec_keys}
    cfg = config if config is not None else MinerConfig.from_options(**options)
    cfg = cfg.model_copy(update={"holdout_fraction": 0.0})
    name, gen = resolve_generator(generator, world)
    candidates_path = out.with_name(f"{out.stem}_generated.jsonl")
    mined = out.with_name(f"{out.stem}_mined.parquet")
    world_files = {  # what the world was built with (a pool an earlier run mined may be replaced)
        f"the world's {stem}": world.root / str(e.get("path", ""))
        for stem, e in world.manifest["files"].items()
        if e.get("origin") != MINED_ORIGIN
    }
    check_outputs(
        outputs={"--out": out, "the generated candidates": candidates_path, "the results": mined},
        inputs={"the world manifest": world.root / MANIFEST, **world_files},
        folders={"--data": world.root},
    )
    check_world_targets(out.parent, {"train": out})
    n = write_candidates(candidates_path, gen(world, limit))
    if n == 0:
        raise MiningError(f"generator {name!r} produced no candidates from {world.root}")
    log.info("generator %r produced %d candidates -> %s", name, n, candidates_path)
    result = mine(
        candidates_path,
        out=mined,
        model=model,
        corpus=world.path("corpus") if world.has("corpus") else None,
        config=cfg,
        bundles_dir=out.parent,
        pool=out.stem,
        holdout_pool=None,
        manifest_extra={"expansion": {"generator": name, "generated": n, "limit": limit}},
        **execution,
    )
    return result
