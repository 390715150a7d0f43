"""One batch of candidates through encoder and kernel: texts in, result rows (Arrow) out.

This is the whole per-row computation. The Ray actors and the single-process loop both call
:func:`mine_batch`, so they cannot disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import torch

from crucible_ray.encoders import Encoder
from crucible_ray.errors import MiningError
from crucible_ray.mining._config import MinerConfig
from crucible_ray.mining._corpus import CorpusIndex
from crucible_ray.mining._kernel import (
    LineupVerdict,
    corpus_rows,
    judge_lineups,
    product_tolerance,
    retrieve,
    rowwise_scores,
    settle_near_thresholds,
)
from crucible_ray.mining._lineups import draw_lineups, lineup_randoms
from crucible_ray.mining._text import text_code

_NEG = pa.struct([("text", pa.string()), ("id", pa.string()), ("score", pa.float32())])
_KILLER = pa.struct([("text", pa.string()), ("id", pa.string()), ("score", pa.float32()), ("kills", pa.int32())])

_STATUS = pa.array(["insufficient", "accepted", "rejected"], type=pa.string())

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
    other_positives: list[list[str] | None] = field(default_factory=list)  # never negatives; [] when none
    # The Arrow string columns the batch came from, reused as they are for the result rows.
    arrow: dict[str, pa.Array | pa.ChunkedArray] = field(default_factory=dict, compare=False, repr=False)

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
            other_positives=table.column("other_positives").to_pylist() if "other_positives" in cols else [None] * n,
            arrow={
                c: table.column(c)
                for c in ("candidate_id", "anchor", "positive")
                if pa.types.is_string(table.schema.field(c).type)
            },
        )

    def __len__(self) -> int:
        return len(self.candidate_id)


def _given_negatives(
    negs: Sequence[str], anchor: str, positive: str, others: Sequence[str] = ()
) -> tuple[list[str], int]:
    """De-duplicate by normalised text and drop copies of the positive, the anchor or another positive."""
    banned = {text_code(positive), text_code(anchor), *(text_code(t) for t in others)}
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


@torch.inference_mode()  # an Arrow table out: nothing here is ever differentiated
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
    # The draws' random numbers do not depend on retrieval: computed first, while the caches are warm.
    randoms = lineup_randoms(config.seed, batch.candidate_id, config.lineups, config.lineup_size)
    # src[i, j]: where negative j of row i comes from, as an index into the pool of corpus rows followed
    # by the batch's given negatives; -1 where there is none. Texts and ids are only gathered at the end.
    n_corpus = len(corpus) if corpus is not None else 0
    dup_dropped = np.zeros(b, dtype=np.int64)
    given_rows = [i for i, negs in enumerate(batch.negatives) if negs is not None]
    mined_rows = [i for i, negs in enumerate(batch.negatives) if negs is None]
    if mined_rows and corpus is None:
        raise MiningError(
            f"candidate {batch.candidate_id[mined_rows[0]]!r} has no negatives and no corpus was given; "
            "pass --corpus F (or give every candidate a 'negatives' list)"
        )
    flat_given: list[str] = []
    given_counts: list[int] = []
    for i in given_rows:
        kept, dup_dropped[i] = _given_negatives(
            batch.negatives[i] or [], batch.anchor[i], batch.positive[i], _others(batch, i)
        )
        flat_given.extend(kept)
        given_counts.append(len(kept))

    texts = [*batch.anchor, *batch.positive, *flat_given]
    # Corpus rows of every text (by normalised text), looked up once: for reuse and for exclusion.
    text_rows = np.array([corpus.row_of_text(t) for t in texts] if corpus is not None else [-1] * len(texts))
    emb_t = embed_texts(
        texts, encoder, corpus, corpus_tensor, batch_size=encode_batch_size, text_rows=text_rows, queries=b
    )
    anchors, positives, given_emb = emb_t[:b], emb_t[b : 2 * b], emb_t[2 * b :]
    s_pos = rowwise_scores(anchors, positives[:, None, :])[:, 0]  # (B,)

    n_max = max(given_counts + ([config.window] if mined_rows else []) + [0])
    s_neg = torch.full((b, n_max), float("-inf"), device=device)
    valid = torch.zeros((b, n_max), dtype=torch.bool, device=device)
    src = np.full((b, n_max), -1, dtype=np.int64)

    offset = 0
    for i, n in zip(given_rows, given_counts, strict=True):
        if n:
            s_neg[i, :n] = rowwise_scores(anchors[i : i + 1], given_emb[None, offset : offset + n])[0]
            valid[i, :n] = True
            src[i, :n] = np.arange(n_corpus + offset, n_corpus + offset + n)
        offset += n

    if mined_rows:
        assert corpus is not None
        # Every row mined (the usual case): plain slices instead of gathers and scatters.
        m_rows: slice | np.ndarray = slice(0, b) if len(mined_rows) == b else np.asarray(mined_rows)
        t_rows: slice | torch.Tensor = m_rows if isinstance(m_rows, slice) else torch.from_numpy(m_rows).to(device)
        pid = [batch.positive_id[i] for i in mined_rows]
        exclude = np.stack(
            [
                text_rows[b : 2 * b][m_rows],  # the positive's row
                text_rows[:b][m_rows],  # the anchor's row
                np.array([corpus.row_of_id(p) for p in pid])
                if any(p is not None for p in pid)
                else np.full(len(mined_rows), -1),
            ],
            axis=1,
        )
        source = corpus_tensor if corpus_tensor is not None else corpus.embeddings
        a_mined = anchors[t_rows]
        exclude_t = torch.from_numpy(exclude.astype(np.int64)).to(device)
        scores, idx = retrieve(a_mined, source, k=config.window, exclude=exclude_t, rank_min=config.rank_min)
        # Decisions compare scores with s(a, p) - delta (kills) and s(a, p) + max_danger (the ceiling).
        # Scores near either are recomputed row by row, so no decision depends on the batch.
        s_pos_mined = s_pos[t_rows]
        thresholds = [s_pos_mined - config.danger_margin]
        if config.max_danger is not None:
            thresholds.append(s_pos_mined + config.max_danger)
        settle_near_thresholds(
            scores, idx, a_mined, source, thresholds, tolerance=product_tolerance(device, int(a_mined.shape[1]))
        )
        scores, idx = _without_other_positives(scores, idx, [_others(batch, i) for i in mined_rows], corpus)
        s_neg[t_rows, : config.window] = scores  # -inf where retrieval found nothing
        valid[t_rows, : config.window] = idx >= 0
        src[m_rows, : config.window] = idx.cpu().numpy()  # -1 where retrieval found nothing

    s_neg_np = s_neg.cpu().numpy()
    valid_np = valid.cpu().numpy()
    s_pos_np = s_pos.cpu().numpy()
    # Optional false-negative ceiling: drop, count, and compact the survivors to the front (order kept).
    fn_dropped = np.zeros(b, dtype=np.int64)
    if config.max_danger is not None:
        too_close = valid_np & (s_neg_np - s_pos_np[:, None] > config.max_danger)
        fn_dropped = too_close.sum(axis=1)
        keep = valid_np & ~too_close
        order = np.argsort(~keep, axis=1, kind="stable")
        s_neg_np = np.take_along_axis(np.where(keep, s_neg_np, -np.inf), order, axis=1)
        src = np.take_along_axis(np.where(keep, src, -1), order, axis=1)
        valid_np = np.take_along_axis(keep, order, axis=1)
    n_neg = valid_np.sum(axis=1)

    lineups = draw_lineups(config.seed, batch.candidate_id, n_neg, config.lineups, config.lineup_size, randoms=randoms)
    verdict = judge_lineups(
        s_pos,
        torch.from_numpy(s_neg_np).to(device),
        torch.from_numpy(valid_np).to(device),
        torch.from_numpy(lineups),
        danger_margin=config.danger_margin,
    )
    pool = _Pool.of(corpus, flat_given)
    return _rows(batch, config, pool, src, s_pos_np, s_neg_np, valid_np, n_neg, verdict, fn_dropped, dup_dropped)


def _others(batch: CandidateBatch, i: int) -> list[str]:
    """The other positives of row ``i``'s anchor (never negatives)."""
    return (batch.other_positives[i] if batch.other_positives else None) or []


