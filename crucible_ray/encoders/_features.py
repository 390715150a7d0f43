"""The frozen-backbone embedding cache: backbone features of a world's texts, computed once.

With a frozen pretrained backbone (``sentence-transformer`` in ``frozen-head`` mode) only the head
trains, so the backbone's output for a text never changes. :func:`feature_table` computes it once per
(backbone, text), stores it beside the world in ``.cache/features/<key>.npz`` (key: the backbone's
identity: kind, model, sequence length and weight-file hash) and only encodes texts it has not seen.
Training, evaluation, every trial of a sweep, and the corpus embedding of ``mine`` and ``expand``
then run the head on cached features (docs/training.md, "The feature cache").
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from crucible_ray._logging import get_logger
from crucible_ray.data import atomic_path
from crucible_ray.encoders._base import Encoder, Role
from crucible_ray.encoders._streams import CPU_STREAM_BATCH, encode_sorted

log = get_logger(__name__)

CACHE_DIR = Path(".cache") / "features"
#: Texts per backbone batch: sentence-transformers' default on a CPU (where streams share the cores), more on a GPU.
CPU_FEATURE_BATCH = CPU_STREAM_BATCH  # the streams' cap: one definition of a CPU batch
GPU_FEATURE_BATCH = 128


def text_key(text: str) -> bytes:
    """16-byte identity of a text in the cache."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


@dataclass
class FeatureTable:
    """Backbone features ``(T, D)`` float32 and the text key of each row."""

    keys: np.ndarray  # (T, 16) uint8 (not numpy bytes 'S16': those drop trailing NUL bytes)
    features: np.ndarray  # (T, D) float32
    _rows: dict[bytes, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._rows = {k.tobytes(): i for i, k in enumerate(self.keys)}

    def __len__(self) -> int:
        return len(self._rows)

    def subset(self, texts: Iterable[str]) -> FeatureTable:
        """The rows of the cached ``texts`` only (those not cached are left out)."""
        rows = sorted({r for r in (self._rows.get(text_key(t)) for t in texts) if r is not None})
        idx = np.asarray(rows, dtype=np.int64)
        return FeatureTable(self.keys[idx], self.features[idx] if len(self.features) else self.features)

    def rows(self, texts: Sequence[str]) -> np.ndarray | None:
        """Row of each text, or ``None`` when any text is not cached."""
        out = np.empty(len(texts), dtype=np.int64)
        for i, t in enumerate(texts):
            r = self._rows.get(text_key(t))
            if r is None:
                return None
            out[i] = r
        return out


def is_frozen_backbone(encoder: Encoder) -> bool:
    """True when the encoder's features come from a frozen backbone (so they can be cached)."""
    return bool(getattr(encoder.module, "frozen", False)) and hasattr(encoder.module, "backbone_embed")


def backbone_key(encoder: Encoder) -> str:
    """The cache key of the encoder's backbone (not of its head)."""
    spec = encoder.spec
    ident = {
        "kind": spec.get("kind"),
        "model": spec.get("model"),
        "max_seq_length": getattr(encoder.module, "max_seq_length", spec.get("max_seq_length")),
        "weights": encoder.module.fingerprint_extra(),  # type: ignore[operator]
    }
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:24]


def feature_table(
    encoder: Encoder,
    texts: Iterable[str],
    cache_root: str | Path,
    *,
    batch_size: int | None = None,
    encode: bool = True,
) -> FeatureTable:
    """Backbone features for ``texts``, read from and added to the cache under ``cache_root``.

    ``texts`` are as the backbone sees them: put a model's prompts on first (:meth:`Encoder.prompted`).

    With ``encode=False`` nothing is embedded: the table holds what the cache already has (possibly
    every cached text, not only ``texts``). ``batch_size``: texts per backbone batch (default 32 on a
    CPU, 128 on a GPU).
    """
    path = Path(cache_root) / CACHE_DIR / f"{backbone_key(encoder)}.npz"
    keys, feats = np.zeros((0, 16), dtype=np.uint8), None
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            keys, feats = z["keys"], z["features"]
        if keys.ndim != 2:  # written by an earlier version with lossy 'S16' keys: rebuild
            keys, feats = np.zeros((0, 16), dtype=np.uint8), None
    have = {k.tobytes() for k in keys}
    missing = list(dict.fromkeys(t for t in texts if text_key(t) not in have)) if encode else []
    if missing:
        log.info("embedding %d new texts with the frozen backbone (cache: %s)", len(missing), path)
        new = _backbone_features(encoder, missing, batch_size)
        new_keys = np.frombuffer(b"".join(text_key(t) for t in missing), dtype=np.uint8).reshape(-1, 16)
        keys = np.concatenate([keys, new_keys])
        feats = new if feats is None else np.concatenate([feats, new])
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, keys=keys, features=feats)
    assert feats is not None or not len(keys)
    return FeatureTable(keys, feats if feats is not None else np.zeros((0, 0), dtype=np.float32))


def _backbone_features(encoder: Encoder, texts: list[str], batch_size: int | None) -> np.ndarray:
    module = encoder.module
    module.eval()
    cpu = encoder.device.type == "cpu"
    return encode_sorted(
        texts,
        lambda batch: module.backbone_embed(batch, encoder.device).float().cpu().numpy(),  # type: ignore[operator]
        batch_size=encoder.batch_for(batch_size or (CPU_FEATURE_BATCH if cpu else GPU_FEATURE_BATCH)),
        streams=encoder.encode_streams(),
    )


class CachedFeatureEncoder(Encoder):
    """An encoder that takes its frozen-backbone features from a :class:`FeatureTable` when it has them."""

    def __init__(self, base: Encoder, table: FeatureTable) -> None:
        super().__init__(base.spec, base.module)
        self.table = table

    def embed(self, texts: Sequence[str], *, role: Role | None = "document") -> torch.Tensor:
        texts = self.prompted(texts, role)  # the cache holds features of the texts the backbone saw
        rows = self.table.rows(texts)
        if rows is None:
            return super().embed(texts, role=None)
        features = torch.from_numpy(self.table.features[rows]).to(self.device)
        return nn.functional.normalize(self._impl.forward(features), dim=-1)
