"""Which model mines: a spec (untrained) or a checkpoint, in a form that travels to Ray actors."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from crucible_ray.encoders import (
    CachedFeatureEncoder,
    EmbeddingCacheConfig,
    Encoder,
    EncoderKind,
    FeatureTable,
    adopt_kinds,
    build_encoder,
    is_frozen_backbone,
    load_encoder,
    normalize_spec,
    plugin_kinds,
    with_embedding_cache,
)


@dataclass(frozen=True)
class ModelSource:
    """A model as plain data: its spec, its trained tensors (``None`` when untrained), its fingerprint.

    Actors rebuild the encoder from this (``build``) on their own device, so a checkpoint file does
    not have to be readable on every node of a cluster. ``features`` (frozen-backbone models only) are
    the cached backbone features of the texts the actors will embed: they travel with the model, and
    the actors run only the head on them (docs/mining.md, "Frozen-backbone models").
    ``embedding_cache``: where the encoders it builds look texts up before embedding them (docs/mining.md,
    "The embedding cache"); ``None``: nowhere.
    """

    spec: dict[str, Any]
    state: dict[str, torch.Tensor] | None
    fingerprint: str
    checkpoint: str | None = None
    features: FeatureTable | None = field(default=None, compare=False, repr=False)
    kinds: tuple[EncoderKind, ...] = field(default=(), compare=False, repr=False)
    embedding_cache: EmbeddingCacheConfig | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.kinds:  # a kind registered in the driver travels with the model to the actors
            object.__setattr__(self, "kinds", plugin_kinds(self.spec))

    @classmethod
    def resolve(cls, model: Encoder | str | Path | dict[str, Any]) -> ModelSource:
        """From an :class:`Encoder`, a checkpoint path (``*.pt``) or an encoder spec."""
        return cls.load(model)[0]

    @classmethod
    def load(cls, model: Encoder | str | Path | dict[str, Any]) -> tuple[ModelSource, Encoder | None]:
        """:meth:`resolve`, plus the CPU encoder it built to take the fingerprint (so that a driver
        that needs the model too loads it once); ``None`` for an :class:`Encoder` given by the caller,
        whose object is never moved or shared (use :meth:`build` for a copy).
        """
        if isinstance(model, Encoder):
            return cls(dict(model.spec), model.trainable_state(), model.fingerprint()), None
        if isinstance(model, Path) or (isinstance(model, str) and model.endswith(".pt")):
            enc = load_encoder(model, device="cpu")
            return cls(dict(enc.spec), enc.trainable_state(), enc.fingerprint(), str(model)), enc
        spec = normalize_spec(model)
        enc = build_encoder(spec, device="cpu")
        return cls(spec, None, enc.fingerprint()), enc

    def build(self, device: str | None = None) -> Encoder:
        """The encoder, on ``device`` (default: CUDA when available)."""
        adopt_kinds(self.kinds)
        enc = build_encoder(self.spec, device="cpu")
        if self.state is not None:
            enc.load_trainable_state(self.state)
        enc = enc.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if self.features is not None and is_frozen_backbone(enc):
            enc = CachedFeatureEncoder(enc, self.features)
        return with_embedding_cache(enc, self.embedding_cache)

    def with_features(self, features: FeatureTable) -> ModelSource:
        """This model, carrying cached backbone features for its actors."""
        return replace(self, features=features)

    def with_cache(self, config: EmbeddingCacheConfig | None) -> ModelSource:
        """This model, its encoders going through the embedding cache ``config`` describes."""
        return replace(self, embedding_cache=config)

    def describe(self) -> dict[str, Any]:
        """What a manifest records about the model."""
        return {"spec": self.spec, "checkpoint": self.checkpoint, "fingerprint": self.fingerprint}
