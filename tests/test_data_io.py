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
        (GOOD | {"bundle_id": "b2", "negativs": []}, ":2: unknown field 'negativs' (did you mean 'negatives'?)"),
        (GOOD | {"bundle_id": "b2", "colour": 1}, ":2: unknown field 'colour' (the fields are bundle_id, anchor, "),
        # a typo'd required field: the missing field and the unknown one are both named
        (
            {k: v for k, v in GOOD.items() if k != "negatives"} | {"bundle_id": "b2", "negativs": GOOD["negatives"]},
            ":2: field 'negatives': Field required; unknown field 'negativs' (did you mean 'negatives'?)",
        ),
        (
            GOOD | {"bundle_id": "b2", "negatives": [{"txt": "x", "tier": 1}]},
            ":2: field 'negatives[0].text': Field required; unknown field 'negatives[0].txt' (did you mean 'text'?)",
        ),
        ('{"bundle_id": "b2", "anchor": 1' + "0" * 5000 + "}", ":2: invalid JSON"),
        ("[" * 100_000 + "]" * 100_000, ":2: JSON nested too deeply"),
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


def test_invalid_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "b.jsonl"
    lines = [json.dumps(GOOD).encode(), b"", json.dumps(GOOD | {"bundle_id": "b2", "anchor": "caf\xc3"}).encode()]
    path.write_bytes(b"\n".join(lines).replace(b"caf\\u00c3", b"caf\xe9\xff") + b"\n")
    with pytest.raises(DataError) as err:
        read_bundles(path)
    text = str(err.value)
    assert text.startswith(f"{path}:3: not UTF-8 text") and "\n" not in text, text


def test_unknown_field_in_a_model_that_ignores_extra_columns(tmp_path: Path) -> None:
    path = _write_lines(tmp_path / "c.jsonl", [{"candidate_id": "c", "anchor": "a", "positiv": "p", "source": "x"}])
    with pytest.raises(DataError) as err:
        read_candidates(path)
    assert str(err.value) == (
        f"{path}:1: field 'positive': Field required; unknown field 'positiv' (did you mean 'positive'?)"
    )


def test_a_damaged_parquet_file_is_a_data_error(tmp_path: Path) -> None:
    table = pa.Table.from_pylist([{"id": str(i), "text": f"text number {i} " * 5} for i in range(2000)])
    pq.write_table(table, tmp_path / "good.parquet")
    good = bytearray((tmp_path / "good.parquet").read_bytes())
    column = pq.ParquetFile(tmp_path / "good.parquet").metadata.row_group(0).column(1)
    offset = column.dictionary_page_offset + 40
    good[offset : offset + 64] = b"\xff" * 64  # a damaged (compressed) page: the footer still reads
    (tmp_path / "damaged.parquet").write_bytes(bytes(good))
    # strings that are not UTF-8 (another tool wrote them unchecked)
    raw = pa.array([b"ok", b"\xff\xfe"], pa.binary())
    text = pa.Array.from_buffers(pa.string(), 2, raw.buffers())
    pq.write_table(pa.table({"id": pa.array(["1", "2"]), "text": text}), tmp_path / "utf8.parquet")
    for name in ["damaged.parquet", "utf8.parquet"]:
        with pytest.raises(DataError) as err:
            read_corpus(tmp_path / name)
        msg = str(err.value)
        assert msg.startswith(f"{tmp_path / name}: cannot read as Parquet") and "\n" not in msg, msg


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
