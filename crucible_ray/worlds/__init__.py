"""Data worlds: the real WordNet world (the default) and a tiny seeded synthetic one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from crucible_ray._logging import get_logger
from crucible_ray.data import check_manifest_kind, check_outputs
from crucible_ray.errors import ConfigError, config_error
from crucible_ray.worlds._import import bundle_st_rows, import_world, read_candidate_table
from crucible_ray.worlds._sources import source_rows
from crucible_ray.worlds._synthetic import SyntheticWorldConfig, build_synthetic_world
from crucible_ray.worlds._wordnet import WordNetWorldConfig, build_wordnet_world
from crucible_ray.worlds._wordnet_db import find_wordnet, read_noun_synsets
from crucible_ray.worlds._wordnet_expand import wordnet_killer_neighbours
from crucible_ray.worlds._world import (
    CANDIDATE_FILES,
    CORPUS_FILE,
    EVAL_FILES,
    MANIFEST,
    MINED_ORIGIN,
    POOL_FILES,
    REFERENCE_SET,
    World,
    file_sha256,
)

WORLDS = ("wordnet", "synthetic")

log = get_logger(__name__)


def world_config(name: str, options: dict[str, Any]) -> WordNetWorldConfig | SyntheticWorldConfig:
    """Validate ``options`` for world ``name``; a :class:`ConfigError` names the bad option."""
    models: dict[str, type[WordNetWorldConfig] | type[SyntheticWorldConfig]] = {
        "wordnet": WordNetWorldConfig,
        "synthetic": SyntheticWorldConfig,
    }
    model = models.get(name)
    if model is None:
        raise ConfigError(f"unknown world {name!r}; choose one of {', '.join(WORLDS)}.")
    try:
        return model.model_validate(options)
    except ValidationError as e:
        raise config_error(e, f"world {name!r} option") from None


def build_world(name: str, out: str | Path, *, wordnet_dir: str | Path | None = None, **options: Any) -> Path:
    """Build world ``name`` (``"wordnet"`` or ``"synthetic"``) into folder ``out``; returns ``out``.

    ``options`` are the fields of :class:`WordNetWorldConfig` or :class:`SyntheticWorldConfig`
    (sizes, tier counts, ``seed``, ``format``). The same options always give the same files.

    Example:
        >>> build_world("synthetic", "worlds/syn", seed=1)  # doctest: +SKIP
        PosixPath('worlds/syn')
    """
    cfg = world_config(name, options)
    _check_world_folder(Path(out), wordnet_dir)
    log.info("building the %s world in %s ...", name, out)
    if isinstance(cfg, WordNetWorldConfig):
        return build_wordnet_world(out, cfg, wordnet_dir=wordnet_dir)
    if wordnet_dir is not None:
        raise ConfigError("--wordnet-dir applies to the wordnet world only.")
    return build_synthetic_world(out, cfg)


def _check_world_folder(out: Path, wordnet_dir: str | Path | None) -> None:
    """Refuse, before any work, a folder that cannot hold the world or holds something else's manifest."""
    check_outputs(outputs={}, output_dirs={"--out": out}, folders={"--wordnet-dir": wordnet_dir})
    check_manifest_kind(out, "world", option="--out")


def world_ratio_pools(folder: str | Path) -> tuple[str, ...]:
    """:meth:`World.ratio_pools` of the world in ``folder`` (the default pools where there is none)."""
    from crucible_ray.config import DEFAULT_POOLS

    world = World.find(folder)
    return world.ratio_pools() if world is not None else DEFAULT_POOLS


__all__ = [
    "world_ratio_pools",
    "CANDIDATE_FILES",
    "CORPUS_FILE",
    "EVAL_FILES",
    "REFERENCE_SET",
    "MANIFEST",
    "MINED_ORIGIN",
    "POOL_FILES",
    "WORLDS",
    "SyntheticWorldConfig",
    "WordNetWorldConfig",
    "World",
    "build_world",
    "file_sha256",
    "find_wordnet",
    "import_world",
    "bundle_st_rows",
    "read_candidate_table",
    "source_rows",
    "read_noun_synsets",
    "wordnet_killer_neighbours",
    "world_config",
]
