"""One contract for every encoder kind, plus spec parsing and checkpoint safety."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import crucible_ray as cr
from crucible_ray.encoders import normalize_spec, parse_spec, read_checkpoint

TEXTS = ["a domestic dog", "a small puppy", "quantum chromodynamics", "", "naïve café, 42!"]

SPECS = [
    pytest.param("hashed-ngram", id="hashed-ngram"),
    pytest.param("hashed-ngram:dim=32,buckets=4096,seed=3,words=false", id="hashed-ngram-small"),
    pytest.param("minilm:mode=frozen-head", id="minilm-frozen-head", marks=[pytest.mark.st, pytest.mark.slow]),
    pytest.param(
        "minilm:mode=frozen-head,head_dim=64,seed=1", id="minilm-head64", marks=[pytest.mark.st, pytest.mark.slow]
    ),
    pytest.param("minilm:mode=full", id="minilm-full", marks=[pytest.mark.st, pytest.mark.slow]),
]


@pytest.mark.parametrize("spec", SPECS)
class TestEncoderContract:
    def test_shape_dtype_normalised(self, spec: str) -> None:
        enc = cr.build_encoder(spec, device="cpu")
        out = enc.encode(TEXTS)
        assert out.shape == (len(TEXTS), enc.dim) and out.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
        assert enc.encode([]).shape == (0, enc.dim)

    def test_deterministic_from_spec(self, spec: str) -> None:
        a = cr.build_encoder(spec, device="cpu")
        b = cr.build_encoder(spec, device="cpu")
        np.testing.assert_array_equal(a.encode(TEXTS), b.encode(TEXTS))
        assert a.fingerprint() == b.fingerprint()
        # batching does not change the result
        np.testing.assert_allclose(a.encode(TEXTS, batch_size=2), a.encode(TEXTS), atol=1e-6)

    def test_checkpoint_round_trip_weights_only(self, spec: str, tmp_path: Path) -> None:
        enc = cr.build_encoder(spec, device="cpu")
        with torch.no_grad():  # change the trainable weights so that the round trip is meaningful
            for p in enc.module.parameters():
                if p.requires_grad:
                    p.add_(0.01 * torch.randn(p.shape, generator=torch.Generator().manual_seed(0)))
        path = cr.save_checkpoint(enc, tmp_path / "ckpt.pt", step=7, train_config={"lr": 1e-4, "ratio": "75_15_10"})
        raw = torch.load(path, weights_only=True)
        assert raw["step"] == 7 and raw["train_config"]["ratio"] == "75_15_10"
        assert raw["encoder_spec"] == normalize_spec(spec)
        loaded = cr.load_encoder(path, device="cpu")
        np.testing.assert_allclose(loaded.encode(TEXTS), enc.encode(TEXTS), atol=1e-6)
        assert loaded.fingerprint() == enc.fingerprint() != cr.build_encoder(spec, device="cpu").fingerprint()

    def test_gradients_flow_through_embed(self, spec: str) -> None:
        enc = cr.build_encoder(spec, device="cpu")
        loss = enc.embed(TEXTS[:2]).sum()
        loss.backward()
        grads = [p.grad for p in enc.module.parameters() if p.requires_grad]
        assert grads and any(g is not None and g.abs().sum() > 0 for g in grads)


def test_seed_changes_untrained_hashed_encoder() -> None:
    a = cr.build_encoder("hashed-ngram:seed=0").encode(TEXTS)
    b = cr.build_encoder("hashed-ngram:seed=1").encode(TEXTS)
    assert not np.allclose(a, b)


def test_untrained_hashed_encoder_sees_spelling() -> None:
    e = cr.build_encoder("hashed-ngram").encode(["domestic dogs", "domestic dog", "volcanic eruption"])
    assert e[0] @ e[1] > e[0] @ e[2] + 0.3


def test_spec_forms() -> None:
    assert parse_spec("hashed-ngram:dim=256,seed=0,words=true") == {
        "kind": "hashed-ngram",
        "dim": 256,
        "seed": 0,
        "words": True,
    }
    assert normalize_spec('{"kind": "hashed-ngram", "dim": 64}') == normalize_spec("hashed-ngram:dim=64")
    assert normalize_spec("minilm")["kind"] == "sentence-transformer"


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("bogus", "unknown encoder kind 'bogus'; known kinds:"),
        ("hashed-ngram:dim=1", "parameter 'dim'"),
        ("hashed-ngram:colour=red", "parameter 'colour': Extra inputs are not permitted"),
        ("hashed-ngram:dim", "key=value pairs"),
        ("hashed-ngram:ngram_min=6,ngram_max=3", "ngram_min"),
        ('{"kind": ', "not valid JSON"),
        ("minilm:model=/nonexistent", "never downloaded"),
    ],
)
def test_bad_specs(spec: str, match: str) -> None:
    with pytest.raises(cr.EncoderError, match=match):
        cr.build_encoder(spec)


class _Evil:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (print, ("pwned",))


def test_checkpoint_with_pickled_object_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"format": "crucible-ray-checkpoint", "format_version": 1, "evil": _Evil()}, path)
    with pytest.raises(cr.EncoderError, match="not a loadable crucible-ray checkpoint") as e:
        read_checkpoint(path)
    assert "pwned" not in capsys.readouterr().out
    msg = str(e.value)
    assert str(path) in msg and "unsafe" in msg and "\n" not in msg and "\x1b" not in msg
    # never torch's advice to reload it with weights_only=False
    assert "weights_only" not in msg and "can still be loaded" not in msg and "trust" not in msg


def _small_checkpoint(path: Path, spec: str = "hashed-ngram:dim=8,buckets=64") -> Path:
    return cr.save_checkpoint(cr.build_encoder(spec, device="cpu"), path)


def _damaged(tmp_path: Path) -> list[Path]:
    good = _small_checkpoint(tmp_path / "good.pt").read_bytes()
    out = []
    for i, n in enumerate([0, 10, 100, len(good) // 3, len(good) // 2, len(good) - 100, len(good) - 22, len(good) - 1]):
        out.append(tmp_path / f"truncated_{i}.pt")
        out[-1].write_bytes(good[:n])
    texts = {"text.pt": "hello, I am a text file\nnot a checkpoint\n", "json.pt": '{"format": 1}', "empty.pt": ""}
    for name, text in texts.items():
        out.append(tmp_path / name)
        out[-1].write_text(text)
    return out


def test_damaged_or_foreign_checkpoint_files_are_one_clear_error(tmp_path: Path) -> None:
    # A truncated .pt raised OSError/RuntimeError from torch; a text file named .pt raised KeyError.
    for path in _damaged(tmp_path):
        with pytest.raises(cr.EncoderError) as e:
            cr.load_encoder(path, device="cpu")
        msg = str(e.value)
        assert msg.startswith(f"{path}: not a crucible-ray checkpoint (or damaged)"), msg
        assert "\n" not in msg and "weights_only" not in msg


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        ({"encoder_spec": "hashed-ngram:dim=8,buckets=64"}, "'encoder_spec'"),
        ({"state_dict": [1, 2]}, "'state_dict'"),
        ({"state_dict": {"bag.weight": 3}}, "'state_dict'"),
        ({"state_dict": {"bag.weight": torch.zeros(64, 8, dtype=torch.int64)}}, "'bag.weight'"),
        ({"encoder_spec": {"kind": "hashed-ngram", "dim": "x"}}, "parameter 'dim'"),
    ],
)
def test_malformed_checkpoint_payloads(tmp_path: Path, payload: dict[str, object], match: str) -> None:
    path = _small_checkpoint(tmp_path / "c.pt")
    raw = torch.load(path, weights_only=True)
    torch.save({**raw, **payload}, path)
    with pytest.raises(cr.EncoderError, match=match) as e:
        cr.load_encoder(path, device="cpu")
    assert str(e.value).startswith(f"{path}: ")


def _refuse_building(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Make building a hashed-ngram module fail loudly (and record it): nothing may be allocated."""
    from crucible_ray.encoders import _registry

    built: list[object] = []
    kind = _registry._KINDS["hashed-ngram"]

    def factory(params: object) -> torch.nn.Module:
        built.append(params)
        raise AssertionError(f"an encoder was built before its checkpoint's tensors were checked: {params}")

    monkeypatch.setitem(_registry._KINDS, "hashed-ngram", dataclasses.replace(kind, factory=factory))
    return built


