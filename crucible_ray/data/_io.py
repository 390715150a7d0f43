"""Reading and writing data files, JSONL or Parquet by extension, every row validated.

The first bad row is reported as ``path:line: field 'x': what is wrong`` (Parquet: ``path:row N``
with the 0-based row index). Writes are atomic.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar, get_args

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ValidationError

from crucible_ray.data._atomic import atomic_path, atomic_write
from crucible_ray.data._schema import ARROW_SCHEMA, ID_FIELD, Bundle, Candidate, CorpusDoc
from crucible_ray.errors import DataError

M = TypeVar("M", bound=BaseModel)

JSONL_SUFFIXES = (".jsonl", ".ndjson")
PARQUET_SUFFIXES = (".parquet", ".pq")


def file_format(path: str | Path) -> str:
    """``"jsonl"`` or ``"parquet"`` from the file extension; anything else is a :class:`DataError`."""
    suffix = Path(path).suffix.lower()
    if suffix in JSONL_SUFFIXES:
        return "jsonl"
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    raise DataError(f"{path}: unknown file type {suffix!r}; use .jsonl or .parquet")


def _loc(loc: Sequence[Any]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "row"


def _describe(err: ValidationError, model: type[BaseModel], raw: dict[str, Any]) -> str:
    """The first error, plus any unknown field (with the closest known name): a typo'd field is both."""
    errors = err.errors(include_url=False)
    unknown = [tuple(e["loc"]) for e in errors if e["type"] == "extra_forbidden"]
    if model.model_config.get("extra") == "ignore":  # other tools' columns: named only when close to a field
        unknown += [(k,) for k in raw if k not in model.model_fields and _close(model, (k,))]
    first = errors[0]
    if first["type"] == "extra_forbidden":
        return _unknown(model, tuple(first["loc"]))
    msg = f"field '{_loc(first['loc'])}': {first['msg']}"
    if first["type"] not in ("missing", "extra_forbidden"):
        shown = repr(first.get("input"))
        msg += f" (got {shown[:60] + '...' if len(shown) > 60 else shown})"
    if unknown:
        hinted = [loc for loc in unknown if _close(model, loc)]
        msg += "; " + _unknown(model, (hinted or unknown)[0])
    return msg


def _unknown(model: type[BaseModel], loc: tuple[Any, ...]) -> str:
    close = _close(model, loc)
    if close:
        return f"unknown field '{_loc(loc)}' (did you mean '{close}'?)"
    return f"unknown field '{_loc(loc)}' (the fields are {', '.join(_fields_at(model, loc))})"


def _close(model: type[BaseModel], loc: tuple[Any, ...]) -> str | None:
    found = difflib.get_close_matches(str(loc[-1]), _fields_at(model, loc), n=1, cutoff=0.6)
    return found[0] if found else None


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The field names of the (nested) model that holds ``loc``'s last key."""
    current: type[BaseModel] | None = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = current.model_fields.get(str(part)) if current is not None else None
        current = _model_in(field.annotation) if field is not None else None
    return list(current.model_fields) if current is not None else []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):  # list[Negative], Negative | None, ...
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _iter_jsonl(path: Path) -> Iterator[tuple[str, Any]]:
    try:
        f = path.open("rb")
    except OSError as e:
        raise DataError(f"{path}: cannot open: {e.strerror}") from None
    with f:
        for lineno, data in enumerate(f, 1):
            try:
                line = data.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(
                    f"{path}:{lineno}: not UTF-8 text: {e.reason} (byte {e.start + 1} of the line)"
                ) from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except RecursionError:
                raise DataError(f"{path}:{lineno}: JSON nested too deeply") from None
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{lineno}: invalid JSON: {e.msg} (column {e.colno})") from None
            except ValueError as e:  # e.g. an integer of more than 4300 digits
                raise DataError(f"{path}:{lineno}: invalid JSON: {str(e).split(';')[0]}") from None
            yield f"{path}:{lineno}", row


def _iter_parquet(path: Path) -> Iterator[tuple[str, Any]]:
    def cannot(e: Exception) -> DataError:
        first = " ".join(str(e).split())[:200] or type(e).__name__
        return DataError(f"{path}: cannot read as Parquet: {first} (is it a Parquet file, and whole?)")

    try:
        pf = pq.ParquetFile(path)
        batches = pf.iter_batches(batch_size=8192)
    except Exception as e:  # noqa: BLE001 - pyarrow raises many types for a file that is not Parquet
        raise cannot(e) from None
    index = 0
    while True:
        try:
            batch = next(batches, None)
            rows = batch.to_pylist() if batch is not None else []
        except Exception as e:  # noqa: BLE001 - a damaged page (OSError, ArrowInvalid), strings not UTF-8, ...
            raise cannot(e) from None
        if batch is None:
            return
        for row in rows:
            yield f"{path}:row {index}", row
            index += 1


