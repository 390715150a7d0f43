"""``evaluate``: score an encoder on one or more eval sets and build a :class:`Scoreboard`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from crucible_ray._logging import get_logger
from crucible_ray.data import Bundle, file_sha256, read_bundles
from crucible_ray.encoders import Encoder, build_encoder, cache_config, load_encoder, with_embedding_cache
from crucible_ray.errors import ConfigError
from crucible_ray.metrics import BundleScores, all_tier_metrics, score_bundles
from crucible_ray.scoreboard import (
    DEFAULT_DANGER_MARGIN,
    GENERALIZATION_SET,
    RETENTION_SET,
    Scoreboard,
)

log = get_logger(__name__)

EvalSetInput = str | Path | Sequence[Bundle]


def eval_set_name(path: str | Path) -> str:
    """The name an eval set file gets: its file name without extension (``frozen_eval.jsonl`` -> ``frozen_eval``)."""
    return Path(path).name.split(".")[0]


def resolve_encoder(
    model: Encoder | str | Path | dict[str, Any], *, device: str | None = None
) -> tuple[Encoder, str | None]:
    """An :class:`Encoder` from an encoder, a checkpoint path (``*.pt``) or a spec; plus the checkpoint path."""
    if isinstance(model, Encoder):
        return model, None
    if isinstance(model, Path) or (isinstance(model, str) and model.endswith(".pt")):
        return load_encoder(model, device=device), str(model)
    return build_encoder(model, device=device), None


def evaluate(
    model: Encoder | str | Path | dict[str, Any],
    eval_sets: Mapping[str, EvalSetInput] | Sequence[str | Path],
    *,
    danger_margin: float = DEFAULT_DANGER_MARGIN,
    retention_set: str = RETENTION_SET,
    generalization_set: str = GENERALIZATION_SET,
    step: int | None = None,
    device: str | None = None,
    embedding_cache: bool | str | Path = False,
    embedding_cache_size: str | int | None = None,
) -> Scoreboard:
    """Score ``model`` on each eval set at tiers 1, 2, 3 and all.

    Args:
        model: an :class:`Encoder`, a checkpoint path, or an encoder spec (``"hashed-ngram:seed=0"``).
        eval_sets: ``{name: path or bundles}``, or a list of paths (each named by its file stem).
        danger_margin: ``delta`` of the danger rate (bundles with margin <= delta count as in danger).
        retention_set / generalization_set: which eval sets give retention and generalization
            (tier-3 accuracy); by default ``frozen_eval`` and ``organic_holdout``.
        step: the training step, recorded in the scoreboard.
        device: where to encode; default CUDA when available.
        embedding_cache: look texts up in the embedding cache before encoding them, and add the others
            (docs/mining.md, "The embedding cache"): ``True`` for the default cache
            (``$CRUCIBLE_RAY_EMBEDDING_CACHE``, else ``~/.cache/crucible-ray/embeddings``), or a folder;
            ``False`` (default) or ``"off"``: no cache. ``crucible-ray eval`` uses the default cache.
        embedding_cache_size: the cache's size limit (e.g. ``"2GB"``; default 8 GB).

    Returns:
        A :class:`Scoreboard`; ``.write(path)`` saves it as JSON.

    Raises:
        DataError: an eval set file is missing or malformed (nothing is written).
        EncoderError: the model cannot be built or loaded.

    Example:
        >>> sb = evaluate("hashed-ngram", ["world/frozen_eval.jsonl"])  # doctest: +SKIP
        >>> sb.retention  # doctest: +SKIP
        0.41
    """
    if not isinstance(eval_sets, Mapping):
        named: dict[str, EvalSetInput] = {}
        for p in eval_sets:
            name = eval_set_name(p)
            if name in named:
                raise ConfigError(f"two eval sets are named {name!r}; name them explicitly as NAME=PATH.")
            named[name] = p
        eval_sets = named
    if not eval_sets:
        raise ConfigError("evaluate needs at least one eval set.")
    # Read and validate every input before any model work, so bad input fails fast.
    loaded: dict[str, tuple[list[Bundle], dict[str, Any]]] = {}
    for name, source in eval_sets.items():
        if isinstance(source, (str, Path)):
            path = Path(source)
            loaded[name] = (read_bundles(path), {"path": str(path), "sha256": file_sha256(path)})
        else:
            loaded[name] = (list(source), {"path": None, "sha256": None})
    encoder, checkpoint = resolve_encoder(model, device=device)
    if embedding_cache is not False:
        where = None if embedding_cache is True else embedding_cache
        encoder = with_embedding_cache(encoder, cache_config(where, embedding_cache_size))
    board, _ = evaluate_loaded(
        encoder,
        loaded,
        danger_margin=danger_margin,
        retention_set=retention_set,
        generalization_set=generalization_set,
        step=step,
        checkpoint=checkpoint,
    )
    return board


def evaluate_loaded(
    encoder: Encoder,
    loaded: Mapping[str, tuple[Sequence[Bundle], dict[str, Any]]],
    *,
    danger_margin: float = DEFAULT_DANGER_MARGIN,
    retention_set: str = RETENTION_SET,
    generalization_set: str = GENERALIZATION_SET,
    step: int | None = None,
    checkpoint: str | None = None,
) -> tuple[Scoreboard, dict[str, BundleScores]]:
    """Score already-loaded eval sets (``{name: (bundles, {"path", "sha256"})}``); also returns the raw scores."""
    results: dict[str, dict[str, Any]] = {}
    raw: dict[str, BundleScores] = {}
    for name, (bundles, meta) in loaded.items():
        log.info("evaluating %s (%d bundles)", name, len(bundles))
        queries = (lambda t: encoder.encode(t, role="query")) if encoder.query_prompt_differs else None
        scores = score_bundles(bundles, encoder.encode, queries)  # anchors with the model's query prompt
        raw[name] = scores
        results[name] = {
            **all_tier_metrics(scores.s_pos, scores.s_neg, scores.tiers, danger_margin),
            "n_bundles": len(bundles),
            **meta,
        }

    def _tier3(name: str) -> float | None:
        return results[name]["3"]["accuracy"] if name in results else None

    board = Scoreboard(
        eval_sets=results,
        danger_margin=danger_margin,
        retention=_tier3(retention_set),
        generalization=_tier3(generalization_set),
        retention_set=retention_set,
        generalization_set=generalization_set,
        step=step,
        checkpoint=checkpoint,
        encoder={"spec": encoder.spec, "fingerprint": encoder.fingerprint()},
    )
    return board, raw
