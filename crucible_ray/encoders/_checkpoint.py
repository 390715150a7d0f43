"""Checkpoints: one ``.pt`` file of tensors and plain types, loadable with ``weights_only=True``.

Layout: ``{"format": "crucible-ray-checkpoint", "format_version": 1, "encoder_spec": {...},
"encoder_fingerprint": str, "state_dict": {name: tensor}, "train_config": {...}, "step": int}``.
Nothing else is ever unpickled.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from crucible_ray.data import atomic_path
from crucible_ray.encoders._base import Encoder
from crucible_ray.encoders._registry import build_encoder, resolve_device
from crucible_ray.errors import EncoderError

CHECKPOINT_FORMAT = "crucible-ray-checkpoint"
CHECKPOINT_VERSION = 1


def save_checkpoint(
    encoder: Encoder,
    path: str | Path,
    *,
    step: int = 0,
    train_config: dict[str, Any] | None = None,
) -> Path:
    """Write ``encoder`` atomically to ``path`` (``train_config`` must hold plain types only)."""
    path = Path(path)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "encoder_spec": dict(encoder.spec),
        "encoder_fingerprint": encoder.fingerprint(),
        "state_dict": encoder.trainable_state(),
        "train_config": dict(train_config or {}),
        "step": int(step),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load and check a checkpoint's payload with ``torch.load(weights_only=True)``.

    Raises:
        EncoderError: missing file, not a crucible-ray checkpoint, or disallowed (pickled) objects.
    """
    path = Path(path)
    if not path.is_file():
        raise EncoderError(f"{path}: no such checkpoint file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise EncoderError(f"{path}: not a loadable crucible-ray checkpoint ({first})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise EncoderError(f"{path}: not a crucible-ray checkpoint (no format {CHECKPOINT_FORMAT!r})")
    if payload.get("format_version") != CHECKPOINT_VERSION:
        raise EncoderError(
            f"{path}: checkpoint format_version {payload.get('format_version')!r} is not supported "
            f"(this crucible-ray reads version {CHECKPOINT_VERSION})"
        )
    return payload


def load_encoder(checkpoint: str | Path, *, device: str | None = None) -> Encoder:
    """Rebuild the encoder saved in ``checkpoint``; ``encode(texts)`` gives L2-normalised float32 rows.

    Example:
        >>> enc = load_encoder("runs/a/checkpoint_final.pt")  # doctest: +SKIP
        >>> enc.encode(["a small dog"]).shape  # doctest: +SKIP
        (1, 256)
    """
    payload = read_checkpoint(checkpoint)
    encoder = build_encoder(payload["encoder_spec"], device="cpu")
    try:
        encoder.load_trainable_state(payload["state_dict"])
    except (RuntimeError, KeyError) as e:
        raise EncoderError(f"{checkpoint}: weights do not match the encoder spec ({e})") from None
    expected = payload.get("encoder_fingerprint")
    if expected and encoder.fingerprint() != expected:
        raise EncoderError(
            f"{checkpoint}: the rebuilt encoder's fingerprint differs from the saved one; the frozen "
            "backbone's weights are not the ones it was trained on."
        )
    return encoder.to(resolve_device(device))
