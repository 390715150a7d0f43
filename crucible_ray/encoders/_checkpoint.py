"""Checkpoints: one ``.pt`` file of tensors and plain types, loadable with ``weights_only=True``.

Layout: ``{"format": "crucible-ray-checkpoint", "format_version": 1, "encoder_spec": {...},
"encoder_fingerprint": str, "state_dict": {name: tensor}, "train_config": {...}, "step": int}``.
Nothing else is ever unpickled.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import torch

from crucible_ray.data import atomic_path
from crucible_ray.encoders._base import Encoder
from crucible_ray.encoders._registry import build_encoder, expected_state_shapes, normalize_spec, resolve_device
from crucible_ray.encoders._spec import spec_to_string
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

    The payload's layout is checked too: ``encoder_spec`` is a mapping and ``state_dict`` maps names to
    floating-point tensors whose stored data covers their shape (a stride-0 view of a few bytes cannot
    stand for a large table).

    Raises:
        EncoderError: missing file, not a crucible-ray checkpoint (or damaged), or a pickled object.
    """
    path = Path(path)
    if not path.is_file():
        raise EncoderError(f"{path}: no such checkpoint file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]{1,100})", str(e))
        if found:
            raise EncoderError(
                f"{path}: not a loadable crucible-ray checkpoint: it holds a pickled Python object "
                f"({found.group(1)}), which is never loaded; the file is unsafe or was not written by crucible-ray"
            ) from None
        raise _damaged(path, "its pickled content is not tensors and plain types") from None
    except Exception as e:  # noqa: BLE001 - torch raises many types (OSError, RuntimeError, KeyError, ...)
        raise _damaged(path, _first_sentence(e)) from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise _damaged(path, f"no format {CHECKPOINT_FORMAT!r}")
    if payload.get("format_version") != CHECKPOINT_VERSION:
        raise EncoderError(
            f"{path}: checkpoint format_version {payload.get('format_version')!r} is not supported "
            f"(this crucible-ray reads version {CHECKPOINT_VERSION})"
        )
    spec, state = payload.get("encoder_spec"), payload.get("state_dict")
    if not isinstance(spec, dict) or not all(isinstance(k, str) for k in spec):
        raise _damaged(path, "'encoder_spec' is not a mapping")
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise _damaged(path, "'state_dict' is not a mapping of names to tensors")
    for name, tensor in state.items():
        if tensor.layout != torch.strided or not tensor.is_floating_point():
            raise _damaged(path, f"stored tensor {name!r} is not a dense floating-point tensor ({tensor.dtype})")
        if tensor.numel() and tensor.untyped_storage().nbytes() < tensor.numel() * tensor.element_size():
            raise _damaged(path, f"stored tensor {name!r} holds fewer values than its shape {_shape(tensor.shape)}")
    return payload


def load_encoder(checkpoint: str | Path, *, device: str | None = None) -> Encoder:
    """Rebuild the encoder saved in ``checkpoint``; ``encode(texts)`` gives L2-normalised float32 rows.

    The spec is validated and the stored tensors' names and shapes are checked against it before the
    encoder is built, so nothing larger than the file's own tensors (and the spec's bounds) is allocated.

    Example:
        >>> enc = load_encoder("runs/a/checkpoint_final.pt")  # doctest: +SKIP
        >>> enc.encode(["a small dog"]).shape  # doctest: +SKIP
        (1, 256)

    Raises:
        EncoderError: see :func:`read_checkpoint`; a bad spec; tensors that do not match the spec.
    """
    payload = read_checkpoint(checkpoint)
    try:
        spec = normalize_spec(payload["encoder_spec"])
        expected = expected_state_shapes(spec)
    except EncoderError as e:
        raise EncoderError(f"{checkpoint}: its encoder spec is not valid: {e}") from None
    state: dict[str, torch.Tensor] = payload["state_dict"]
    if expected is not None:
        problem = _shape_mismatch(expected, {k: tuple(v.shape) for k, v in state.items()})
        if problem:
            raise EncoderError(
                f"{checkpoint}: the stored tensors do not match the encoder spec {spec_to_string(spec)}: {problem}; "
                "the checkpoint is damaged or was edited"
            )
    encoder = build_encoder(spec, device="cpu")
    try:
        encoder.load_trainable_state(state)
    except (RuntimeError, KeyError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise EncoderError(f"{checkpoint}: weights do not match the encoder spec ({first})") from None
    expected_fp = payload.get("encoder_fingerprint")
    if expected_fp and encoder.fingerprint() != expected_fp:
        raise EncoderError(
            f"{checkpoint}: the rebuilt encoder's fingerprint differs from the saved one; the frozen "
            "backbone's weights are not the ones it was trained on."
        )
    return encoder.to(resolve_device(device))


def _damaged(path: Path, why: str) -> EncoderError:
    return EncoderError(
        f"{path}: not a crucible-ray checkpoint (or damaged): {why}; use a checkpoint_*.pt written by crucible-ray"
    )


def _first_sentence(e: Exception) -> str:
    text = " ".join(str(e).split())
    text = text.split(". ")[0].rstrip(".")
    if not isinstance(e, (RuntimeError, OSError, ValueError)) or not text or "weights_only" in text or len(text) > 120:
        return type(e).__name__
    return f"{type(e).__name__}: {text}"


def _shape(shape: tuple[int, ...] | torch.Size) -> str:
    return " x ".join("any" if n < 0 else str(n) for n in shape) or "a scalar"


def _shape_mismatch(expected: dict[str, tuple[int, ...]], stored: dict[str, tuple[int, ...]]) -> str | None:
    missing = sorted(set(expected) - set(stored))
    if missing:
        return f"tensor {missing[0]!r} is missing"
    extra = sorted(set(stored) - set(expected))
    if extra:
        return f"tensor {extra[0]!r} does not belong to this encoder"
    for name in sorted(expected):
        want, got = expected[name], stored[name]
        if len(want) != len(got) or any(w >= 0 and w != g for w, g in zip(want, got, strict=False)):
            return f"{name!r} is {_shape(got)}, the spec needs {_shape(want)}"
    return None
