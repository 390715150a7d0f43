"""The mining kernel: against a slow reference, lineup statistics, retrieval edge cases."""

from __future__ import annotations

from collections.abc import Sequence
from math import comb
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch
from mining_reference import reference_mine

import crucible_ray as cr
from crucible_ray.data import Candidate, CorpusDoc
from crucible_ray.encoders import Role
from crucible_ray.mining import (
    CandidateBatch,
    CorpusIndex,
    MinerConfig,
    dedupe_corpus,
    draw_lineup_scalar,
    draw_lineups,
    embed_texts,
    judge_lineups,
    mine_batch,
    mine_local,
    open_embeddings,
    product_tolerance,
    retrieve,
    rowwise_scores,
    settle_near_thresholds,
)
from crucible_ray.mining._kernel import CPU_CHUNK, CPU_QUERY_TILE


def _index(enc: cr.Encoder, docs: list[CorpusDoc]) -> CorpusIndex:
    ids, texts, dups = dedupe_corpus(docs)
    return CorpusIndex(ids, texts, enc.encode(texts), dups)


def _world_inputs(world: Path) -> tuple[list[Candidate], list[CorpusDoc]]:
    organic = cr.read_candidates(world / "organic_candidates.jsonl")
    expansion = cr.read_candidates(world / "expansion_candidates.jsonl")
    corpus = cr.read_corpus(world / "corpus.jsonl")
    # Edge cases: a negative that copies the positive (in other case and spacing), a duplicate
    # negative, a candidate whose positive is in the corpus by id, one with too few negatives.
    e0 = expansion[0]
    assert e0.negatives is not None
    tricky = [
        Candidate(
            candidate_id="edge:dup",
            anchor=e0.anchor,
            positive=e0.positive,
            negatives=[f"  {e0.positive.upper()} ", *e0.negatives, e0.negatives[0]],
        ),
        Candidate(candidate_id="edge:few", anchor=e0.anchor, positive=e0.positive, negatives=e0.negatives[:1]),
        Candidate(
            candidate_id="edge:pid", anchor=organic[0].anchor, positive="something else", positive_id=corpus[5].id
        ),
    ]
    # Corpus copies (same text, new id) must be de-duplicated, not retrieved twice.
    corpus = corpus + [CorpusDoc(id="copy:1", text=corpus[3].text.upper())]
    return organic + expansion + tricky, corpus


CONFIGS = [
    MinerConfig(lineups=10, lineup_size=4, min_passes=3, neighbors=12, danger_margin=0.0, seed=1),
    MinerConfig(lineups=7, lineup_size=3, min_passes=5, neighbors=9, rank_min=2, danger_margin=-0.05, seed=2),
    MinerConfig(lineups=12, lineup_size=2, min_passes=2, neighbors=10, rank_max=8, max_danger=0.12, seed=3),
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=["plain", "window-strict", "ceiling"])
def test_kernel_matches_reference(synthetic_world: Path, cfg: MinerConfig) -> None:
    enc = cr.build_encoder("hashed-ngram:dim=64,seed=3", device="cpu")
    cands, corpus = _world_inputs(synthetic_world)
    index = _index(enc, corpus)
    assert index.n_duplicates == 1
    got = mine_local(cands, model=enc, corpus=corpus, config=cfg).to_pylist()
    ref = reference_mine(cands, corpus, lambda t: enc.encode(t), cfg)
    assert [r["candidate_id"] for r in got] == [c.candidate_id for c in cands]
    statuses = {r["status"] for r in got}
    assert len(statuses) >= 2, statuses  # the configs are chosen so that the verdicts are mixed
    for row in got:
        want = ref[row["candidate_id"]]
        assert row["status"] == want["status"], row["candidate_id"]
        assert row["pass_count"] == want["pass_count"], row["candidate_id"]
        assert row["n_negatives"] == want["n_negatives"]
        assert row["n_dropped_false_negatives"] == want["n_dropped_false_negatives"]
        assert row["score_positive"] == pytest.approx(want["score_positive"], abs=1e-5)
        assert {k["text"]: k["kills"] for k in row["killers"]} == want["killers"]
        if row["status"] != "insufficient":
            assert row["danger_max"] == pytest.approx(want["danger_max"], abs=1e-5)
            assert row["danger_mean_lineup"] == pytest.approx(want["danger_mean_lineup"], abs=1e-5)
        scores = [k["score"] for k in row["killers"]]
        assert scores == sorted(scores, reverse=True)
    by_id = {r["candidate_id"]: r for r in got}
    assert by_id["edge:few"]["status"] == "insufficient" and by_id["edge:few"]["accepted"] is False
    assert by_id["edge:dup"]["n_dropped_duplicates"] == 2


