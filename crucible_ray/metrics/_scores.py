"""From bundles and embeddings to the padded score matrices the tier metrics take."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from crucible_ray.data import Bundle

_CHUNK = 4096

EncodeFn = Callable[[list[str]], np.ndarray]


@dataclass(frozen=True)
class BundleScores:
    """Cosine scores of an eval set: ``s_pos`` (B,), ``s_neg`` (B, N) padded, ``tiers`` (B, N), 0 = pad."""

    s_pos: np.ndarray
    s_neg: np.ndarray
    tiers: np.ndarray


def score_bundles(bundles: Sequence[Bundle], encode: EncodeFn, encode_queries: EncodeFn | None = None) -> BundleScores:
    """Embed every distinct text once with ``encode`` (L2-normalised rows) and score each bundle.

    ``encode_queries``, when given, embeds the anchors instead (a model with a query prompt); without
    it anchors and documents are embedded together.
    """
    texts: dict[str, int] = {}
    anchors: dict[str, int] = texts if encode_queries is None else {}
    for b in bundles:
        anchors.setdefault(b.anchor, len(anchors))
        texts.setdefault(b.positive, len(texts))
        for n in b.negatives:
            texts.setdefault(n.text, len(texts))
    emb = np.asarray(encode(list(texts)), dtype=np.float32)  # (T, d)
    a_emb = emb if encode_queries is None else np.asarray(encode_queries(list(anchors)), dtype=np.float32)
    width = max((len(b.negatives) for b in bundles), default=0)
    B = len(bundles)
    a_idx = np.fromiter((anchors[b.anchor] for b in bundles), dtype=np.int64, count=B)
    p_idx = np.fromiter((texts[b.positive] for b in bundles), dtype=np.int64, count=B)
    n_idx = np.zeros((B, width), dtype=np.int64)
    tiers = np.zeros((B, width), dtype=np.int8)
    for i, b in enumerate(bundles):
        for j, n in enumerate(b.negatives):
            n_idx[i, j] = texts[n.text]
            tiers[i, j] = n.tier
    s_pos = np.einsum("bd,bd->b", a_emb[a_idx], emb[p_idx])  # (B,)
    s_neg = np.empty((B, width), dtype=np.float32)
    for lo in range(0, B, _CHUNK):  # chunked so that (chunk, N, d) stays small for large eval sets
        hi = min(lo + _CHUNK, B)
        s_neg[lo:hi] = np.einsum("bd,bnd->bn", a_emb[a_idx[lo:hi]], emb[n_idx[lo:hi]])  # (chunk, N)
    return BundleScores(s_pos=s_pos.astype(np.float64), s_neg=s_neg.astype(np.float64), tiers=tiers)
