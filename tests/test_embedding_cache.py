"""The embedding cache: exact vectors back, nothing embedded twice, never stale, safe with writers side
by side, within its size (Ray-free; a run of ``mine`` through it is in test_mining_ray.py)."""

from __future__ import annotations

import multiprocessing
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from crucible_ray.encoders import (
    CachingEncoder,
    EmbeddingCache,
    EmbeddingCacheConfig,
    Encoder,
    build_encoder,
    cache_config,
    model_key,
    parse_size,
    with_embedding_cache,
)
from crucible_ray.encoders._embedding_cache import MERGE_AT
from crucible_ray.errors import ConfigError

SPEC = "hashed-ngram:buckets=4096,dim=32,seed=0"
TEXTS = [f"text number {i} about {w}" for i, w in enumerate(["dogs", "cats", "ships", "trees"] * 25)]


class Counting(Encoder):
    """The real encoder, counting the texts it is asked to embed."""

    def __init__(self, base: Encoder) -> None:
        super().__init__(base.spec, base.module)
        self.seen: list[str] = []

    def encode(self, texts: Sequence[str], *, batch_size: int = 256, role: str | None = "document") -> np.ndarray:  # type: ignore[override]
        self.seen.extend(texts)
        return super().encode(texts, batch_size=batch_size, role=role)  # type: ignore[arg-type]


def _cached(root: Path, spec: str = SPEC, **kw: int) -> tuple[Encoder, Counting]:
    base = Counting(build_encoder(spec, device="cpu"))
    return with_embedding_cache(base, EmbeddingCacheConfig(str(root), **kw)), base


def test_vectors_come_back_exactly_and_nothing_is_embedded_twice(tmp_path: Path) -> None:
    plain = build_encoder(SPEC, device="cpu").encode(TEXTS)
    first, base1 = _cached(tmp_path)
    assert isinstance(first, CachingEncoder)
    np.testing.assert_array_equal(first.encode(TEXTS), plain)
    assert sorted(base1.seen) == sorted(set(TEXTS))

    again, base2 = _cached(tmp_path)  # a new process would see the same: only the files are shared
    mixed = [*TEXTS[:10], "a text it has never seen", *TEXTS[10:20]]
    out = again.encode(mixed)
    assert base2.seen == ["a text it has never seen"]
    np.testing.assert_array_equal(out, build_encoder(SPEC, device="cpu").encode(mixed))
    assert again.fingerprint() == build_encoder(SPEC, device="cpu").fingerprint()


def test_another_model_or_another_text_is_never_served_stale(tmp_path: Path) -> None:
    enc, _ = _cached(tmp_path)
    enc.encode(TEXTS)
    other, base = _cached(tmp_path, "hashed-ngram:buckets=4096,dim=32,seed=1")  # other weights
    other.encode(TEXTS[:5])
    assert base.seen == TEXTS[:5]
    trained = build_encoder(SPEC, device="cpu")  # same spec, changed tensors: a new fingerprint
    state = trained.trainable_state()
    name = next(iter(state))
    state[name] = state[name] + 0.01
    trained.load_trainable_state(state)
    assert model_key(trained) != model_key(build_encoder(SPEC, device="cpu"))
    changed, base3 = _cached(tmp_path)
    changed.encode([TEXTS[0] + " ", TEXTS[1]])  # one character more is another text
    assert base3.seen == [TEXTS[0] + " "]


def test_a_prompt_makes_another_entry(tmp_path: Path) -> None:
    enc, base = _cached(tmp_path)
    enc.module.prompts = {"query": "query: ", "document": ""}  # type: ignore[assignment]
    enc.encode(TEXTS[:3], role="document")
    out = enc.encode(TEXTS[:3], role="query")
    assert base.seen == [*TEXTS[:3], *(f"query: {t}" for t in TEXTS[:3])]
    np.testing.assert_array_equal(out, build_encoder(SPEC, device="cpu").encode([f"query: {t}" for t in TEXTS[:3]]))


