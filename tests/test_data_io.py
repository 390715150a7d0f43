"""Data files: JSONL and Parquet round trips, row validation, atomic writes."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crucible_ray import Bundle, Candidate, CorpusDoc, DataError, Negative
from crucible_ray.data import (
    atomic_write,
    read_bundles,
    read_candidates,
    read_corpus,
    write_bundles,
    write_candidates,
    write_corpus,
)

GOOD = {
    "bundle_id": "b1",
    "anchor": "a dog",
    "positive": "dog",
    "pool": "legacy",
    "negatives": [{"text": "cat", "tier": 3}, {"text": "car", "tier": 1}],
}


def _bundles() -> list[Bundle]:
    return [
        Bundle(
            bundle_id="b1",
            anchor="a dog",
            positive="dog",
            pool="legacy",
            negatives=[Negative(text="cat", tier=3), Negative(text="car", tier=1)],
        ),
        Bundle(
            bundle_id="b2",
            anchor="naïve café <b>",
            positive="café",
            pool="organic",
            pass_count=7,
            negatives=[Negative(text="bar", tier=2)],
        ),
    ]


@pytest.mark.parametrize("ext", [".jsonl", ".parquet"])
def test_round_trip(tmp_path: Path, ext: str) -> None:
    b = _bundles()
    write_bundles(tmp_path / f"b{ext}", b)
    assert read_bundles(tmp_path / f"b{ext}") == b
    c = [
        Candidate(candidate_id="c1", anchor="x", positive="y"),
        Candidate(candidate_id="c2", anchor="x", positive="y", negatives=["n1", "n2"]),
    ]
    write_candidates(tmp_path / f"c{ext}", c)
    assert read_candidates(tmp_path / f"c{ext}") == c
    d = [CorpusDoc(id="1", text="one"), CorpusDoc(id="2", text="two")]
    write_corpus(tmp_path / f"d{ext}", d)
    assert read_corpus(tmp_path / f"d{ext}") == d


def _write_lines(path: Path, rows: list[object]) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


@pytest.mark.parametrize(
    ("second_row", "message"),
    [
        ('{"bundle_id": "b2", "anchor": ', ":2: invalid JSON"),
        ({k: v for k, v in GOOD.items() if k != "anchor"} | {"bundle_id": "b2"}, ":2: field 'anchor': Field required"),
        (GOOD | {"bundle_id": "b2", "anchor": 7}, ":2: field 'anchor': Input should be a valid string"),
        (GOOD | {"bundle_id": "b2", "negatives": [{"text": "x", "tier": 4}]}, ":2: field 'negatives[0].tier'"),
        (GOOD | {"bundle_id": "b2", "negatives": [{"text": "x", "tier": "3"}]}, ":2: field 'negatives[0].tier'"),
        (GOOD | {"bundle_id": 2}, ":2: field 'bundle_id': Input should be a valid string"),
        (GOOD, ":2: field 'bundle_id': duplicate id 'b1' (first at 1)"),
        (GOOD | {"bundle_id": "b2", "negatives": []}, ":2: field 'negatives'"),
        (GOOD | {"bundle_id": "b2", "negativs": []}, ":2: field 'negativs': Extra inputs are not permitted"),
        ([1, 2], ":2: a row must be a JSON object"),
    ],
)
def test_bad_jsonl_rows_name_path_line_field(tmp_path: Path, second_row: object, message: str) -> None:
    path = _write_lines(tmp_path / "bad.jsonl", [GOOD, second_row])
    with pytest.raises(DataError) as err:
        read_bundles(path)
    text = str(err.value)
    assert text.startswith(str(path) + ":2: ")
    assert message in text
    assert "\n" not in text


def test_empty_and_missing_files(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(DataError, match="empty.jsonl: file is empty"):
        read_bundles(tmp_path / "empty.jsonl")
    with pytest.raises(DataError, match="nope.jsonl: no such file"):
        read_bundles(tmp_path / "nope.jsonl")
    with pytest.raises(DataError, match="unknown file type '.csv'"):
        read_bundles(tmp_path / "x.csv")


def test_blank_lines_keep_line_numbers(tmp_path: Path) -> None:
    path = _write_lines(tmp_path / "b.jsonl", [GOOD, "", GOOD | {"bundle_id": "b3", "pool": ""}])
    with pytest.raises(DataError, match=r"b\.jsonl:3: field 'pool'"):
        read_bundles(path)


def test_parquet_reports_row_index(tmp_path: Path) -> None:
    table = pa.Table.from_pylist([{"id": "1", "text": "one"}, {"id": "2", "text": None}])
    pq.write_table(table, tmp_path / "c.parquet")
    with pytest.raises(DataError, match=r"c\.parquet:row 1: field 'text'"):
        read_corpus(tmp_path / "c.parquet")
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataError, match="cannot read as Parquet"):
        read_corpus(tmp_path / "junk.parquet")


def test_candidates_and_corpus_ignore_extra_columns(tmp_path: Path) -> None:
    path = _write_lines(tmp_path / "c.jsonl", [{"candidate_id": "c", "anchor": "a", "positive": "p", "source": "x"}])
    assert read_candidates(path)[0].negatives is None


def test_failed_write_leaves_no_file(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError), atomic_write(target) as f:
        f.write("partial")
        raise RuntimeError("interrupted")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_write(target) as f:
        f.write("new")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old"