class _CountingEncoder(cr.Encoder):
    """An encoder that records which texts reach ``encode``."""

    def __init__(self, enc: cr.Encoder) -> None:
        super().__init__(enc.spec, enc.module)
        self.seen: list[str] = []

    def encode(self, texts: Sequence[str], *, batch_size: int = 256, role: Role | None = "document") -> np.ndarray:
        self.seen.extend(texts)
        return super().encode(texts, batch_size=batch_size, role=role)


def test_texts_already_in_the_corpus_reuse_its_embeddings(tmp_path: Path) -> None:
    enc = cr.build_encoder("hashed-ngram:dim=32,seed=1", device="cpu")
    docs = [CorpusDoc(id=f"d{i}", text=t) for i, t in enumerate(["a red apple", "the sea", "a dog barks", "rain"])]
    index = _index(enc, docs)
    # Distinctive corpus vectors: a reused row must come from the corpus, not from the encoder.
    marked = index.embeddings.copy()
    marked[:, 0] = np.arange(len(docs)) + 10.0
    np.save(tmp_path / "c.npy", marked)
    texts = ["rain", "a cat", "The Sea", "a red apple", "a cat"]  # "The Sea" differs: not verbatim
    for index_ in (
        CorpusIndex(index.ids, index.texts, marked),
        CorpusIndex(index.ids, index.texts, open_embeddings(tmp_path / "c.npy")),
    ):
        for tensor in (torch.from_numpy(marked), None):
            counting = _CountingEncoder(enc)
            got = embed_texts(texts, counting, index_, tensor, batch_size=2).numpy()  # type: ignore[arg-type]
            assert counting.seen == ["a cat", "The Sea", "a cat"]
            np.testing.assert_array_equal(got[[0, 3]], marked[[3, 0]])
            np.testing.assert_allclose(got[[1, 2, 4]], enc.encode(["a cat", "The Sea", "a cat"]), atol=1e-6)
    # Without a corpus, everything is encoded.
    counting = _CountingEncoder(enc)
    embed_texts(texts, counting, None)  # type: ignore[arg-type]
    assert counting.seen == texts


def test_retrieve_excludes_positive_and_never_returns_a_row_twice() -> None:
    gen = torch.Generator().manual_seed(0)
    corpus = torch.nn.functional.normalize(torch.randn(300, 8, generator=gen), dim=1)
    anchors = corpus[:5] + 0.01  # each anchor's nearest corpus row is itself
    exclude = torch.tensor([[0, -1], [1, 7], [-1, -1], [3, 3], [4, 299]])
    s, i = retrieve(anchors, corpus, k=6, exclude=exclude, chunk_size=17)
    full = anchors @ corpus.T
    for b in range(5):
        banned = {int(x) for x in exclude[b] if x >= 0}
        expected = [j for j in torch.argsort(full[b], descending=True).tolist() if j not in banned][:6]
        assert i[b].tolist() == expected
        assert len(set(i[b].tolist())) == 6
        assert torch.allclose(s[b], full[b, expected])