def iter_rows(path: str | Path, model: type[M]) -> Iterator[M]:
    """Validate and yield the rows of a JSONL or Parquet file as ``model`` instances.

    Raises:
        DataError: a missing or empty file, malformed JSON, a bad field, or a duplicate id.
    """
    path = Path(path)
    fmt = file_format(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    rows = _iter_jsonl(path) if fmt == "jsonl" else _iter_parquet(path)
    id_field = ID_FIELD.get(model)
    seen: dict[str, str] = {}
    count = 0
    for where, raw in rows:
        if not isinstance(raw, dict):
            raise DataError(f"{where}: a row must be a JSON object, but got {type(raw).__name__}")
        if model is Bundle or model is Candidate:
            # Parquet stores an absent optional field as null; treat it as absent.
            raw = {
                k: v
                for k, v in raw.items()
                if v is not None or k not in ("pass_count", "negatives", "positive_id", "other_positives")
            }
        try:
            item = model.model_validate(raw)
        except ValidationError as e:
            raise DataError(f"{where}: {_describe(e, model, raw)}") from None
        if id_field is not None:
            key = getattr(item, id_field)
            if key in seen:
                raise DataError(f"{where}: field '{id_field}': duplicate id {key!r} (first at {seen[key]})")
            seen[key] = where.rsplit(":", 1)[-1]
        count += 1
        yield item
    if count == 0:
        raise DataError(f"{path}: file is empty (no rows)")


def read_rows(path: str | Path, model: type[M]) -> list[M]:
    """Read a whole file; see :func:`iter_rows`."""
    return list(iter_rows(path, model))


def read_bundles(path: str | Path) -> list[Bundle]:
    """Read a bundle file (a training pool or an eval set)."""
    return read_rows(path, Bundle)


def read_candidates(path: str | Path) -> list[Candidate]:
    """Read a miner candidate file."""
    return read_rows(path, Candidate)


def read_corpus(path: str | Path) -> list[CorpusDoc]:
    """Read a corpus file (``id``, ``text``)."""
    return read_rows(path, CorpusDoc)


def write_rows(path: str | Path, rows: Iterable[BaseModel], model: type[BaseModel]) -> int:
    """Write rows atomically as JSONL or Parquet (by extension); returns the number of rows."""
    path = Path(path)
    fmt = file_format(path)
    dicts = [r.model_dump(mode="json", exclude_none=fmt == "jsonl") for r in rows]
    if fmt == "jsonl":
        with atomic_write(path) as f:
            for d in dicts:
                f.write(json.dumps(d, ensure_ascii=False, separators=(",", ":")))
                f.write("\n")
    else:
        table = pa.Table.from_pylist(dicts, schema=ARROW_SCHEMA[model])
        with atomic_path(path) as tmp:
            pq.write_table(table, tmp)
    return len(dicts)


def write_bundles(path: str | Path, bundles: Iterable[Bundle]) -> int:
    """Write bundles atomically (JSONL or Parquet by extension)."""
    return write_rows(path, bundles, Bundle)


def write_candidates(path: str | Path, candidates: Iterable[Candidate]) -> int:
    """Write miner candidates atomically."""
    return write_rows(path, candidates, Candidate)


def write_corpus(path: str | Path, docs: Iterable[CorpusDoc]) -> int:
    """Write a corpus atomically."""
    return write_rows(path, docs, CorpusDoc)


def path_inside(base: str | Path, *parts: str) -> Path | None:
    """``base / parts`` if it stays inside ``base`` once ``..`` and symbolic links are resolved, else None.

    For paths built from names found in files (trial ids in a results table, folders of a results
    directory someone sent you): ``../`` components and links pointing elsewhere are refused.
    """
    root = Path(base).resolve()
    path = Path(base).joinpath(*parts)
    try:
        path.resolve().relative_to(root)
    except ValueError:
        return None
    return path


def read_json_object(path: str | Path) -> dict[str, Any]:
    """A JSON object from ``path``; ``{}`` when the file is missing, unreadable or not an object.

    For optional side files (manifests, status records) whose absence is a normal state.
    """
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError, RecursionError):  # missing, unreadable, not UTF-8, not JSON, nested too deeply
        return {}
    return doc if isinstance(doc, dict) else {}


def write_json(path: str | Path, obj: Any) -> None:
    """Write a JSON document atomically (sorted keys, 2-space indent, trailing newline)."""
    with atomic_write(path) as f:
        json.dump(obj, f, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False)
        f.write("\n")