def _without_other_positives(
    scores: torch.Tensor, idx: torch.Tensor, others: list[list[str]], corpus: CorpusIndex
) -> tuple[torch.Tensor, torch.Tensor]:
    """Retrieved rows minus each anchor's other positives, the rest moved up in order (-inf / -1 after).

    Filtered after retrieval, not excluded in it: the exclusion width (and so the retrieval) then
    stays the same for every batch, and a row's result depends on that row alone.
    """
    banned = [{r for r in (corpus.row_of_text(t) for t in o) if r >= 0} for o in others]
    if not any(banned):
        return scores, idx
    idx_np = idx.cpu().numpy()
    keep = np.array([[j not in ban for j in row] for row, ban in zip(idx_np, banned, strict=True)]) & (idx_np >= 0)
    order = torch.from_numpy(np.argsort(~keep, axis=1, kind="stable")).to(idx.device)
    keep_t = torch.from_numpy(keep).to(idx.device)
    scores = torch.gather(scores.masked_fill(~keep_t, float("-inf")), 1, order)
    idx = torch.gather(idx.masked_fill(~keep_t, -1), 1, order)
    return scores, idx


def embed_texts(
    texts: Sequence[str],
    encoder: Encoder,
    corpus: CorpusIndex | None = None,
    corpus_tensor: torch.Tensor | None = None,
    *,
    batch_size: int = 256,
    text_rows: np.ndarray | None = None,
    queries: int = 0,
) -> torch.Tensor:
    """Embeddings of ``texts`` (n, d) on the encoder's device; texts found verbatim in the corpus
    (typically the positives) reuse the corpus embeddings instead of being encoded again.

    A reused row is the same vector whatever batch the text arrives in, so results stay independent
    of batching; the others go through :meth:`Encoder.encode` in one call. ``text_rows``: each text's
    :meth:`CorpusIndex.row_of_text`, when the caller has them already. The first ``queries`` texts are
    anchors: encoded with the model's query prompt, and never taken from the (document) corpus when
    that prompt differs from the document one.
    """
    device = encoder.device
    if corpus is None:
        rows = np.full(len(texts), -1)
    else:
        if text_rows is None:
            text_rows = np.array([corpus.row_of_text(t) for t in texts], dtype=np.int64)
        rows = np.array([r if r >= 0 and corpus.texts[r] == t else -1 for r, t in zip(text_rows, texts, strict=True)])
    if queries and encoder.query_prompt_differs:
        rows[:queries] = -1
    prompted = [*encoder.prompted(texts[:queries], "query"), *encoder.prompted(texts[queries:], "document")]
    missing = np.flatnonzero(rows < 0)
    out = torch.empty((len(texts), encoder.dim), dtype=torch.float32, device=device)
    if len(missing):
        encoded = encoder.encode([prompted[int(i)] for i in missing], batch_size=batch_size, role=None)
        out[torch.from_numpy(missing).to(device)] = torch.from_numpy(encoded).to(device)
    found = np.flatnonzero(rows >= 0)
    if len(found):
        assert corpus is not None
        source = corpus_tensor if corpus_tensor is not None else corpus.embeddings
        out[torch.from_numpy(found).to(device)] = corpus_rows(source, rows[found], device)
    return out


