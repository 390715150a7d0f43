"""Which model mines: a spec (untrained) or a checkpoint, in a form that travels to Ray actors."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from crucible_ray.encoders import Encoder, build_encoder, load_encoder, normalize_spec


@dataclass(frozen=True)
class ModelSource:
    """A model as plain data: its spec, its trained tensors (``None`` when untrained), its fingerprint.

    Actors rebuild the encoder from this (``build``) on their own device, so a checkpoint file does
    not have to be readable on every node of a cluster.
    """

    spec: dict[str, Any]
    state: dict[str, torch.Tensor] | None
    fingerprint: str
    checkpoint: str | None = None

    @classmethod
    def resolve(cls, model: Encoder | str | Path | dict[str, Any]) -> ModelSource:
        """From an :class:`Encoder`, a checkpoint path (``*.pt``) or an encoder spec."""
        if isinstance(model, Encoder):
            return cls(dict(model.spec), model.trainable_state(), model.fingerprint())
        if isinstance(model, Path) or (isinstance(model, str) and model.endswith(".pt")):
            enc = load_encoder(model, device="cpu")
            return cls(dict(enc.spec), enc.trainable_state(), enc.fingerprint(), str(model))
        spec = normalize_spec(model)
        return cls(spec, None, build_encoder(spec, device="cpu").fingerprint())

    def build(self, device: str | None = None) -> Encoder:
        """The encoder, on ``device`` (default: CUDA when available)."""
        enc = build_encoder(self.spec, device="cpu")
        if self.state is not None:
            enc.load_trainable_state(self.state)
        return enc.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))

    def describe(self) -> dict[str, Any]:
        """What a manifest records about the model."""
        return {"spec": self.spec, "checkpoint": self.checkpoint, "fingerprint": self.fingerprint}
