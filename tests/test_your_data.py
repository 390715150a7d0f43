"""A team's own data end to end, as docs/your-data.md walks it, on a real dictionary that is not WordNet.

Debian's dict-jargon (the Jargon File, a dictd dictionary; `make` installs it) becomes question/answer
CSV files with docs/examples/dictd_pairs.py; then, through the CLI as a user runs it: data import ->
mine (pool ``fresh``, holdout ``fresh_holdout``) -> sweep over the world's own pools -> pareto
--export-recommended -> the exported model loads in sentence-transformers and encodes exactly as the
checkpoint's encoder.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from crucible_ray.cli._main import run

import crucible_ray as cr
from crucible_ray.encoders import EXPORT_INFO

JARGON = Path("/usr/share/dictd/jargon")
EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "dictd_pairs.py"


def _example() -> Any:
    spec = importlib.util.spec_from_file_location("dictd_pairs", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_dictd_example_reads_the_jargon_file(tmp_path: Path) -> None:
    counts = _example().write_pairs(JARGON, tmp_path)
    assert counts["corpus"] > 2000 and counts["known"] > 400 and counts["new_questions"] > 500
    lines = (tmp_path / "known.csv").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "question,answer" and lines[1].startswith("What does '")
    # The same dictionary gives the same files.
    again = tmp_path / "again"
    _example().write_pairs(JARGON, again)
    assert (again / "weekly.csv").read_bytes() == (tmp_path / "weekly.csv").read_bytes()


@pytest.mark.slow
def test_your_data_from_csv_to_an_exported_sentence_transformers_model(
    ray_cluster: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sentence_transformers import SentenceTransformer

    data = tmp_path / "my-data"
    _example().write_pairs(JARGON, data)
    world = tmp_path / "world"
    model = "minilm:mode=frozen-head"
    code = run(
        ["data", "import", "--out", str(world), "--corpus", str(data / "corpus.csv")]
        + ["--legacy", str(data / "known.csv"), "--frozen-fraction", "0.3"]
        + ["--eval", f"weekly={data / 'weekly.csv'}", "--candidates", str(data / "new_questions.csv")]
        + ["--column", "anchor=question", "--column", "positive=answer", "--negatives", "4"]
    )
    assert code == 0, capsys.readouterr().err
    code = run(
        ["mine", "--candidates", str(world / "candidates.jsonl"), "--corpus", str(world / "corpus.jsonl")]
        + ["--out", str(tmp_path / "mined.parquet"), "--bundles-dir", str(world), "--encoder", model]
        + ["--pool", "fresh", "--holdout-pool", "fresh_holdout", "--actors", "1"]
        + ["--lineups", "6", "--lineup-size", "4", "--min-passes", "3"]
    )
    assert code == 0, capsys.readouterr().err
    opened = cr.World.open(world)
    assert opened.ratio_pools() == ("legacy", "fresh")
    assert set(opened.eval_sets) == {"frozen_eval", "weekly", "fresh_holdout"}
    sweep_dir = tmp_path / "sweep"
    code = run(
        ["sweep", "ratio", "--data", str(world), "--output-dir", str(sweep_dir), "--ratios", "90_10,60_40"]
        + ["--seeds", "1,2", "--steps", "15,40", "--encoder", model, "--batch-size", "16"]
        + ["--generalization-set", "fresh_holdout"]
    )
    assert code == 0, capsys.readouterr().err
    table = pq.read_table(sweep_dir / "results.parquet").to_pylist()
    assert {r["pools"] for r in table} == {"legacy,fresh"}  # the world's own pools, in its order
    assert {r["ratio"] for r in table} == {"90_10", "60_40"} and all(r["generalization"] is not None for r in table)
    capsys.readouterr()
    exported = tmp_path / "model"
    assert run(["pareto", "--results-dir", str(sweep_dir), "--export-recommended", str(exported)]) == 0
    out = capsys.readouterr().out
    assert "recommended" in out and str(exported) in out
    info = json.loads((exported / EXPORT_INFO).read_text())
    texts = ["What does 'bamf' mean?", "A notional black hole in any information space.", "kludge"]
    st = SentenceTransformer(str(exported), device="cpu")
    ours = cr.load_encoder(info["checkpoint"], device="cpu")
    np.testing.assert_allclose(st.encode(texts), ours.encode(texts), atol=1e-5)
    assert info["train_config"]["pools"] == ["legacy", "fresh"]
