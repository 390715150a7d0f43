"""Rows from whatever a team has: JSONL, CSV/TSV, Parquet, a ``datasets`` ``save_to_disk`` folder, or an
in-memory pandas ``DataFrame`` / ``datasets.Dataset``; each row with where it came from (``path:line``)."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from crucible_ray.errors import DataError


def source_rows(
    path: str | Path | Any, columns: Mapping[str, str] | None = None, required: frozenset[str] = frozenset()
) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(where, row)`` for each row of a JSONL, CSV, Parquet file or a ``save_to_disk`` folder (or an
    in-memory pandas ``DataFrame`` or ``datasets.Dataset``), with the columns renamed by ``columns``
    (target -> source) where the source lacks the target. ``where`` is ``path:line``, ``path:row N``
    or ``DataFrame row N``. A mapped source column that is missing is an error for the ``required``
    targets only.

    Raises:
        DataError: a missing or empty file, an unreadable row, a mapped column that is not there.
    """
    mapping = dict(columns or {})
    if isinstance(path, (str, Path)):
        path = Path(path)
        if not path.exists():
            raise DataError(f"{path}: no such file")
        raw, label = _raw_rows(path), str(path)
    else:
        raw, label = _table_rows(path), f"the {type(path).__name__}"
    count = 0
    for where, row in raw:
        if count == 0:  # a file that already has the target column needs no mapping
            missing = [t for t, src in mapping.items() if t in required and src not in row and t not in row]
            if missing:
                raise DataError(
                    f"{where}: column {mapping[missing[0]]!r} (mapped to {missing[0]!r}) is not there; "
                    f"the columns are {sorted(row)}"
                )
        count += 1
        out = dict(row)
        for target, src in mapping.items():
            if target not in row and src in row:
                out[target] = out.pop(src)
        yield where, out
    if count == 0:
        raise DataError(f"{label}: file is empty (no rows)" if isinstance(path, Path) else f"{label} has no rows")


def _table_rows(table: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """Rows of a pandas ``DataFrame`` or a ``datasets.Dataset`` (any object with ``to_dict`` / rows)."""
    kind = type(table).__name__
    if kind == "DataFrame":
        records = table.to_dict("records")
    elif kind == "Dataset":
        records = iter(table)
    else:
        raise DataError(f"a {kind} is not a data source; give a file, a pandas DataFrame or a datasets.Dataset")
    for i, row in enumerate(records):
        yield f"{kind} row {i}", {str(k): _plain(v) for k, v in dict(row).items()}


def _plain(value: Any) -> Any:
    """A numpy array cell (pandas holds list columns so) as a list; NaN (a missing cell) as None."""
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        value = value.tolist()
    if isinstance(value, float) and value != value:
        return None
    return value


def _raw_rows(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    if path.is_dir():
        yield from _dataset_rows(path)
        return
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        with path.open("rb") as f:
            for lineno, data in enumerate(f, 1):
                try:
                    text = data.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise DataError(f"{path}:{lineno}: not UTF-8 text: {e.reason}") from None
                if not text.strip():
                    continue
                try:
                    row = json.loads(text)
                except (json.JSONDecodeError, RecursionError, ValueError) as e:
                    raise DataError(f"{path}:{lineno}: invalid JSON: {str(e).split(';')[0][:120]}") from None
                if not isinstance(row, dict):
                    raise DataError(f"{path}:{lineno}: a row must be a JSON object, but got {type(row).__name__}")
                yield f"{path}:{lineno}", row
    elif suffix in (".csv", ".tsv"):
        try:
            csv.field_size_limit(sys.maxsize)  # a long document in a corpus is not an error
            with path.open(newline="", encoding="utf-8-sig") as f:  # a BOM (Excel) is not part of the header
                reader = csv.DictReader(f, delimiter="\t" if suffix == ".tsv" else ",")
                for row in reader:
                    yield f"{path}:{reader.line_num}", {k: v for k, v in row.items() if k is not None}
        except UnicodeDecodeError as e:
            raise DataError(f"{path}: not UTF-8 text: {e.reason}") from None
        except csv.Error as e:
            raise DataError(f"{path}: not a CSV file: {e}") from None
    elif suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except Exception as e:  # noqa: BLE001 - pyarrow raises many types for a file that is not Parquet
            raise DataError(f"{path}: cannot read as Parquet: {' '.join(str(e).split())[:160]}") from None
        for i, row in enumerate(table.to_pylist()):
            yield f"{path}:row {i}", row
    else:
        raise DataError(f"{path}: unknown file type {suffix!r}; use .jsonl, .csv, .parquet or a datasets folder")


def _dataset_rows(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    try:
        from datasets import load_from_disk
    except ImportError:
        raise DataError(
            f"{path}: a folder is read as a Hugging Face datasets folder, which needs the datasets package "
            "(pip install 'crucible-ray[datasets]')"
        ) from None
    try:
        ds = load_from_disk(str(path))
    except Exception as e:  # noqa: BLE001 - datasets raises FileNotFoundError, ValueError...
        raise DataError(f"{path}: not a datasets folder written by save_to_disk: {str(e)[:160]}") from None
    if type(ds).__name__ != "Dataset":  # a DatasetDict: one split only
        splits = list(ds.keys()) if hasattr(ds, "keys") else []
        raise DataError(f"{path}: a DatasetDict with splits {splits}; save one split (ds['train'])")
    for i, row in enumerate(ds):
        yield f"{path}:row {i}", dict(row)


def id_text(raw: Any) -> str:
    """An id of any type as text: ``7``, ``"7"`` and ``7.0`` (an integer column pandas made float because
    a cell was missing) all give ``"7"``."""
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    return str(raw)
