"""InfoNCE over a positive, the anchor's own negatives and the batch's other positives."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def info_nce(
    anchors: torch.Tensor,
    positives: torch.Tensor,
    negatives: torch.Tensor,
    negative_mask: torch.Tensor,
    *,
    temperature: float,
    positive_ids: list[str] | None = None,
    anchor_ids: list[str] | None = None,
) -> torch.Tensor:
    """Mean InfoNCE loss; embeddings are expected L2-normalised (scores are dot products).

    For anchor ``i`` the logits are ``[s(a_i, p_i), s(a_i, n_i1..n_iN), s(a_i, p_j) for j != i] / tau`` and
    the target is its own positive.

    Args:
        anchors, positives: (B, d).
        negatives: (B, N, d) the anchor's own sampled negatives (N may be 0).
        negative_mask: (B, N) bool, False for padding.
        temperature: tau.
        positive_ids: optional id of each row's positive; other rows with the same id are left out of
            row ``i``'s logits (a bundle drawn twice in one batch is not its own negative).
        anchor_ids: optional id of each row's anchor; rows with the same anchor are left out of each
            other's logits (an anchor with several positives: each is a positive, never a negative).
    """
    b = anchors.shape[0]
    s_pos = (anchors * positives).sum(-1, keepdim=True)  # (B, 1)
    s_own = torch.einsum("bd,bnd->bn", anchors, negatives) if negatives.shape[1] else anchors.new_zeros((b, 0))
    s_own = s_own.masked_fill(~negative_mask, float("-inf"))
    s_batch = anchors @ positives.T  # (B, B)
    drop = torch.eye(b, dtype=torch.bool, device=anchors.device)
    for keys in (positive_ids, anchor_ids):
        if keys is not None:
            codes = {k: i for i, k in enumerate(dict.fromkeys(keys))}
            ids = torch.tensor([codes[k] for k in keys], device=anchors.device)
            drop = drop | (ids[:, None] == ids[None, :])
    s_batch = s_batch.masked_fill(drop, float("-inf"))
    logits = torch.cat([s_pos, s_own, s_batch], dim=1) / temperature
    target = torch.zeros(b, dtype=torch.long, device=anchors.device)
    return F.cross_entropy(logits, target)
