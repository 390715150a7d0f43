"""Assembling mined parts into the results, bundle and export files: the same bytes as the models give."""

from __future__ import annotations

import functools
import itertools
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

import crucible_ray as cr
from crucible_ray.data import read_bundles
from crucible_ray.mining import MinerConfig, in_holdout, mine_local, row_to_bundle
from crucible_ray.mining._outputs import assemble, bundle_line, st_row

TRICKY = ['a "quoted" \\ word', "line\nbreak\ttab", "ctrl \x01\x1f", "café 東京 🚀", "sep \u2028 \u2029", "</script>"]


@pytest.mark.parametrize("text", TRICKY)
@pytest.mark.parametrize("pass_count", [0, 7])
def test_a_bundle_line_is_the_models_json(text: str, pass_count: int) -> None:
    row: dict[str, Any] = {
        "candidate_id": f"id-{text[:3]}",
        "anchor": text,
        "positive": text[::-1],
        "pass_count": pass_count,
        "killers": [{"text": text, "id": "k", "score": 0.5, "kills": 3}],
        "near_misses": [{"text": f"{text} 2", "id": None, "score": 0.1}],
    }
    expected = row_to_bundle(row, "organic").model_dump_json(exclude_none=True)
    assert bundle_line(row, "organic") == expected
    texts = {**row, "killers": [text], "near_misses": [f"{text} 2"]}  # the texts alone, as assemble passes them
    assert bundle_line(texts, "organic") == expected


def test_a_row_without_negatives_is_refused_as_the_model_refuses_it() -> None:
    row = {"candidate_id": "x", "anchor": "a", "positive": "p", "pass_count": 1, "killers": [], "near_misses": []}
    with pytest.raises(ValueError, match="negatives"):
        bundle_line(row, "organic")


def test_assemble_writes_what_the_rows_say(wordnet_world: Path, tmp_path: Path) -> None:
    cands = cr.read_candidates(wordnet_world / "organic_candidates.jsonl")[:400]
    corpus = cr.read_corpus(wordnet_world / "corpus.jsonl")
    table = mine_local(cands, model=cr.DEFAULT_ENCODER, corpus=corpus, config=MinerConfig(lineups=6, min_passes=3))
    part = tmp_path / "part-0.parquet"
    pq.write_table(table, part)
    files = {"train": tmp_path / "organic.jsonl", "holdout": tmp_path / "organic_holdout.jsonl"}
    tally = assemble(
        [part, part],  # the second copy stands for a re-delivered part: it is dropped
        tmp_path / "out.parquet",
        bundles=files,
        holdout_fraction=0.3,
        st_export=tmp_path / "st.jsonl",
        st_negatives=2,
    )
    rows = table.to_pylist()
    assert pq.read_table(tmp_path / "out.parquet").equals(table)
    accepted = [r for r in rows if r["accepted"]]
    assert accepted and len(accepted) < len(rows)  # both kinds of row are in the test
    for role, path in files.items():
        want = [
            row_to_bundle(r, path.stem).model_dump_json(exclude_none=True)
            for r in accepted
            if in_holdout(r["candidate_id"], 0.3) == (role == "holdout")
        ]
        assert path.read_text().splitlines() == want
        assert len(read_bundles(path)) == len(want)
    st = [s for s in (st_row(r, 2) for r in accepted) if s is not None]
    assert [json.loads(line) for line in (tmp_path / "st.jsonl").read_text().splitlines()] == st
    assert tally.rows == len(rows)
    assert tally.status == Counter(r["status"] for r in rows)
    assert tally.pass_counts == Counter(r["pass_count"] for r in rows if r["status"] != "insufficient")
    assert tally.killers == sum(len(r["killers"]) for r in accepted)
    assert tally.dropped_false_negatives == sum(r["n_dropped_false_negatives"] for r in rows)
    assert tally.st_rows == len(st) and tally.st_skipped == len(accepted) - len(st)


def test_the_results_file_depends_on_its_rows_not_on_the_parts(
    wordnet_world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Part files are cut by row count, by time and by interruptions; the results file must not show it."""
    import crucible_ray.mining._outputs as outputs

    monkeypatch.setattr(outputs, "RESULT_ROW_GROUP", 64)  # several row groups out of a few hundred rows
    # Small pages, written 16 values at a time: pages would then follow the chunks of a table written
    # in pieces, so this also checks that each row group is written as one contiguous chunk.
    small_pages = functools.partial(pq.ParquetWriter, data_page_size=256, write_batch_size=16)
    monkeypatch.setattr(outputs.pq, "ParquetWriter", small_pages)
    cands = cr.read_candidates(wordnet_world / "organic_candidates.jsonl")[:300]
    corpus = cr.read_corpus(wordnet_world / "corpus.jsonl")
    table = mine_local(cands, model=cr.DEFAULT_ENCODER, corpus=corpus, config=MinerConfig(lineups=6, min_passes=3))
    n_rows = table.num_rows
    assert n_rows > 3 * 64
    groups = [64] * (n_rows // 64) + ([n_rows % 64] if n_rows % 64 else [])
    digests = set()
    for n, cuts in enumerate([(0, n_rows), (0, 100, n_rows), (0, 7, 150, 151, n_rows), (0, 128, n_rows)]):
        run = tmp_path / f"run{n}"
        run.mkdir()
        parts = []
        for i, (lo, hi) in enumerate(itertools.pairwise(cuts)):
            parts.append(run / f"part-{i}.parquet")
            pq.write_table(table.slice(lo, hi - lo), parts[-1])
        parts.insert(1, parts[0])  # a re-delivered part changes nothing either
        out = run / "out.parquet"
        assemble(parts, out, bundles=None, holdout_fraction=0.0, st_export=None, st_negatives=2)
        meta = pq.read_metadata(out)
        assert [meta.row_group(g).num_rows for g in range(meta.num_row_groups)] == groups
        assert pq.read_table(out).equals(table)
        digests.add(out.read_bytes())
    assert len(digests) == 1
    empty = tmp_path / "empty.parquet"  # no rows at all: still a results file, with its columns
    assemble([], empty, bundles=None, holdout_fraction=0.0, st_export=None, st_negatives=2)
    assert pq.read_table(empty).schema.names == table.schema.names and pq.read_metadata(empty).num_rows == 0