def test_retrieve_gives_each_row_the_same_neighbours_whatever_the_batch_and_tiling() -> None:
    # 600 anchors span three CPU query tiles (the last one partial); 20,000 rows span two corpus chunks.
    assert 600 > 2 * CPU_QUERY_TILE and 20_000 > CPU_CHUNK
    gen = torch.Generator().manual_seed(3)
    corpus = torch.nn.functional.normalize(torch.randn(20_000, 16, generator=gen), dim=1)
    anchors = torch.nn.functional.normalize(torch.randn(600, 16, generator=gen), dim=1)
    exclude = torch.randint(0, 20_000, (600, 2), generator=gen)
    s, i = retrieve(anchors, corpus, k=8, exclude=exclude, rank_min=2)
    full = anchors @ corpus.T
    for b in (0, 255, 256, 511, 512, 599):
        banned = set(exclude[b].tolist())
        expected = [j for j in torch.argsort(full[b], descending=True).tolist() if j not in banned][2:10]
        assert i[b].tolist() == expected
        assert torch.allclose(s[b], full[b, expected], atol=1e-6)
        alone = retrieve(anchors[b : b + 1], corpus, k=8, exclude=exclude[b : b + 1], rank_min=2, chunk_size=20_000)
        assert torch.equal(alone[1][0], i[b])
    one_chunk = retrieve(anchors, corpus, k=8, exclude=exclude, rank_min=2, chunk_size=20_000)
    assert torch.equal(one_chunk[1], i)


def test_product_scores_stay_within_the_tolerance_of_row_by_row_scores() -> None:
    gen = torch.Generator().manual_seed(1)
    for d in (64, 128, 384):
        corpus = torch.nn.functional.normalize(torch.randn(3000, d, generator=gen), dim=1)
        anchors = torch.nn.functional.normalize(torch.randn(300, d, generator=gen), dim=1)
        exact = rowwise_scores(anchors, corpus[None].expand(len(anchors), -1, -1))
        tol = product_tolerance(torch.device("cpu"), d)
        for rows in (1, 7, 300):  # different shapes take different product kernels
            assert (anchors[:rows] @ corpus.T - exact[:rows]).abs().max() <= tol / 4
    previous = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("high")  # TF32 / bf16 products allowed: a looser bound
        assert product_tolerance(torch.device("cpu"), 128) == 2e-2
    finally:
        torch.set_float32_matmul_precision(previous)
    assert product_tolerance(torch.device("cpu"), 128) < 1e-4


def test_row_by_row_scores_do_not_depend_on_the_batch_shape() -> None:
    gen = torch.Generator().manual_seed(2)
    anchors = torch.nn.functional.normalize(torch.randn(96, 384, generator=gen), dim=1)
    others = torch.nn.functional.normalize(torch.randn(96, 16, 384, generator=gen), dim=2)
    whole = rowwise_scores(anchors, others)
    assert whole.dtype == torch.float32
    np.testing.assert_allclose(whole.numpy(), np.einsum("bd,bnd->bn", anchors.double(), others.double()), atol=1e-7)
    for rows in (slice(0, 1), slice(5, 12), slice(0, 96, 7)):
        assert torch.equal(rowwise_scores(anchors[rows], others[rows]), whole[rows])
        assert torch.equal(rowwise_scores(anchors[rows], others[rows, 3:4]), whole[rows, 3:4])


@pytest.mark.parametrize("as_array", [False, True], ids=["tensor", "memory-map-like array"])
def test_settled_scores_decide_as_row_by_row_scores(as_array: bool) -> None:
    gen = torch.Generator().manual_seed(0)
    d, b, n = 32, 64, 12
    corpus = torch.nn.functional.normalize(torch.randn(500, d, generator=gen), dim=1)
    anchors = torch.nn.functional.normalize(torch.randn(b, d, generator=gen), dim=1)
    index = torch.randint(0, 500, (b, n), generator=gen)
    index[:, -2:] = -1  # retrieval found nothing there
    ok = index >= 0
    exact = rowwise_scores(anchors, corpus[index.clamp(min=0)])
    tol = product_tolerance(torch.device("cpu"), d)
    # A product's rounding, exaggerated: every score off by up to half the tolerance.
    noisy = exact + (torch.rand(exact.shape, generator=gen) - 0.5) * tol
    scores = torch.where(ok, noisy, float("-inf"))
    # Thresholds right on an exact score, and just beside another (where the noise flips the side).
    kill = exact[:, 0].clone()
    ceiling = exact[:, 1] + 0.1 * tol
    source = corpus.numpy() if as_array else corpus
    settled = settle_near_thresholds(scores, index, anchors, source, [kill, ceiling], tolerance=tol)
    for t in (kill, ceiling):
        assert torch.equal(scores >= t[:, None], (exact >= t[:, None]) & ok)
        assert not torch.equal(noisy >= t[:, None], exact >= t[:, None])  # the noise alone would decide wrongly
    near = ok & (((noisy - kill[:, None]).abs() <= tol) | ((noisy - ceiling[:, None]).abs() <= tol))
    assert settled == int(near.sum()) and 2 * b <= settled < int(ok.sum())
    assert torch.equal(scores[near], exact[near])  # bit for bit: the same row-by-row computation
    assert torch.equal(scores[ok & ~near], noisy[ok & ~near])
    assert torch.isinf(scores[~ok]).all()