@dataclass(frozen=True)
class _Pool:
    """Texts and ids of every negative a batch can name: the corpus rows, then the given negatives."""

    texts: pa.Array
    ids: pa.Array

    @classmethod
    def of(cls, corpus: CorpusIndex | None, given: list[str]) -> _Pool:
        if corpus is not None and not given:
            return cls(corpus.text_array, corpus.id_array)
        g_texts = pa.array(given, type=pa.string())
        g_ids = pa.nulls(len(given), type=pa.string())
        if corpus is None:
            return cls(g_texts, g_ids)
        return cls(pa.concat_arrays([corpus.text_array, g_texts]), pa.concat_arrays([corpus.id_array, g_ids]))


def _negative_lists(
    masks: tuple[np.ndarray, np.ndarray], src: np.ndarray, scores: np.ndarray, pool: _Pool, kills: np.ndarray
) -> tuple[pa.Array, pa.Array]:
    """Killers (with kill counts) and near misses: per row, the entries where each mask is True, in
    column order, as Arrow list arrays. Texts and ids of both are gathered in one ``take``."""
    picked = [src[m] for m in masks]
    both = pa.array(np.concatenate(picked))
    texts, ids = pool.texts.take(both), pool.ids.take(both)
    out = []
    start = 0
    for m, p, item in zip(masks, picked, (_KILLER, _NEG), strict=True):
        offsets = np.zeros(m.shape[0] + 1, dtype=np.int32)
        np.cumsum(m.sum(axis=1), out=offsets[1:])
        fields = [
            texts.slice(start, len(p)),
            ids.slice(start, len(p)),
            pa.array(scores[m].astype(np.float32, copy=False)),
        ]
        if item is _KILLER:
            fields.append(pa.array(kills[m].astype(np.int32)))
        values = pa.StructArray.from_arrays(fields, fields=list(item))
        out.append(pa.ListArray.from_arrays(pa.array(offsets), values, type=pa.list_(item)))
        start += len(p)
    return out[0], out[1]


