"""A slow, loop-by-loop reference of the miner (numpy + Python), written from the definitions in docs/mining.md.

It shares nothing with the kernel but the scalar lineup draw (itself checked against the formula in
the statistical test) and the encoder's embeddings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from crucible_ray.data import Candidate, CorpusDoc
from crucible_ray.mining import MinerConfig, draw_lineup_scalar


def _norm(t: str) -> str:
    return " ".join(t.casefold().split())


def reference_mine(
    candidates: Sequence[Candidate],
    corpus: Sequence[CorpusDoc],
    encode: Callable[[list[str]], np.ndarray],
    cfg: MinerConfig,
) -> dict[str, dict[str, Any]]:
    # Corpus: first occurrence of each normalised text.
    seen: set[str] = set()
    docs: list[CorpusDoc] = []
    for d in corpus:
        if _norm(d.text) not in seen:
            seen.add(_norm(d.text))
            docs.append(d)
    c_emb = encode([d.text for d in docs]) if docs else np.zeros((0, 1), np.float32)
    out: dict[str, dict[str, Any]] = {}
    for c in candidates:
        a, p = encode([c.anchor, c.positive])
        s_pos = float(np.dot(a, p))
        if c.negatives is not None:
            negs: list[tuple[str, str | None, float]] = []
            banned = {_norm(c.anchor), _norm(c.positive)}
            for t in c.negatives:
                if _norm(t) in banned:
                    continue
                banned.add(_norm(t))
                negs.append((t, None, float(np.dot(a, encode([t])[0]))))
        else:
            scores = c_emb @ a
            order = sorted(range(len(docs)), key=lambda j: (-scores[j], j))
            eligible = [
                j
                for j in order
                if _norm(docs[j].text) not in (_norm(c.anchor), _norm(c.positive)) and docs[j].id != c.positive_id
            ]
            window = eligible[cfg.rank_min : (cfg.rank_max if cfg.rank_max is not None else len(eligible))]
            negs = [(docs[j].text, docs[j].id, float(np.dot(a, c_emb[j]))) for j in window[: cfg.neighbors]]
        dropped_fn = 0
        if cfg.max_danger is not None:
            kept = [n for n in negs if n[2] - s_pos <= cfg.max_danger]
            dropped_fn = len(negs) - len(kept)
            negs = kept
        n = len(negs)
        row: dict[str, Any] = {"n_negatives": n, "n_dropped_false_negatives": dropped_fn, "score_positive": s_pos}
        if n < cfg.lineup_size:
            row.update(status="insufficient", pass_count=0, killers={})
            out[c.candidate_id] = row
            continue
        threshold = s_pos - cfg.danger_margin
        passes = 0
        kills: dict[str, int] = {}
        lineup_dangers = []
        for k in range(cfg.lineups):
            lineup = draw_lineup_scalar(cfg.seed, c.candidate_id, k, n, cfg.lineup_size)
            best = max(negs[j][2] for j in lineup)
            lineup_dangers.append(best - s_pos)
            if best >= threshold:
                passes += 1
            for j in lineup:
                if negs[j][2] >= threshold:
                    kills[negs[j][0]] = kills.get(negs[j][0], 0) + 1
        row.update(
            status="accepted" if passes >= cfg.min_passes else "rejected",
            pass_count=passes,
            killers=kills,
            danger_max=max(x[2] for x in negs) - s_pos,
            danger_mean_lineup=float(np.mean(lineup_dangers)),
        )
        out[c.candidate_id] = row
    return out
