"""Driver-side preparation of a training run: read and validate inputs, build the feature cache."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crucible_ray.data import Bundle, file_sha256, read_bundles
from crucible_ray.encoders import build_encoder, feature_table, is_frozen_backbone
from crucible_ray.errors import ConfigError, DataError
from crucible_ray.training._config import TrainConfig
from crucible_ray.training._loop import TrainData
from crucible_ray.training._sampler import CurriculumSampler
from crucible_ray.worlds import World


@dataclass
class PreparedRun:
    """The validated inputs of a run and their identity (for the manifest)."""

    data: TrainData
    inputs: dict[str, dict[str, Any]]  # stem -> {path, sha256, rows}
    world: World


def prepare_training(data_dir: str | Path, config: TrainConfig) -> PreparedRun:
    """Open the world, read every pool the ratio uses and every eval set, and check they can train.

    Raises:
        DataError: the data folder or a file in it is missing or malformed.
        ConfigError: a pool the ratio weights is missing or empty.
    """
    world = World.open(data_dir)
    weights = config.ratio.weights
    pools: dict[str, list[Bundle]] = {}
    inputs: dict[str, dict[str, Any]] = {}
    available = world.pools
    for name, weight in weights.items():
        if weight == 0:
            continue
        if name not in available:
            raise ConfigError(
                f"pool {name!r} has weight {weight} in ratio {config.ratio} but {world.root} has no {name!r} pool "
                f"(it has {sorted(available)}); build it (`crucible-ray mine` / `expand` with --bundles-dir) "
                "or give it weight 0"
            )
        pools[name] = _read(available[name], inputs, name)
    eval_sets: dict[str, tuple[list[Bundle], dict[str, Any]]] = {}
    for name, path in world.eval_sets.items():
        bundles = _read(path, inputs, name)
        eval_sets[name] = (bundles, {"path": str(path), "sha256": inputs[name]["sha256"]})
    if config.retention_set not in eval_sets:
        raise DataError(f"{world.root}: no {config.retention_set!r} eval set to measure retention on")
    CurriculumSampler(pools, config.ratio, config.batch_size, seed=config.seed)  # empty weighted pools fail here
    features = None
    encoder = build_encoder(config.encoder, device="cpu")
    if is_frozen_backbone(encoder):
        texts: list[str] = []
        for bundles in [*pools.values(), *(b for b, _ in eval_sets.values())]:
            texts.extend(encoder.prompted([b.anchor for b in bundles], "query"))
            docs = [t for b in bundles for t in (b.positive, *(n.text for n in b.negatives))]
            texts.extend(encoder.prompted(docs, "document"))
        features = feature_table(encoder, texts, world.root)
    return PreparedRun(TrainData(pools, eval_sets, features), inputs, world)


def _read(path: Path, inputs: dict[str, dict[str, Any]], name: str) -> list[Bundle]:
    bundles = read_bundles(path)
    inputs[name] = {"path": str(path), "sha256": file_sha256(path), "rows": len(bundles)}
    return bundles
