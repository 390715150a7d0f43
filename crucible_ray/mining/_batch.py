"""One batch of candidates through encoder and kernel: texts in, result rows (Arrow) out.

This is the whole per-row computation. The Ray actors and the single-process loop both call
:func:`mine_batch`, so they cannot disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import torch

from crucible_ray.encoders import Encoder
from crucible_ray.errors import MiningError
from crucible_ray.mining._config import MinerConfig
from crucible_ray.mining._corpus import CorpusIndex
from crucible_ray.mining._kernel import LineupVerdict, judge_lineups, retrieve, rowwise_scores
from crucible_ray.mining._lineups import draw_lineups
from crucible_ray.mining._text import text_code

_NEG = pa.struct([("text", pa.string()), ("id", pa.string()), ("score", pa.float32())])
_KILLER = pa.struct([("text", pa.string()), ("id", pa.string()), ("score", pa.float32()), ("kills", pa.int32())])

RESULT_SCHEMA = pa.schema(
    [
        ("candidate_id", pa.string()),
        ("anchor", pa.string()),
        ("positive", pa.string()),
        ("n_negatives", pa.int32()),
        ("n_dropped_false_negatives", pa.int32()),
        ("n_dropped_duplicates", pa.int32()),
        ("pass_count", pa.int32()),
        ("lineups", pa.int32()),
        ("accepted", pa.bool_()),
        ("status", pa.string()),
        ("score_positive", pa.float32()),
        ("danger_max", pa.float32()),
        ("danger_mean_lineup", pa.float32()),
        ("killers", pa.list_(_KILLER)),
        ("near_misses", pa.list_(_NEG)),
    ]
)


@dataclass(frozen=True)
class CandidateBatch:
    """Columns of a batch of candidates (``negatives[i] is None``: retrieve from the corpus)."""

    candidate_id: list[str]
    anchor: list[str]
    positive: list[str]
    negatives: list[list[str] | None]
    positive_id: list[str | None]

    @classmethod
    def from_arrow(cls, table: pa.Table) -> CandidateBatch:
        """From an Arrow table or record batch with the candidate columns (``negatives``, ``positive_id`` optional)."""
        n = table.num_rows
        cols = set(table.column_names)
        for required in ("candidate_id", "anchor", "positive"):
            if required not in cols:
                raise MiningError(f"candidate batch has no {required!r} column (columns: {sorted(cols)})")
        return cls(
            candidate_id=[str(x) for x in table.column("candidate_id").to_pylist()],
            anchor=table.column("anchor").to_pylist(),
            positive=table.column("positive").to_pylist(),
            negatives=table.column("negatives").to_pylist() if "negatives" in cols else [None] * n,
            positive_id=table.column("positive_id").to_pylist() if "positive_id" in cols else [None] * n,
        )

    def __len__(self) -> int:
        return len(self.candidate_id)


def _given_negatives(negs: Sequence[str], anchor: str, positive: str) -> tuple[list[str], int]:
    """De-duplicate by normalised text and drop copies of the positive or the anchor."""
    banned = {text_code(positive), text_code(anchor)}
    out: list[str] = []
    dropped = 0
    for t in negs:
        c = text_code(t)
        if c in banned:
            dropped += 1
            continue
        banned.add(c)
        out.append(t)
    return out, dropped


@torch.no_grad()
def mine_batch(
    batch: CandidateBatch,
    encoder: Encoder,
    config: MinerConfig,
    corpus: CorpusIndex | None = None,
    *,
    corpus_tensor: torch.Tensor | None = None,
    encode_batch_size: int = 256,
) -> pa.Table:
    """Validate a batch of candidates; one result row per candidate, in input order.

    Args:
        batch: the candidates.
        encoder: the model (its device is where the kernel runs).
        config: lineups, sizes, margins, seed.
        corpus: needed when a candidate has no ``negatives`` of its own.
        corpus_tensor: the corpus embeddings already on the encoder's device (saves a copy per batch).
    """
    b = len(batch)
    if b == 0:
        return RESULT_SCHEMA.empty_table()
    device = encoder.device
    # Per row: negative texts, ids, embeddings source.
    neg_texts: list[list[str]] = [[] for _ in range(b)]
    neg_ids: list[list[str | None]] = [[] for _ in range(b)]
    dup_dropped = np.zeros(b, dtype=np.int64)
    given_rows = [i for i in range(b) if batch.negatives[i] is not None]
    mined_rows = [i for i in range(b) if batch.negatives[i] is None]
    if mined_rows and corpus is None:
        raise MiningError(
            f"candidate {batch.candidate_id[mined_rows[0]]!r} has no negatives and no corpus was given; "
            "pass --corpus F (or give every candidate a 'negatives' list)"
        )
    flat_given: list[str] = []
    for i in given_rows:
        kept, dropped = _given_negatives(batch.negatives[i] or [], batch.anchor[i], batch.positive[i])
        neg_texts[i], neg_ids[i], dup_dropped[i] = kept, [None] * len(kept), dropped
        flat_given.extend(kept)

    emb = encoder.encode([*batch.anchor, *batch.positive, *flat_given], batch_size=encode_batch_size)
    emb_t = torch.from_numpy(emb).to(device)
    anchors, positives, given_emb = emb_t[:b], emb_t[b : 2 * b], emb_t[2 * b :]
    s_pos = (anchors * positives).sum(-1)  # (B,)

    n_max = max([len(neg_texts[i]) for i in given_rows] + ([config.window] if mined_rows else []) + [0])
    s_neg = torch.full((b, n_max), float("-inf"), device=device)
    valid = torch.zeros((b, n_max), dtype=torch.bool, device=device)

    offset = 0
    for i in given_rows:
        n = len(neg_texts[i])
        if n:
            s_neg[i, :n] = rowwise_scores(anchors[i : i + 1], given_emb[None, offset : offset + n])[0]
            valid[i, :n] = True
        offset += n

    if mined_rows:
        assert corpus is not None
        rows = torch.tensor(mined_rows, dtype=torch.long, device=device)
        exclude = torch.tensor(
            [
                [
                    corpus.row_of_text(batch.positive[i]),
                    corpus.row_of_text(batch.anchor[i]),
                    corpus.row_of_id(batch.positive_id[i]),
                ]
                for i in mined_rows
            ],
            dtype=torch.long,
            device=device,
        )
        source = corpus_tensor if corpus_tensor is not None else corpus.embeddings
        _, idx = retrieve(anchors[rows], source, k=config.window, exclude=exclude, rank_min=config.rank_min)
        idx_np = idx.cpu().numpy()
        safe = idx_np.clip(min=0)
        if corpus_tensor is not None:
            neg_emb = corpus_tensor[torch.from_numpy(safe).to(device)]
        else:
            neg_emb = torch.from_numpy(np.asarray(corpus.embeddings[safe.reshape(-1)])).reshape(*safe.shape, -1)
        scores = rowwise_scores(anchors[rows], neg_emb.to(device=device, dtype=torch.float32))  # (B', N)
        ok = torch.from_numpy(idx_np >= 0).to(device)
        s_neg[rows, : config.window] = torch.where(ok, scores, torch.full_like(scores, float("-inf")))
        valid[rows, : config.window] = ok
        for r, i in enumerate(mined_rows):
            got = [int(j) for j in idx_np[r] if j >= 0]
            neg_texts[i] = [corpus.texts[j] for j in got]
            neg_ids[i] = [corpus.ids[j] for j in got]

    # Optional false-negative ceiling: drop, count, and compact the survivors to the front.
    fn_dropped = np.zeros(b, dtype=np.int64)
    s_neg_np = s_neg.cpu().numpy()
    valid_np = valid.cpu().numpy()
    s_pos_np = s_pos.cpu().numpy()
    if config.max_danger is not None:
        too_close = valid_np & (s_neg_np - s_pos_np[:, None] > config.max_danger)
        fn_dropped = too_close.sum(axis=1)
        for i in (int(x) for x in np.flatnonzero(fn_dropped)):
            keep = ~too_close[i, : len(neg_texts[i])]
            neg_texts[i] = [t for t, k in zip(neg_texts[i], keep, strict=True) if k]
            neg_ids[i] = [d for d, k in zip(neg_ids[i], keep, strict=True) if k]
            row = s_neg_np[i, : len(keep)][keep]
            s_neg_np[i] = -np.inf
            valid_np[i] = False
            s_neg_np[i, : len(row)] = row
            valid_np[i, : len(row)] = True
    n_neg = valid_np.sum(axis=1)

    lineups = draw_lineups(config.seed, batch.candidate_id, n_neg, config.lineups, config.lineup_size)
    verdict = judge_lineups(
        s_pos,
        torch.from_numpy(s_neg_np).to(device),
        torch.from_numpy(valid_np).to(device),
        torch.from_numpy(lineups),
        danger_margin=config.danger_margin,
    )
    return _rows(batch, config, neg_texts, neg_ids, s_pos_np, s_neg_np, valid_np, verdict, fn_dropped, dup_dropped)


def _rows(
    batch: CandidateBatch,
    config: MinerConfig,
    neg_texts: list[list[str]],
    neg_ids: list[list[str | None]],
    s_pos: np.ndarray,
    s_neg: np.ndarray,
    valid: np.ndarray,
    verdict: LineupVerdict,
    fn_dropped: np.ndarray,
    dup_dropped: np.ndarray,
) -> pa.Table:
    pass_count = verdict.pass_count.cpu().numpy()
    sufficient = verdict.sufficient.cpu().numpy()
    lineup_max = verdict.lineup_max.cpu().numpy()
    kill_counts = verdict.kill_counts.cpu().numpy()
    n_neg = valid.sum(axis=1)
    killers_col: list[list[dict[str, object]]] = []
    near_col: list[list[dict[str, object]]] = []
    danger_max: list[float | None] = []
    danger_mean: list[float | None] = []
    status: list[str] = []
    # Vectorised per batch; the per-row Python work below only touches plain lists.
    order_all = np.argsort(np.where(valid, -s_neg, np.inf), axis=1, kind="stable")  # most dangerous first
    scores_sorted = np.take_along_axis(s_neg, order_all, axis=1).tolist()
    kills_sorted = np.take_along_axis(kill_counts, order_all, axis=1).tolist()
    order_list = order_all.tolist()
    dmax = np.where(n_neg > 0, np.where(valid, s_neg, -np.inf).max(axis=1, initial=-np.inf) - s_pos, np.nan)
    dmean = (lineup_max - s_pos[:, None]).mean(axis=1)
    keep = config.keep_near_misses
    for i in range(len(batch)):
        n = int(n_neg[i])
        texts, ids, order, sc, kc = neg_texts[i], neg_ids[i], order_list[i], scores_sorted[i], kills_sorted[i]
        killers_col.append(
            [{"text": texts[order[r]], "id": ids[order[r]], "score": sc[r], "kills": kc[r]} for r in range(n) if kc[r]]
        )
        near = [r for r in range(n) if not kc[r]][:keep]
        near_col.append([{"text": texts[order[r]], "id": ids[order[r]], "score": sc[r]} for r in near])
        danger_max.append(float(dmax[i]) if n else None)
        danger_mean.append(float(dmean[i]) if sufficient[i] else None)
        if not sufficient[i]:
            status.append("insufficient")
        else:
            status.append("accepted" if pass_count[i] >= config.min_passes else "rejected")
    accepted = [s == "accepted" for s in status]
    return pa.table(
        {
            "candidate_id": batch.candidate_id,
            "anchor": batch.anchor,
            "positive": batch.positive,
            "n_negatives": n_neg.astype(np.int32),
            "n_dropped_false_negatives": np.asarray(fn_dropped, dtype=np.int32),
            "n_dropped_duplicates": np.asarray(dup_dropped, dtype=np.int32),
            "pass_count": np.where(sufficient, pass_count, 0).astype(np.int32),
            "lineups": np.where(sufficient, config.lineups, 0).astype(np.int32),
            "accepted": accepted,
            "status": status,
            "score_positive": s_pos.astype(np.float32),
            "danger_max": pa.array(danger_max, type=pa.float32()),
            "danger_mean_lineup": pa.array(danger_mean, type=pa.float32()),
            "killers": pa.array(killers_col, type=pa.list_(_KILLER)),
            "near_misses": pa.array(near_col, type=pa.list_(_NEG)),
        },
        schema=RESULT_SCHEMA,
    )
