"""The miner on Ray Data: determinism, exactly-once under failure, resume, outputs, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from crucible_ray.cli._main import run

import crucible_ray as cr
import crucible_ray.distributed._corpus as corpus_module
import crucible_ray.distributed._execute as execute_module
from crucible_ray.data import Candidate, read_bundles, read_candidates, write_candidates
from crucible_ray.distributed._corpus import DriverEmbedding, driver_embeds
from crucible_ray.errors import MiningError
from crucible_ray.mining import (
    DRAW_SCHEME,
    SCORING,
    MinerConfig,
    await_embeddings,
    failure_note,
    in_holdout,
    mine_local,
)

pytestmark = [pytest.mark.wordnet, pytest.mark.usefixtures("ray_local")]

CFG = {"lineups": 10, "lineup_size": 4, "min_passes": 6, "neighbors": 12, "danger_margin": 0.0, "seed": 7}


def _results(path: Path) -> dict[str, dict[str, object]]:
    rows = pq.read_table(path).to_pylist()
    ids = [r["candidate_id"] for r in rows]
    assert len(ids) == len(set(ids)), "a candidate appears twice"
    return {r["candidate_id"]: r for r in rows}


def _same(a: dict[str, dict[str, object]], b: dict[str, dict[str, object]]) -> None:
    assert a.keys() == b.keys()
    for cid, ra in a.items():
        rb = b[cid]
        for col in ("status", "pass_count", "n_negatives", "accepted", "lineups"):
            assert ra[col] == rb[col], (cid, col)
        for col in ("score_positive", "danger_max", "danger_mean_lineup"):
            assert ra[col] == pytest.approx(rb[col], abs=1e-5), (cid, col)
        assert [k["text"] for k in ra["killers"]] == [k["text"] for k in rb["killers"]]  # type: ignore[union-attr]


def _copies(world: Path, copies: int) -> list[Candidate]:
    """The world's organic candidates repeated under new ids (a longer run)."""
    base = read_candidates(world / "organic_candidates.jsonl")
    return [
        Candidate(candidate_id=f"{c.candidate_id}#{i}", anchor=c.anchor, positive=c.positive)
        for i in range(copies)
        for c in base
    ]


@pytest.fixture(scope="module")
def mined(wordnet_world: Path, tmp_path_factory: pytest.TempPathFactory) -> cr.MiningResult:
    out = tmp_path_factory.mktemp("mined") / "mined.parquet"
    return cr.mine(
        wordnet_world / "organic_candidates.jsonl",
        corpus=wordnet_world / "corpus.jsonl",
        out=out,
        actors=1,
        batch_size=512,
        st_export=out.with_name("st.jsonl"),
        **CFG,
    )


def test_results_match_the_single_process_kernel(mined: cr.MiningResult, wordnet_world: Path) -> None:
    cands = read_candidates(wordnet_world / "organic_candidates.jsonl")
    local = mine_local(
        wordnet_world / "organic_candidates.jsonl", corpus=wordnet_world / "corpus.jsonl", config=MinerConfig(**CFG)
    )
    got = _results(mined.results)
    _same(got, {r["candidate_id"]: r for r in local.to_pylist()})
    assert list(got) == [c.candidate_id for c in cands]  # input order kept
    statuses = {r["status"] for r in got.values()}
    assert {"accepted", "rejected"} <= statuses
    assert mined.manifest["lineup_draws"] == DRAW_SCHEME
    assert mined.manifest["scoring"] == SCORING