def _rows(
    batch: CandidateBatch,
    config: MinerConfig,
    pool: _Pool,
    src: np.ndarray,
    s_pos: np.ndarray,
    s_neg: np.ndarray,
    valid: np.ndarray,
    n_neg: np.ndarray,
    verdict: LineupVerdict,
    fn_dropped: np.ndarray,
    dup_dropped: np.ndarray,
) -> pa.Table:
    """The result rows of a judged batch (``s_neg`` is ``-inf`` wherever ``valid`` is False; ``n_neg``
    counts ``valid`` per row)."""
    pass_count = verdict.pass_count.cpu().numpy()
    sufficient = verdict.sufficient.cpu().numpy()
    lineup_max = verdict.lineup_max.cpu().numpy()
    kill_counts = verdict.kill_counts.cpu().numpy()
    # Every column is built per batch with numpy and Arrow; nothing loops over rows in Python.
    # s_neg is -inf where there is no negative, so ordering by -s_neg puts the valid ones first.
    if (s_neg[:, 1:] <= s_neg[:, :-1]).all():  # already so (retrieval returns its top-N in that order)
        scores_sorted, kills_sorted, src_sorted, valid_sorted = s_neg, kill_counts, src, valid
    else:  # most dangerous first
        order = np.argsort(-s_neg, axis=1, kind="stable")
        scores_sorted = np.take_along_axis(s_neg, order, axis=1)
        kills_sorted = np.take_along_axis(kill_counts, order, axis=1)
        src_sorted = np.take_along_axis(src, order, axis=1)
        valid_sorted = np.take_along_axis(valid, order, axis=1)
    killer_mask = kills_sorted > 0  # only valid negatives kill
    near = valid_sorted & ~killer_mask
    near_mask = near & (np.cumsum(near, axis=1) <= config.keep_near_misses)
    killers, near_misses = _negative_lists((killer_mask, near_mask), src_sorted, scores_sorted, pool, kills_sorted)
    dmax = s_neg.max(axis=1, initial=-np.inf) - s_pos
    dmean = (lineup_max - s_pos[:, None]).mean(axis=1)  # K >= 1 and the batch is not empty
    accepted = sufficient & (pass_count >= config.min_passes)
    # 0 insufficient, 1 accepted, 2 rejected
    status = _STATUS.take(pa.array(sufficient.astype(np.int8) * (2 - accepted.astype(np.int8))))
    return pa.table(
        {
            "candidate_id": batch.arrow.get("candidate_id", batch.candidate_id),
            "anchor": batch.arrow.get("anchor", batch.anchor),
            "positive": batch.arrow.get("positive", batch.positive),
            "n_negatives": n_neg.astype(np.int32),
            "n_dropped_false_negatives": np.asarray(fn_dropped, dtype=np.int32),
            "n_dropped_duplicates": np.asarray(dup_dropped, dtype=np.int32),
            "pass_count": np.where(sufficient, pass_count, 0).astype(np.int32),
            "lineups": np.where(sufficient, config.lineups, 0).astype(np.int32),
            "accepted": accepted,
            "status": status,
            "score_positive": s_pos.astype(np.float32),
            "danger_max": pa.array(dmax.astype(np.float32), mask=n_neg == 0),
            "danger_mean_lineup": pa.array(np.asarray(dmean, dtype=np.float32), mask=~sufficient),
            "killers": killers,
            "near_misses": near_misses,
        },
        schema=RESULT_SCHEMA,
    )