def test_retrieve_pads_when_the_corpus_is_small() -> None:
    corpus = torch.eye(3)
    s, i = retrieve(torch.eye(3)[:1], corpus, k=5, exclude=torch.tensor([[0]]))
    assert i.tolist() == [[1, 2, -1, -1, -1]] or i.tolist() == [[2, 1, -1, -1, -1]]
    assert torch.isinf(s[0, 2:]).all()


def test_retrieve_outside_inference_mode_after_mining_in_it() -> None:
    """Mining runs in inference mode and retrieval reuses a per-thread block of scores: a later caller
    outside inference mode (an evaluation in the same process) can still write into that block."""
    import threading

    gen = torch.Generator().manual_seed(0)
    corpus = torch.nn.functional.normalize(torch.randn(500, 8, generator=gen), dim=-1)
    got: list[tuple[torch.Tensor, torch.Tensor]] = []

    def in_a_fresh_thread() -> None:  # a thread whose block does not exist yet
        with torch.inference_mode():
            got.append(retrieve(corpus[:3], corpus, k=4))
        got.append(retrieve(corpus[:3], corpus, k=4))

    t = threading.Thread(target=in_a_fresh_thread)
    t.start()
    t.join()
    assert len(got) == 2 and torch.equal(got[0][1], got[1][1])