@pytest.mark.parametrize(
    ("spec", "tensor", "match"),
    [
        # a 1.6 KB file asking for a (16M x 256) table: 16 GB if built
        (
            {"kind": "hashed-ngram", "dim": 256, "buckets": 1 << 24},
            torch.zeros(64, 8),
            r"buckets x dim|do not match",
        ),
        # a spec within bounds that disagrees with the stored table
        ({"kind": "hashed-ngram", "dim": 512, "buckets": 1 << 16}, torch.zeros(64, 8), "do not match"),
        # the right shape from 4 bytes of data (a stride-0 view): building would allocate the full table
        (
            {"kind": "hashed-ngram", "dim": 512, "buckets": 1 << 16},
            torch.zeros(1).expand(1 << 16, 512),
            "holds fewer values than its shape",
        ),
    ],
)
def test_checkpoint_spec_is_checked_against_its_tensors_before_building(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spec: dict[str, object], tensor: torch.Tensor, match: str
) -> None:
    path = _small_checkpoint(tmp_path / "c.pt")
    raw = torch.load(path, weights_only=True)
    torch.save({**raw, "encoder_spec": spec, "state_dict": {"bag.weight": tensor}}, path)
    assert path.stat().st_size < 4096
    built = _refuse_building(monkeypatch)
    with pytest.raises(cr.EncoderError, match=match) as e:
        cr.load_encoder(path, device="cpu")
    assert not built and str(e.value).startswith(f"{path}: ")


