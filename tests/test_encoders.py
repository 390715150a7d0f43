"""One contract for every encoder kind, plus spec parsing and checkpoint safety."""

from __future__ import annotations

from pathlib import Path

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
    with pytest.raises(cr.EncoderError, match="not a loadable crucible-ray checkpoint"):
        read_checkpoint(path)
    assert "pwned" not in capsys.readouterr().out


def test_checkpoint_errors(tmp_path: Path) -> None:
    with pytest.raises(cr.EncoderError, match="no such checkpoint"):
        cr.load_encoder(tmp_path / "none.pt")
    torch.save({"hello": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(cr.EncoderError, match="not a crucible-ray checkpoint"):
        cr.load_encoder(tmp_path / "other.pt")