def test_retrieve_reads_a_memory_mapped_corpus(tmp_path: Path) -> None:
    gen = np.random.default_rng(0)
    emb = gen.normal(size=(1000, 16)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    np.save(tmp_path / "c.npy", emb)
    mm = np.load(tmp_path / "c.npy", mmap_mode="r")
    anchors = torch.from_numpy(emb[:4].copy())
    a = retrieve(anchors, mm, k=10, rank_min=1, chunk_size=64)
    b = retrieve(anchors, torch.from_numpy(emb), k=10, rank_min=1)
    assert torch.equal(a[1], b[1])
    assert a[1][:, 0].tolist() != [0, 1, 2, 3]  # rank 0 (the row itself) was skipped


def test_lineup_draws_match_the_scalar_definition() -> None:
    ids = [f"c{i}" for i in range(40)]
    n = np.array([i % 13 for i in range(40)])
    draws = draw_lineups(9, ids, n, lineups=6, lineup_size=3)
    for b, cid in enumerate(ids):
        for k in range(6):
            if n[b] < 3:
                assert (draws[b, k] == -1).all()
            else:
                assert draws[b, k].tolist() == draw_lineup_scalar(9, cid, k, int(n[b]), 3)
                assert len(set(draws[b, k].tolist())) == 3


def test_lineup_draws_are_uniform_over_all_subsets() -> None:
    # Floyd's algorithm must give each of the C(N, m) lineups the same chance: a chi-square test over
    # all C(7, 3) = 35 subsets from 70,000 lineups (critical value for 34 degrees of freedom at p=0.001: 65.2).
    ids = [f"u{i}" for i in range(7_000)]
    draws = np.sort(draw_lineups(3, ids, np.full(len(ids), 7), lineups=10, lineup_size=3).reshape(-1, 3), axis=1)
    assert (draws[:, 1:] != draws[:, :-1]).all()  # distinct
    counts: dict[tuple[int, ...], int] = {}
    for row in draws.tolist():
        counts[tuple(row)] = counts.get(tuple(row), 0) + 1
    assert len(counts) == comb(7, 3)
    expected = len(draws) / comb(7, 3)
    chi2 = sum((c - expected) ** 2 / expected for c in counts.values())
    assert chi2 < 65.2, chi2


def test_lineup_draws_depend_only_on_seed_id_and_k() -> None:
    a = draw_lineups(5, ["x", "y", "z"], np.array([20, 20, 20]), 8, 4)
    b = draw_lineups(5, ["z", "x"], np.array([20, 20]), 8, 4)  # other batch, other order
    c = draw_lineups(5, ["x"], np.array([20]), 3, 4)  # fewer lineups: a prefix
    assert np.array_equal(a[0], b[1]) and np.array_equal(a[2], b[0])
    assert np.array_equal(a[0, :3], c[0])
    assert not np.array_equal(a[0], draw_lineups(6, ["x"], np.array([20]), 8, 4)[0])


@pytest.mark.parametrize(("n", "m", "j", "k"), [(12, 4, 1, 10), (12, 4, 3, 10), (20, 5, 2, 8), (8, 8, 1, 5)])
def test_pass_count_follows_the_hypergeometric_law(n: int, m: int, j: int, k: int) -> None:
    """E[pass_count] = K * (1 - C(N-j, m) / C(N, m)) for a candidate with j killers among N negatives."""
    rows = 6000
    rng = np.random.default_rng(n * 100 + j)
    scores = np.full((rows, n), -0.5, dtype=np.float32)
    for r in range(rows):  # j killers at random places
        scores[r, rng.choice(n, size=j, replace=False)] = 0.9
    ids = [f"stat:{n}:{m}:{j}:{r}" for r in range(rows)]
    lineups = draw_lineups(123, ids, np.full(rows, n), k, m)
    verdict = judge_lineups(
        torch.zeros(rows),
        torch.from_numpy(scores),
        torch.ones((rows, n), dtype=torch.bool),
        torch.from_numpy(lineups),
        danger_margin=0.0,
    )
    pass_count = verdict.pass_count.numpy().astype(float)
    expected = k * (1 - comb(n - j, m) / comb(n, m))
    sem = pass_count.std() / np.sqrt(rows)
    assert abs(pass_count.mean() - expected) < max(4 * sem, 1e-9), (pass_count.mean(), expected)
    # Every negative is drawn with probability m / N per lineup.
    freq = verdict.appearances.numpy().sum(axis=0) / (rows * k)
    assert np.allclose(freq, m / n, atol=4 * np.sqrt(m / n * (1 - m / n) / (rows * k)) + 1e-9)


def test_kill_is_inclusive_at_the_threshold() -> None:
    s_pos = torch.tensor([0.5, 0.5])
    s_neg = torch.tensor([[0.45, 0.0], [0.44, 0.0]])
    lineups = torch.tensor([[[0, 1]], [[0, 1]]])
    v = judge_lineups(s_pos, s_neg, torch.ones(2, 2, dtype=torch.bool), lineups, danger_margin=0.05)
    assert v.kills[:, 0].tolist() == [True, False]


def test_another_positive_of_the_anchor_is_never_a_negative() -> None:
    enc = cr.build_encoder("hashed-ngram:dim=64,seed=2", device="cpu")
    docs = ["vpn reset guide", "vpn token page", "vpn token pages", "vpn router", "vpn price", "a cat", "rain"]
    index = _index(enc, [CorpusDoc(id=f"d{i}", text=t) for i, t in enumerate(docs)])
    cfg = MinerConfig(lineups=2, lineup_size=2, min_passes=1, neighbors=5, seed=0)
    table = pa.table(
        {
            "candidate_id": ["a", "b"],
            "anchor": ["reset vpn token", "reset vpn token"],
            "positive": ["vpn reset guide", "vpn reset guide"],
            "negatives": [None, ["vpn token page", "vpn price", "rain"]],
            "other_positives": [["vpn token page"], ["vpn token page"]],
        }
    )
    rows = mine_batch(CandidateBatch.from_arrow(table), enc, cfg, index).to_pylist()
    seen = {r["candidate_id"]: {k["text"] for k in r["killers"]} | {k["text"] for k in r["near_misses"]} for r in rows}
    assert all("vpn token page" not in texts for texts in seen.values())
    assert rows[1]["n_dropped_duplicates"] == 1  # the given copy of the other positive was dropped
    # Without the column, the same corpus text is a candidate negative: the exclusion is what kept it out.
    plain = mine_batch(CandidateBatch.from_arrow(table.drop(["other_positives"])), enc, cfg, index).to_pylist()
    assert "vpn token page" in {k["text"] for k in plain[0]["killers"]} | {k["text"] for k in plain[0]["near_misses"]}
