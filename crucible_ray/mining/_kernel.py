"""The mining kernel, pure torch: exact top-N retrieval, false-negative ceiling, lineup kills.

Runs wherever its tensors are (a GPU inside an encoder actor, the CPU in a laptop loop). It never
materialises the full candidates x corpus score matrix: the corpus is scanned in chunks and a running
top-k is merged. Matrix-product scores round differently with the shape of the product; wherever one
could change a decision it is recomputed row by row in float64 (:func:`settle_near_thresholds`), so no
decision depends on how many rows share a batch or on the device's summation order.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import torch

DEFAULT_CHUNK = 32768
#: On a CPU, anchors are scored 256 at a time against 16,384 corpus rows: a 16 MB block of scores. On
#: the 2-core benchmark VM this retrieved about 8% faster than 256 anchors against 32,768 rows, and a
#: third faster than a batch of 1,024 in one block; the cost per candidate no longer grows with the batch.
CPU_QUERY_TILE = 256
CPU_CHUNK = 16384
_WORKSPACE = threading.local()  # per thread: the block of scores retrieval reuses on a CPU

#: Names how scores are computed in run keys and manifests; change it whenever that changes.
SCORING = "product-settled-f64/1"


def _as_chunk(corpus: torch.Tensor | np.ndarray, start: int, stop: int, device: torch.device) -> torch.Tensor:
    part = corpus[start:stop]
    if isinstance(part, np.ndarray):
        # A memory-mapped corpus is read-only; torch wants writable memory, so copy the chunk.
        part = torch.from_numpy(np.array(part, dtype=np.float32, copy=not part.flags.writeable, order="C"))
    return part.to(device=device, dtype=torch.float32, non_blocking=True)


@torch.no_grad()
def retrieve(
    anchors: torch.Tensor,
    corpus: torch.Tensor | np.ndarray,
    *,
    k: int,
    exclude: torch.Tensor | None = None,
    rank_min: int = 0,
    chunk_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` nearest corpus rows of each anchor after ``rank_min`` skipped, excluded rows left out.

    Args:
        anchors: (B, d) normalised anchor embeddings.
        corpus: (C, d) normalised corpus embeddings: a tensor, a numpy array or a ``np.memmap``
            (read chunk by chunk, so a memory-mapped corpus never has to fit in memory).
        k: how many to return per row.
        exclude: (B, E) corpus rows that must never be returned (the positive, the anchor), ``-1`` = none.
        rank_min: ranks ``0 .. rank_min-1`` (after exclusion) are skipped: the rank window's start.
        chunk_size: corpus rows scored per matrix product (default ``CPU_CHUNK`` on a CPU, where
            anchors also go ``CPU_QUERY_TILE`` at a time, and ``DEFAULT_CHUNK`` on a GPU).

    Returns:
        ``(scores, index)``, each (B, k): best first; ``index == -1`` and ``scores == -inf`` where the
        corpus has fewer eligible rows.
    """
    b, device = anchors.shape[0], anchors.device
    n_corpus = int(corpus.shape[0])
    n_ex = 0 if exclude is None else int(exclude.shape[1])
    want = min(rank_min + k + n_ex, n_corpus)
    if b == 0 or want == 0:
        return torch.full((b, k), float("-inf"), device=device), torch.full((b, k), -1, dtype=torch.long, device=device)
    anchors = anchors.float()
    on_cpu = device.type == "cpu"
    chunk_size = chunk_size or (CPU_CHUNK if on_cpu else DEFAULT_CHUNK)
    tiles = anchors.split(CPU_QUERY_TILE) if on_cpu else (anchors,)
    none = torch.empty((0,), device=device)
    tops = [(none.expand(len(t), 0), none.long().expand(len(t), 0)) for t in tiles]
    for start in range(0, n_corpus, chunk_size):  # each chunk is read once, then scored for every tile
        chunk = _as_chunk(corpus, start, min(start + chunk_size, n_corpus), device)
        tops = [_merge_top(top, _scores(t, chunk), start, want) for t, top in zip(tiles, tops, strict=True)]
    best_s = torch.cat([s for s, _ in tops])
    best_i = torch.cat([i for _, i in tops])
    # Drop excluded rows, then skip rank_min and keep k (ranks counted after exclusion).
    if exclude is not None and n_ex:
        excluded = (best_i[:, :, None] == exclude[:, None, :]).any(-1)  # (B, want)
    else:
        excluded = torch.zeros_like(best_i, dtype=torch.bool)
    rank = torch.cumsum((~excluded).long(), dim=1) - 1  # rank among non-excluded
    take = ~excluded & (rank >= rank_min) & (rank < rank_min + k)
    order = torch.argsort((~take).long() * (best_i.shape[1] + 1) + torch.arange(best_i.shape[1], device=device), dim=1)
    n_out = min(k, best_i.shape[1])
    sel = order[:, :n_out]
    out_s = torch.gather(best_s, 1, sel)
    out_i = torch.gather(best_i, 1, sel)
    valid = torch.gather(take, 1, sel)
    out_s = torch.where(valid, out_s, torch.full_like(out_s, float("-inf")))
    out_i = torch.where(valid, out_i, torch.full_like(out_i, -1))
    if n_out < k:
        pad = k - n_out
        out_s = torch.cat([out_s, torch.full((b, pad), float("-inf"), device=device)], dim=1)
        out_i = torch.cat([out_i, torch.full((b, pad), -1, dtype=torch.long, device=device)], dim=1)
    return out_s, out_i