def test_many_small_writes_are_merged_into_one_shard(tmp_path: Path) -> None:
    enc, _ = _cached(tmp_path)
    for i in range(MERGE_AT + 2):
        enc.encode(TEXTS[i * 4 : i * 4 + 4])
    shards = list(tmp_path.glob("*/*.npy"))
    assert len(shards) <= 2, shards
    fresh, base = _cached(tmp_path)
    np.testing.assert_array_equal(
        fresh.encode(TEXTS[: 4 * (MERGE_AT + 2)]), build_encoder(SPEC).encode(TEXTS[: 4 * (MERGE_AT + 2)])
    )
    assert base.seen == []


def test_the_cache_stays_within_its_size_and_drops_the_least_recently_read(tmp_path: Path) -> None:
    shard_bytes = 4 * (16 + 32 * 4) + 200  # 4 rows of key + 32 floats, and the .npy header
    enc, _ = _cached(tmp_path, max_bytes=3 * shard_bytes)
    groups = [TEXTS[i * 4 : i * 4 + 4] for i in range(6)]
    enc.encode(groups[0])
    enc.encode(groups[1])
    old = sorted(tmp_path.glob("*/*.npy"), key=lambda p: p.stat().st_mtime)
    for p in old:  # make both clearly older than what follows
        import os

        os.utime(p, (1, 1))
    reader, _ = _cached(tmp_path, max_bytes=3 * shard_bytes)
    reader.encode(groups[0])  # read: group 0 becomes recent again
    for g in groups[2:]:
        enc.encode(g)
    total = sum(p.stat().st_size for p in tmp_path.glob("*/*.npy"))
    assert total <= 3 * shard_bytes
    check, base = _cached(tmp_path)
    check.encode(groups[1])
    assert base.seen == groups[1], "the least recently read shard should have gone first"


def _writer(root: str, start: int) -> None:
    enc = with_embedding_cache(build_encoder(SPEC, device="cpu"), EmbeddingCacheConfig(root))
    for i in range(start, start + 60, 3):  # overlapping ranges: the same texts written side by side
        enc.encode(TEXTS[i % 100 : i % 100 + 7])


def test_writers_side_by_side_lose_nothing_and_corrupt_nothing(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), s)) for s in (0, 10, 20, 30)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and p.suffix != ".npy"], "temporary files left"
    check, base = _cached(tmp_path)
    wanted = sorted({t for s in (0, 10, 20, 30) for i in range(s, s + 60, 3) for t in TEXTS[i % 100 : i % 100 + 7]})
    np.testing.assert_array_equal(check.encode(wanted), build_encoder(SPEC).encode(wanted))
    assert base.seen == []


def test_configuration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_size("8GB") == 8 * 1024**3 and parse_size("500mb") == 500 * 1024**2 and parse_size("1024") == 1024
    assert parse_size("1.5K") == 1536 and parse_size(10) == 10
    with pytest.raises(ConfigError, match="expected bytes or a size"):
        parse_size("a lot")
    monkeypatch.setenv("CRUCIBLE_RAY_EMBEDDING_CACHE", str(tmp_path / "env"))
    monkeypatch.setenv("CRUCIBLE_RAY_EMBEDDING_CACHE_SIZE", "2GB")
    assert cache_config() == EmbeddingCacheConfig(str(tmp_path / "env"), 2 * 1024**3)
    assert cache_config(tmp_path / "given", "1MB") == EmbeddingCacheConfig(str(tmp_path / "given"), 1024**2)
    assert not cache_config("off").enabled and not cache_config(size="0").enabled
    monkeypatch.delenv("CRUCIBLE_RAY_EMBEDDING_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_config().root == str(tmp_path / "xdg" / "crucible-ray" / "embeddings")
    off = build_encoder(SPEC)
    assert with_embedding_cache(off, cache_config("off")) is off


def test_an_unwritable_cache_is_reported_once_and_encoding_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    enc = with_embedding_cache(build_encoder(SPEC), EmbeddingCacheConfig(str(blocker / "cache")))
    np.testing.assert_array_equal(enc.encode(TEXTS[:5]), build_encoder(SPEC).encode(TEXTS[:5]))
    np.testing.assert_array_equal(enc.encode(TEXTS[5:9]), build_encoder(SPEC).encode(TEXTS[5:9]))
    warnings = [r for r in caplog.records if "cannot be written" in r.getMessage()]
    assert len(warnings) == 1
    assert isinstance(enc, CachingEncoder) and isinstance(enc.cache, EmbeddingCache)