def test_hashed_encoder_size_is_bounded() -> None:
    with pytest.raises(cr.EncoderError, match="buckets x dim"):
        normalize_spec("hashed-ngram:buckets=16777216,dim=256")
    assert normalize_spec("hashed-ngram:buckets=1048576,dim=256")["buckets"] == 1 << 20  # 1 GiB: allowed


def test_checkpoint_errors(tmp_path: Path) -> None:
    with pytest.raises(cr.EncoderError, match="no such checkpoint"):
        cr.load_encoder(tmp_path / "none.pt")
    torch.save({"hello": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(cr.EncoderError, match="not a crucible-ray checkpoint"):
        cr.load_encoder(tmp_path / "other.pt")


@pytest.mark.st
@pytest.mark.parametrize("spec", ["minilm:mode=full", "minilm:mode=frozen-head"])
def test_cpu_streams_give_the_one_thread_vectors_in_input_order(spec: str, tmp_path: Path) -> None:
    """On a CPU a MiniLM encoder runs its batches in single-threaded streams (one per torch thread):
    each batch is computed on one thread, so 2 or 3 streams give exactly the bits of encoding with one
    torch thread, rows in input order; the caller's torch thread count is left as it was."""
    from crucible_ray.encoders import feature_table

    enc = cr.build_encoder(spec, device="cpu")
    texts = [f"{w} number {i}" + " long" * (i % 7) for i, w in enumerate(["dog", "cat", "quark", "café"] * 9)]
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert enc.encode_streams() == 1
        single = enc.encode(texts, batch_size=4)
        torch.set_num_threads(1)
        single_features = feature_table(enc, texts, tmp_path / "one", batch_size=4).features
        for n in (2, 3):
            torch.set_num_threads(n)
            assert enc.encode_streams() == n
            np.testing.assert_array_equal(enc.encode(texts, batch_size=4), single)
            assert _threads_of_a_new_thread() == n  # the process-wide count the streams set is put back
            if "frozen" in spec:
                table = feature_table(enc, texts, tmp_path / f"s{n}", batch_size=4)
                np.testing.assert_array_equal(table.features, single_features)
        one_by_one = np.concatenate([enc.encode([t]) for t in texts[:5]])
        np.testing.assert_allclose(single[:5], one_by_one, atol=1e-5)  # in input order
    finally:
        torch.set_num_threads(threads)
    assert cr.build_encoder("hashed-ngram", device="cpu").encode_streams() == 1  # a kind that does not ask


def _threads_of_a_new_thread() -> int:
    """torch's thread count as a thread that starts torch work now gets it (the process-wide value;
    the calling thread's own OpenMP setting is not what the streams change)."""
    import threading

    got: list[int] = []
    t = threading.Thread(target=lambda: got.append(torch.get_num_threads()))
    t.start()
    t.join()
    return got[0]


@pytest.mark.st
def test_a_streaming_encoder_keeps_its_cpu_batches_small() -> None:
    """Every core holds a batch at once, so a sentence-transformers encoder on a CPU caps its batches
    at CPU_STREAM_BATCH whatever was asked, on every machine alike; the hashing encoder keeps what
    was asked."""
    from crucible_ray.encoders._streams import CPU_STREAM_BATCH

    enc = cr.build_encoder("minilm", device="cpu")
    assert enc.batch_for(256) == CPU_STREAM_BATCH == 32 and enc.batch_for(8) == 8
    assert cr.build_encoder("hashed-ngram", device="cpu").batch_for(256) == 256
    seen: list[int] = []
    embed = enc.embed
    enc.embed = lambda batch, **kw: (seen.append(len(batch)), embed(batch, **kw))[1]  # type: ignore[method-assign]
    threads = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            seen.clear()
            enc.encode([f"text {i}" for i in range(70)], batch_size=256)
            assert sorted(seen) == [6, 32, 32], n
    finally:
        torch.set_num_threads(threads)


def test_with_streams_even_a_lone_batch_runs_on_one_torch_thread() -> None:
    """Every batch of a streamed encode runs in a stream with one torch thread, a lone batch too (on
    the caller's threads its bits could depend on the core count: they did not on this machine's
    torch build for MiniLM, so the test checks where it runs)."""
    import threading

    from crucible_ray.encoders._streams import encode_sorted

    where: list[tuple[str, int]] = []

    def embed(batch: list[str]) -> np.ndarray:
        where.append((threading.current_thread().name, torch.get_num_threads()))
        return np.ones((len(batch), 2), dtype=np.float32)

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        for n in (3, 9):  # one batch, then three
            where.clear()
            encode_sorted([f"t{i}" for i in range(n)], embed, batch_size=4, streams=2)
            assert where and all(name.startswith("crucible-encode") and t == 1 for name, t in where), where
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)


def test_an_error_in_one_stream_stops_the_batches_not_yet_started() -> None:
    """A failing batch (or Ctrl-C) does not wait for the rest of a long encode: the error comes back
    once the running batches end, the queued ones never run, and the torch thread count is restored."""
    import threading
    import time

    from crucible_ray.encoders._streams import encode_sorted

    calls: list[int] = []
    lock = threading.Lock()

    def embed(batch: list[str]) -> np.ndarray:
        with lock:
            calls.append(len(batch))
            if len(calls) == 3:
                raise RuntimeError("broken batch")
        time.sleep(0.01)  # a batch takes time (a real one 20-200 ms): without cancelling, 1,000 take 10 s
        return np.ones((len(batch), 4), dtype=np.float32)

    threads = torch.get_num_threads()
    texts = [f"text {i}" for i in range(2000)]
    with pytest.raises(RuntimeError, match="broken batch"):
        encode_sorted(texts, embed, batch_size=2, streams=2)
    assert 3 <= len(calls) < 50  # of 1,000 batches
    assert torch.get_num_threads() == threads
    if threads > 1:  # the streams set the process-wide count to 1; the failure put it back
        assert _threads_of_a_new_thread() == threads
    some = ["a", "abcd", "ab", "abcdef", "abc", "abcde", ""]
    out = encode_sorted(some, lambda b: np.array([[len(t), 0.0] for t in b], np.float32), batch_size=3, streams=2)
    np.testing.assert_array_equal(out[:, 0], [len(t) for t in some])  # rows in input order


def test_encodes_from_two_threads_take_turns_and_leave_the_train_mode_as_it_was(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``encode`` switches the module to eval mode and back. Two threads encoding at once on one encoder
    (a driver scoring in a thread while it trains) must not interleave: the second would see eval mode
    as the state to restore and leave a module in training stuck in eval mode (dropout off)."""
    import threading

    enc = cr.build_encoder("hashed-ngram:buckets=512,dim=8,seed=0")
    enc.module.train()
    inside, release = threading.Event(), threading.Event()
    modes: list[bool] = []
    real = enc.embed

    def slow_embed(texts: Any, *, role: Any = "document") -> torch.Tensor:
        modes.append(enc.module.training)
        if not inside.is_set():
            inside.set()
            assert release.wait(timeout=30)
        return real(texts, role=role)

    monkeypatch.setattr(enc, "embed", slow_embed)
    first = threading.Thread(target=enc.encode, args=(["a"],))
    second = threading.Thread(target=enc.encode, args=(["b"],))
    first.start()
    assert inside.wait(timeout=30)
    second.start()
    second.join(timeout=0.5)
    assert second.is_alive() and len(modes) == 1  # the second call waits for the first
    release.set()
    first.join(timeout=30)
    second.join(timeout=30)
    assert modes == [False, False]  # both embedded in eval mode
    assert enc.module.training  # and the module is back in train mode


def test_an_encoder_pickles_with_its_own_lock() -> None:
    import pickle

    enc = cr.build_encoder("hashed-ngram:buckets=512,dim=8,seed=0")
    copy = pickle.loads(pickle.dumps(enc))
    np.testing.assert_array_equal(copy.encode(["a dog"]), enc.encode(["a dog"]))
    assert copy._encoding is not enc._encoding