def _scores(tile: torch.Tensor, chunk: torch.Tensor) -> torch.Tensor:
    """``tile @ chunk.T``; on a CPU written into this thread's reused 16 MB block. A fresh block per
    product lands on different memory every time, which made retrieval's speed vary by up to 20%
    between otherwise identical calls on the benchmark VM; the reused block keeps it steady."""
    if tile.device.type != "cpu":
        return tile @ chunk.T
    n = tile.shape[0] * chunk.shape[0]
    block: torch.Tensor | None = getattr(_WORKSPACE, "scores", None)
    if block is None or block.numel() < n:
        # A normal tensor even when the first caller runs in inference mode (mining does): a later
        # caller outside it may write into the block too.
        with torch.inference_mode(False):
            block = _WORKSPACE.scores = torch.empty(max(n, CPU_QUERY_TILE * CPU_CHUNK))
    return torch.mm(tile, chunk.T, out=block[:n].view(tile.shape[0], chunk.shape[0]))


def _merge_top(
    best: tuple[torch.Tensor, torch.Tensor], scores: torch.Tensor, start: int, want: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``want`` best of ``best`` and of ``scores`` (a block of corpus rows from ``start``)."""
    s, i = torch.topk(scores, min(want, scores.shape[1]), dim=1)
    merged_s = torch.cat([best[0], s], dim=1)
    merged_i = torch.cat([best[1], i + start], dim=1)
    s, pos = torch.topk(merged_s, min(want, merged_s.shape[1]), dim=1)
    return s, torch.gather(merged_i, 1, pos)


def corpus_rows(corpus: torch.Tensor | np.ndarray, rows: np.ndarray, device: torch.device) -> torch.Tensor:
    """Rows of the corpus embeddings as float32 on ``device``; from an array or memory map only
    those rows are read."""
    if isinstance(corpus, torch.Tensor):
        vectors = corpus.index_select(0, torch.from_numpy(rows).to(corpus.device))
    else:
        vectors = torch.from_numpy(np.asarray(corpus[rows], dtype=np.float32))
    return vectors.to(device=device, dtype=torch.float32)


def rowwise_scores(anchors: torch.Tensor, others: torch.Tensor) -> torch.Tensor:
    """``s(a_b, x_bj)`` for anchors (B, d) and others (B, N, d) -> (B, N) float32.

    Summed in float64 and rounded once, so each value is the correctly rounded dot product in all
    but astronomically rare cases: the same whatever the batch's shape, the summation order or the
    device (Apple's MPS, which has no float64, sums in float32).
    """
    wide = torch.float32 if anchors.device.type == "mps" else torch.float64
    return (anchors[:, None, :].to(wide) * others.to(wide)).sum(-1).to(torch.float32)


def product_tolerance(device: torch.device, dim: int) -> float:
    """How far a matrix-product score of two unit vectors may sit from its :func:`rowwise_scores` value.

    In IEEE float32 a product is within ``dim * 2**-24`` of the exact dot product (and the row-by-row
    value within half a float32 unit of it); this returns four times that (at least 1e-5). When
    float32 products may run in reduced precision (TF32, bf16: ``torch.set_float32_matmul_precision``
    other than ``"highest"``), a bf16 bound of 2e-2.
    """
    backend = torch.backends.cuda.matmul if device.type == "cuda" else getattr(torch.backends.mkldnn, "matmul", None)
    reduced = getattr(backend, "fp32_precision", "none") not in ("none", "ieee")
    if reduced or torch.get_float32_matmul_precision() != "highest":
        return 2e-2
    return max(1e-5, 4 * dim * 2.0**-24)


@torch.no_grad()
def settle_near_thresholds(
    scores: torch.Tensor,
    index: torch.Tensor,
    anchors: torch.Tensor,
    corpus: torch.Tensor | np.ndarray,
    thresholds: list[torch.Tensor],
    *,
    tolerance: float,
) -> int:
    """Replace, in place, the retrieved scores within ``tolerance`` of a decision threshold by their
    row-by-row values; returns how many were replaced.

    Retrieval scores come from matrix products, whose rounding depends on how many rows share one.
    A decision ``score >= threshold`` taken on a settled score is the decision on the row-by-row
    value, which is the same whatever the batch: near a threshold the score is that value, and
    farther away both lie on the same side (given ``tolerance`` from :func:`product_tolerance`).

    Args:
        scores: (B, N) retrieval scores, ``-inf`` where ``index`` is ``-1``.
        index: (B, N) their corpus rows.
        anchors: (B, d) the anchors they were scored against.
        corpus: (C, d) the corpus embeddings (tensor, array or memory map).
        thresholds: (B,) tensors; each row's decisions compare its scores with these.
        tolerance: the largest possible gap between a product score and its row-by-row value.
    """
    near = torch.zeros_like(index, dtype=torch.bool)
    for t in thresholds:
        near.logical_or_((scores - t[:, None]).abs_() <= tolerance)  # never where scores are -inf
    if not bool(near.any()):  # the usual case
        return 0
    rows, cols = near.nonzero(as_tuple=True)
    vectors = corpus_rows(corpus, index[rows, cols].cpu().numpy(), scores.device)
    scores[rows, cols] = rowwise_scores(anchors[rows], vectors[:, None, :])[:, 0]
    return len(rows)


@dataclass(frozen=True)
class LineupVerdict:
    """What the lineups said about each row of a batch (all tensors on the kernel's device)."""

    kills: torch.Tensor  # (B, K) bool: lineup k killed
    lineup_max: torch.Tensor  # (B, K) the best negative score in lineup k (meaningless where not sufficient)
    pass_count: torch.Tensor  # (B,) number of killing lineups (0 when insufficient)
    sufficient: torch.Tensor  # (B,) bool: at least m negatives
    dangerous: torch.Tensor  # (B, N) bool: a valid negative with s(a, n) >= s(a, p) - delta
    appearances: torch.Tensor  # (B, N) in how many lineups each negative was drawn
    kill_counts: torch.Tensor  # (B, N) lineups this negative killed (appearances when dangerous, else 0)


@torch.no_grad()
def judge_lineups(
    score_positive: torch.Tensor,
    score_negatives: torch.Tensor,
    valid: torch.Tensor,
    lineups: torch.Tensor,
    *,
    danger_margin: float,
) -> LineupVerdict:
    """Evaluate every lineup: it kills when ``max_{j in L_k} s(a, n_j) >= s(a, p) - danger_margin``.

    Args:
        score_positive: (B,) ``s(a, p)``.
        score_negatives: (B, N) ``s(a, n_j)``; entries where ``valid`` is False are ignored.
        valid: (B, N) bool; valid negatives come first in each row.
        lineups: (B, K, m) int64 indices into the row's valid negatives, ``-1`` for an insufficient row
            (from :func:`~crucible_ray.mining.draw_lineups` with the row's count of valid negatives).
        danger_margin: delta.
    """
    b, n = score_negatives.shape
    k, m = lineups.shape[1], lineups.shape[2]
    device = score_negatives.device
    lineups = lineups.to(device)
    # Rows are all -1 (insufficient) or all valid indices, so the first entry says which.
    sufficient = lineups[:, 0, 0] >= 0 if lineups.numel() else torch.zeros(b, dtype=torch.bool, device=device)
    flat = lineups.reshape(b, k * m).clamp(min=0)  # (B, K*m)
    # Lineups only hold indices of valid negatives (they come first, and draws stay below the count).
    lineup_max = (
        torch.gather(score_negatives, 1, flat).view(b, k, m).amax(dim=2)
        if m
        else score_negatives.new_full((b, k), -torch.inf)
    )
    threshold = score_positive - danger_margin  # (B,)
    kills = (lineup_max >= threshold[:, None]) & sufficient[:, None]
    pass_count = kills.sum(dim=1)
    dangerous = valid & (score_negatives >= threshold[:, None])
    appearances = torch.zeros((b, n), dtype=torch.long, device=device)
    appearances.scatter_add_(1, flat, sufficient[:, None].long().expand(b, k * m))
    kill_counts = appearances * dangerous
    return LineupVerdict(
        kills=kills,
        lineup_max=lineup_max,
        pass_count=pass_count,
        sufficient=sufficient,
        dangerous=dangerous,
        appearances=appearances,
        kill_counts=kill_counts,
    )
