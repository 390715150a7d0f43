"""Mined bundles and world folders: refuse to replace a world's own files; list mined pools in its manifest."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from crucible_ray._logging import get_logger
from crucible_ray.errors import ConfigError

log = get_logger(__name__)


def check_world_targets(folder: Path, bundles: Mapping[str, Path]) -> None:
    """Refuse bundles that would overwrite a file a world was built with (its legacy pool, corpus...).

    Pools and eval sets that an earlier mining run registered may be replaced by a new one.

    Raises:
        ConfigError: a bundle would replace a file the world was built with.
    """
    from crucible_ray.worlds import MINED_ORIGIN, World

    world = World.find(folder) if folder.is_dir() else None
    if world is None:
        return
    for path in bundles.values():
        entry = world.manifest["files"].get(path.stem)
        if entry is not None and entry.get("origin") != MINED_ORIGIN:
            raise ConfigError(
                f"{folder} is a world whose {path.stem!r} ({entry.get('role')}) was not mined: writing "
                f"{path.name} would replace it; choose another pool name (--pool/--holdout-pool) or --bundles-dir"
            )


def register_in_world(folder: Path, bundles: Mapping[str, Path], rows: Mapping[str, int]) -> None:
    """When the bundles land in a world folder, list them in its manifest (training reads pools from it)."""
    from crucible_ray.worlds import MINED_ORIGIN, World

    world = World.find(folder)
    if world is None:
        return
    for role, path in bundles.items():
        world = world.register(
            path.stem,
            path,
            role="pool" if role == "train" else "eval",
            rows=rows.get(path.stem, 0),
            origin=MINED_ORIGIN,
        )
    log.info("registered %s in the world manifest of %s", ", ".join(p.name for p in bundles.values()), folder)
