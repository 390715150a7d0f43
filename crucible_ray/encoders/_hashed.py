"""The default encoder: a bag of hashed character n-grams and words, trainable from scratch on CPU.

Each text is lower-cased and split into words; every word contributes its character n-grams (with
``<`` and ``>`` boundary marks) and itself as a whole-word token. Tokens are hashed (crc32, salted
by the seed, so stable across processes and machines) into ``buckets`` rows of an ``EmbeddingBag``
with a hashed sign, summed, and L2-normalised by :class:`~crucible_ray.encoders.Encoder`.
Untrained, it behaves like a random projection of n-gram counts: similar spellings score high.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

_WORD = re.compile(r"\w+", re.UNICODE)

# The largest table (buckets x dim weights) a spec may ask for: 1 GiB of float32 (the default is 8.4M).
MAX_WEIGHTS = 1 << 28


class HashedNgramParams(BaseModel):
    """Parameters of ``hashed-ngram``."""

    model_config = ConfigDict(extra="forbid")

    dim: int = Field(128, ge=2, le=4096)
    buckets: int = Field(1 << 16, ge=16, le=1 << 24)  # x dim 128: 8.4M weights, 34 MB checkpoints
    ngram_min: int = Field(3, ge=1, le=8)
    ngram_max: int = Field(5, ge=1, le=8)
    words: bool = True
    seed: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _ngram_order(self) -> HashedNgramParams:
        if self.ngram_min > self.ngram_max:
            raise ValueError(f"ngram_min ({self.ngram_min}) must be <= ngram_max ({self.ngram_max})")
        if self.buckets * self.dim > MAX_WEIGHTS:
            raise ValueError(
                f"buckets x dim is {self.buckets:,} x {self.dim:,} = {self.buckets * self.dim:,} weights, over the "
                f"limit of {MAX_WEIGHTS:,} (1 GiB); lower buckets or dim"
            )
        return self


def hashed_state_shapes(params: HashedNgramParams) -> dict[str, tuple[int, ...]]:
    """The tensors a ``hashed-ngram`` checkpoint stores: one (buckets, dim) table."""
    return {"bag.weight": (params.buckets, params.dim)}


@lru_cache(maxsize=500_000)
def _hash_text(
    text: str, salt: int, buckets: int, ngram_min: int, ngram_max: int, words: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Bucket indices and signs of a text's tokens (cached: training sees the same texts often)."""
    ids: list[int] = []
    for word in _WORD.findall(text.lower()):
        marked = f"<{word}>"
        grams = [marked[i : i + n] for n in range(ngram_min, ngram_max + 1) for i in range(max(len(marked) - n + 1, 0))]
        if words:
            grams.append("w:" + word)
        ids.extend(zlib.crc32(g.encode("utf-8"), salt) for g in grams)
    if not ids:  # a text with no word characters still gets a (shared) token
        ids.append(zlib.crc32(b"<empty>", salt))
    h = np.asarray(ids, dtype=np.uint64)
    index = (h % np.uint64(buckets)).astype(np.int64)
    sign = np.where((h >> np.uint64(31)) & np.uint64(1), -1.0, 1.0).astype(np.float32)
    index.flags.writeable = False
    sign.flags.writeable = False
    return index, sign


class HashedNgramModule(nn.Module):
    """``EmbeddingBag(buckets, dim, mode="sum")`` over signed hashed tokens."""

    def __init__(self, params: HashedNgramParams) -> None:
        super().__init__()
        self.params = params
        self.dim = params.dim
        gen = torch.Generator().manual_seed(params.seed)
        self.bag = nn.EmbeddingBag(params.buckets, params.dim, mode="sum")
        with torch.no_grad():
            self.bag.weight.copy_(torch.randn(params.buckets, params.dim, generator=gen) / params.dim**0.5)

    def featurize(self, texts: Sequence[str], device: torch.device) -> tuple[torch.Tensor, ...]:
        p = self.params
        parts = [_hash_text(t, p.seed & 0xFFFFFFFF, p.buckets, p.ngram_min, p.ngram_max, p.words) for t in texts]
        lengths = np.fromiter((len(ix) for ix, _ in parts), dtype=np.int64, count=len(parts))
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]) if len(parts) else np.zeros(0, np.int64)
        index = np.concatenate([ix for ix, _ in parts]) if parts else np.zeros(0, np.int64)
        weight = np.concatenate([w for _, w in parts]) if parts else np.zeros(0, np.float32)
        return (
            torch.from_numpy(index).to(device),
            torch.from_numpy(offsets).to(device),
            torch.from_numpy(weight).to(device),
        )

    def forward(self, features: tuple[torch.Tensor, ...]) -> torch.Tensor:
        index, offsets, weight = features
        return self.bag(index, offsets, per_sample_weights=weight)  # (n, dim)

    def trainable_state(self) -> dict[str, torch.Tensor]:
        return dict(self.state_dict())

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        self.load_state_dict(state)

    def fingerprint_extra(self) -> str:
        return ""