def test_corpus_embedded_by_the_driver_gives_the_same_results(
    mined: cr.MiningResult, wordnet_world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On one CPU machine the driver embeds the corpus in a thread while Ray and the actors start, and the
    # actors map the file. Forced here on the simulated cluster, whose nodes share this machine's disk.
    assert not driver_embeds(None, None)  # the test session's cluster has several nodes
    assert mined.manifest["execution"]["corpus_embedded_by"] == "actors"
    monkeypatch.setattr(execute_module, "driver_embeds", lambda address, use_gpu: True)
    res = cr.mine(
        wordnet_world / "organic_candidates.jsonl",
        corpus=wordnet_world / "corpus.jsonl",
        out=tmp_path / "driver.parquet",
        actors=2,
        batch_size=256,
        **CFG,
    )
    assert res.manifest["execution"]["corpus_embedded_by"] == "driver"
    _same(_results(mined.results), _results(res.results))


@pytest.mark.st
@pytest.mark.slow
def test_the_driver_and_the_actors_embed_a_corpus_to_the_same_bits(wordnet_world: Path, tmp_path: Path) -> None:
    """A transformer's vectors depend in float rounding on which texts share a padded batch, and an
    encode call batches its own texts: the driver (one machine) and the actor pool (a cluster) give
    each call the same texts, so a laptop and a cluster compute the same vectors, bit for bit."""
    import ray

    from crucible_ray.distributed._pipeline import embed_corpus
    from crucible_ray.distributed._resources import plan_actors
    from crucible_ray.mining import CORPUS_CHUNK, CPU_ENCODE_BATCH, ModelSource

    docs = cr.read_corpus(wordnet_world / "corpus.jsonl")[: CORPUS_CHUNK + 64]
    texts = [d.text[: 8 + i % 40] for i, d in enumerate(docs)]  # short (a fast test), of many lengths
    source = ModelSource.resolve("minilm")
    driver = DriverEmbedding(texts, source.build("cpu"), tmp_path / "driver.npy", encode_batch_size=CPU_ENCODE_BATCH)
    driver.raise_if_failed()
    plan = plan_actors(2, 0, actors=2)  # shards in any order, over two actors
    embed_corpus(texts, ray.put(source), plan, tmp_path / "actors.npy", encode_batch_size=CPU_ENCODE_BATCH)
    a, b = np.load(tmp_path / "driver.npy"), np.load(tmp_path / "actors.npy")
    assert a.shape == (len(texts), 384)
    assert a.tobytes() == b.tobytes()


def test_mining_again_with_other_settings_embeds_nothing(wordnet_world: Path, tmp_path: Path) -> None:
    """The embedding cache: a second run over the same texts with other miner settings embeds no text
    (no shard is added) and decides exactly as a run without the cache."""
    cands = tmp_path / "cands.parquet"
    write_candidates(cands, read_candidates(wordnet_world / "organic_candidates.jsonl")[:1000])
    cache = tmp_path / "cache"
    run = {"corpus": wordnet_world / "corpus.jsonl", "actors": 1, "batch_size": 256}
    first = cr.mine(cands, out=tmp_path / "a.parquet", embedding_cache=str(cache), **run, **CFG)
    shards = set(cache.glob("*/*.npy"))
    assert shards and first.manifest["execution"]["embedding_cache"]["root"] == str(cache.resolve())
    other = {**CFG, "min_passes": 3, "lineups": 8, "neighbors": 16}
    again = cr.mine(cands, out=tmp_path / "b.parquet", embedding_cache=str(cache), **run, **other)
    assert set(cache.glob("*/*.npy")) == shards, "the second run embedded texts again"
    plain = cr.mine(cands, out=tmp_path / "c.parquet", embedding_cache="off", **run, **other)
    assert plain.manifest["execution"]["embedding_cache"] is None
    _same(_results(again.results), _results(plain.results))


def test_a_failed_driver_embedding_stops_the_run_with_its_reason(
    wordnet_world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Path:
        raise OSError("No space left on device")

    monkeypatch.setattr(execute_module, "driver_embeds", lambda address, use_gpu: True)
    monkeypatch.setattr(corpus_module, "embed_corpus_to_file", broken)
    out = tmp_path / "m.parquet"
    started = time.monotonic()
    with pytest.raises(OSError, match="No space left"):
        cr.mine(wordnet_world / "organic_candidates.jsonl", corpus=wordnet_world / "corpus.jsonl", out=out, **CFG)
    assert time.monotonic() - started < 120  # the waiting actors gave up instead of waiting forever
    assert not out.exists()


class _GatedEncoder:
    """A real encoder whose calls wait for the test's go-ahead (to cancel a thread mid-way)."""

    def __init__(self) -> None:
        self.enc = cr.build_encoder(cr.DEFAULT_ENCODER, device="cpu")
        self.dim, self.gate, self.calls = self.enc.dim, __import__("threading").Event(), 0

    def encode(self, texts: list[str], *, batch_size: int = 256) -> np.ndarray:
        self.calls += 1
        self.gate.wait(timeout=30)
        return self.enc.encode(texts, batch_size=batch_size)


def test_driver_embedding_thread_writes_fails_and_cancels_cleanly(tmp_path: Path) -> None:
    texts = [f"text number {i}" for i in range(3000)]
    enc = cr.build_encoder(cr.DEFAULT_ENCODER, device="cpu")
    job = DriverEmbedding(texts, enc, tmp_path / "a.npy", encode_batch_size=32)
    np.testing.assert_allclose(await_embeddings(tmp_path / "a.npy"), enc.encode(texts), atol=1e-6)
    job.raise_if_failed()
    # A file left by an earlier attempt is reused: no thread at all.
    again = DriverEmbedding(texts, enc, tmp_path / "a.npy", encode_batch_size=32)
    assert again._thread is None

    # Cancelled between chunks: neither a file nor a failure note, and no error re-raised.
    gated = _GatedEncoder()
    job = DriverEmbedding(texts, gated, tmp_path / "b.npy", encode_batch_size=32)  # type: ignore[arg-type]
    while not gated.calls:
        time.sleep(0.01)
    job._stop.set()
    gated.gate.set()
    job.cancel()
    assert gated.calls == 1
    assert not (tmp_path / "b.npy").exists() and not failure_note(tmp_path / "b.npy").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["a.npy"]  # no temporary file left either
    job.raise_if_failed()

    # A failure leaves a one-line note that waiting actors report, and the driver re-raises the error.
    class Broken(_GatedEncoder):
        def encode(self, texts: list[str], *, batch_size: int = 256) -> np.ndarray:
            raise MemoryError("out of\nmemory")

    job = DriverEmbedding(texts, Broken(), tmp_path / "c.npy", encode_batch_size=32)  # type: ignore[arg-type]
    with pytest.raises(MiningError, match="corpus embedding failed: out of memory$"):
        await_embeddings(tmp_path / "c.npy")
    with pytest.raises(MemoryError):
        job.raise_if_failed()


@pytest.mark.slow
def test_same_results_whatever_actors_batch_size_and_row_order(
    mined: cr.MiningResult, wordnet_world: Path, tmp_path: Path
) -> None:
    cands = read_candidates(wordnet_world / "organic_candidates.jsonl")
    order = np.random.default_rng(3).permutation(len(cands))
    shuffled = tmp_path / "shuffled.parquet"
    write_candidates(shuffled, [cands[i] for i in order])
    other = cr.mine(
        shuffled, corpus=wordnet_world / "corpus.jsonl", out=tmp_path / "b.parquet", actors=2, batch_size=7, **CFG
    )
    _same(_results(mined.results), _results(other.results))
    # Two actors and batches of 7 still give the rows back in input order (the shuffled order here).
    assert list(_results(other.results)) == [cands[i].candidate_id for i in order]
    assert other.manifest["execution"]["actors"] == 2
    assert other.counts["pass_count_histogram"] == mined.counts["pass_count_histogram"]


def test_manifest_counts_and_histogram(mined: cr.MiningResult) -> None:
    m = json.loads(mined.manifest_path.read_text())
    rows = _results(mined.results)
    c = m["counts"]
    assert c["candidates"] == len(rows)
    assert c["accepted"] == sum(r["accepted"] for r in rows.values())
    assert c["pass_rate"] == pytest.approx(c["accepted"] / c["candidates"])
    hist = c["pass_count_histogram"]
    assert set(hist) == {str(k) for k in range(CFG["lineups"] + 1)}
    assert sum(hist.values()) == c["accepted"] + c["rejected"]
    assert sum(v for k, v in hist.items() if int(k) >= CFG["min_passes"]) == c["accepted"]
    assert m["model"]["fingerprint"] == cr.build_encoder(cr.DEFAULT_ENCODER).fingerprint()
    assert m["inputs"]["candidates"]["sha256"] and m["inputs"]["corpus"]["unique"] > 0
    assert m["config"]["lineups"] == 10 and "versions" in m


def test_organic_bundles_and_holdout_split(mined: cr.MiningResult) -> None:
    rows = _results(mined.results)
    train = read_bundles(mined.results.with_name("organic.jsonl"))
    hold = read_bundles(mined.results.with_name("organic_holdout.jsonl"))
    accepted = {cid for cid, r in rows.items() if r["accepted"]}
    assert {b.bundle_id for b in train} | {b.bundle_id for b in hold} == accepted
    assert not {b.bundle_id for b in train} & {b.bundle_id for b in hold}
    assert all(in_holdout(b.bundle_id, 0.2) for b in hold) and not any(in_holdout(b.bundle_id, 0.2) for b in train)
    assert 0.1 < len(hold) / len(accepted) < 0.3
    for b in [*train, *hold]:
        r = rows[b.bundle_id]
        assert b.pass_count == r["pass_count"]
        assert [n.text for n in b.negatives if n.tier == 3] == [k["text"] for k in r["killers"]]  # type: ignore[union-attr]
        assert b.pool in ("organic", "organic_holdout")


def test_sentence_transformers_export(mined: cr.MiningResult) -> None:
    lines = [json.loads(x) for x in mined.results.with_name("st.jsonl").read_text().splitlines()]
    assert lines and all(list(r) == ["anchor", "positive", "negative_1", "negative_2", "negative_3"] for r in lines)
    rows = _results(mined.results)
    killers = {r["anchor"]: [k["text"] for k in r["killers"]] for r in rows.values() if r["accepted"]}  # type: ignore[union-attr]
    assert all(r["negative_1"] == killers[r["anchor"]][0] for r in lines)
    # The same rows from the result, in every sentence-transformers layout, and as a datasets.Dataset.
    assert mined.sentence_transformers("n-tuple") == lines
    triplets = mined.sentence_transformers("triplet", negatives=2)
    accepted = [r for r in rows.values() if r["accepted"]]
    assert len(triplets) == sum(min(2, len(r["killers"]) + len(r["near_misses"])) for r in accepted)  # type: ignore[arg-type]
    assert all(t["negative"] != t["positive"] for t in triplets)
    pairs = mined.sentence_transformers("labeled-pair", negatives=1, dataset=True)
    assert pairs.column_names == ["anchor", "positive", "label"] and sum(pairs["label"]) == len(accepted)
    assert pairs.num_rows == 2 * len(accepted)


def test_mine_takes_a_dataframe_or_a_dataset_as_sentence_transformers_users_have_them(
    wordnet_world: Path, mined: cr.MiningResult, tmp_path: Path
) -> None:
    import datasets
    import pandas as pd

    base = read_candidates(wordnet_world / "organic_candidates.jsonl")[:40]
    # A DataFrame whose first two columns are the pair (sentence-transformers' convention), integer ids.
    frame = pd.DataFrame({"query": [c.anchor for c in base], "answer": [c.positive for c in base], "id": range(40)})
    by_frame = cr.mine(frame, corpus=wordnet_world / "corpus.jsonl", out=tmp_path / "f.parquet", actors=1, **CFG)
    # A Dataset with named columns and BEIR's _id: the same ids, so the same lineups and decisions.
    ds = datasets.Dataset.from_dict({"_id": list(range(40)), "anchor": frame["query"], "positive": frame["answer"]})
    by_ds = cr.mine(ds, corpus=wordnet_world / "corpus.jsonl", out=tmp_path / "d.parquet", actors=1, **CFG)
    assert (tmp_path / "f.candidates.parquet").is_file() and (tmp_path / "d.candidates.parquet").is_file()
    a, b = pq.read_table(by_frame.results).to_pylist(), pq.read_table(by_ds.results).to_pylist()
    assert [r["anchor"] for r in a] == [c.anchor for c in base] == [r["anchor"] for r in b]
    assert [r["candidate_id"] for r in a] == [str(i) for i in range(40)] == [r["candidate_id"] for r in b]
    assert [r["accepted"] for r in a] == [r["accepted"] for r in b]
    assert [[k["text"] for k in r["killers"]] for r in a] == [[k["text"] for k in r["killers"]] for r in b]


@pytest.mark.slow
def test_interrupted_run_resumes_without_duplicates(ray_cluster: Any, wordnet_world: Path, tmp_path: Path) -> None:
    cands = _copies(wordnet_world, 40)  # long enough that the SIGINT lands mid-run
    path = tmp_path / "many.parquet"
    write_candidates(path, cands)
    out = tmp_path / "resumed.parquet"
    work = tmp_path / f".{out.name}.work"
    args = dict(CFG, actors=1, batch_size=50, part_rows=100)
    script = (
        "import crucible_ray as cr, sys, json; "
        f"cr.mine({str(path)!r}, corpus={str(wordnet_world / 'corpus.jsonl')!r}, out={str(out)!r}, "
        "**json.loads(sys.argv[1]))"
    )
    log = tmp_path / "driver.log"  # a file, not a pipe: a full pipe would block the driver
    with log.open("w") as err:
        # The driver connects to the session's cluster (RAY_ADDRESS and the session's token are inherited).
        env = {**os.environ, "RAY_ADDRESS": ray_cluster.address}
        proc = subprocess.Popen([sys.executable, "-c", script, json.dumps(args)], stderr=err, text=True, env=env)
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None and len(list(work.glob("part-*.parquet"))) < 3:
            time.sleep(0.1)
        assert proc.poll() is None, log.read_text()[-3000:]
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
    parts = list(work.glob("part-*.parquet"))
    assert len(parts) >= 3, log.read_text()[-3000:]
    assert not out.exists()  # nothing under the final name until the run is complete
    done = sum(pq.read_metadata(p).num_rows for p in parts)
    assert done < len(cands)
    res = cr.mine(path, corpus=wordnet_world / "corpus.jsonl", out=out, **args)
    assert res.manifest["execution"]["resumed_candidates"] == done
    rows = _results(out)
    # Every candidate exactly once, in input order: the interrupted run's parts hold a prefix of the
    # input and the resumed run mines the rest in order.
    assert list(rows) == [c.candidate_id for c in cands]
    # ... and gives what one uninterrupted pass gives (the single-process kernel, which a whole run on
    # Ray matches: test_results_match_the_single_process_kernel).
    fresh = mine_local(path, corpus=wordnet_world / "corpus.jsonl", config=MinerConfig(**CFG))
    _same(rows, {r["candidate_id"]: r for r in fresh.to_pylist()})
    assert not work.exists()


@pytest.mark.slow
def test_expand_vets_wordnet_killer_neighbours(wordnet_world: Path, tmp_path: Path) -> None:
    import shutil

    world = tmp_path / "world"
    shutil.copytree(wordnet_world, world)
    res = cr.expand(world, out=world / "expansion.jsonl", limit=150, **CFG)
    generated = read_candidates(world / "expansion_generated.jsonl")
    assert res.manifest["expansion"]["generator"] == "wordnet"
    assert 0 < len(read_candidates(world / "expansion_generated.jsonl"))
    taken = {b.bundle_id for b in read_bundles(world / "legacy.jsonl")}
    gen = read_candidates(world / "expansion_generated.jsonl")
    assert len(generated) == len(gen)
    vetted = read_bundles(world / "expansion.jsonl")
    rows = _results(res.results)
    assert {b.bundle_id for b in vetted} == {c for c, r in rows.items() if r["accepted"]}
    assert len(vetted) < res.counts["candidates"]  # the validator rejected some
    assert not taken & {b.bundle_id for b in vetted}  # never a legacy synset
    assert all(b.pool == "expansion" for b in vetted)
    assert cr.World.open(world).pools["expansion"] == world / "expansion.jsonl"


def my_generator(world: cr.World, limit: int) -> list[Candidate]:
    """A user's generator (used through --generator test_mining_ray:my_generator)."""
    legacy = read_bundles(world.path("legacy"))[:limit]
    return [
        Candidate(
            candidate_id=f"mine:{b.bundle_id}",
            anchor=b.anchor,
            positive=b.positive,
            negatives=[n.text for n in b.negatives],
        )
        for b in legacy
    ]


def test_expand_takes_a_user_generator_from_the_cli(wordnet_world: Path, tmp_path: Path) -> None:
    out = tmp_path / "vetted.jsonl"
    code = run(
        [
            "expand",
            "--data",
            str(wordnet_world),
            "--out",
            str(out),
            "--generator",
            "test_mining_ray:my_generator",
            "--limit",
            "40",
            "--lineup-size",
            "3",
            "--min-passes",
            "2",
        ]
    )
    assert code == 0
    vetted = read_bundles(out)
    assert vetted and all(b.bundle_id.startswith("mine:") for b in vetted)
    assert json.loads(out.with_name("vetted_mined.manifest.json").read_text())["expansion"]["generated"] == 40
