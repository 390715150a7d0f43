"""From mined rows to files: the results Parquet, organic bundles with a holdout, a sentence-transformers export."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from crucible_ray._rng import stable_fraction
from crucible_ray.data import Bundle, Negative, atomic_path, atomic_write
from crucible_ray.mining._batch import RESULT_SCHEMA

HOLDOUT_SALT = "organic-holdout"
#: Rows per row group of the results file. Fixed, so that the file's bytes depend on its rows only, not
#: on how the run cut them into part files (a part is also written after a few seconds, and an
#: interrupted run leaves its own parts): the same rows give the same file on any cluster.
RESULT_ROW_GROUP = 4096


def in_holdout(candidate_id: str, fraction: float) -> bool:
    """The holdout split: a pure function of the candidate id (not of the mining seed or run)."""
    return stable_fraction(0, HOLDOUT_SALT, candidate_id) < fraction


def row_to_bundle(row: dict[str, Any], pool: str) -> Bundle:
    """An accepted row as a bundle: killers become tier-3 negatives, near misses tier 2."""
    negatives = [Negative(text=k["text"], tier=3) for k in row["killers"]]
    negatives += [Negative(text=n["text"], tier=2) for n in row["near_misses"]]
    return Bundle(
        bundle_id=row["candidate_id"],
        anchor=row["anchor"],
        positive=row["positive"],
        negatives=negatives,
        pool=pool,
        pass_count=int(row["pass_count"]),
    )


def bundle_line(row: dict[str, Any], pool: str) -> str:
    """``row_to_bundle(row, pool).model_dump_json(exclude_none=True)``, the same bytes, without building
    the models: a mined row's texts were validated when its inputs were read. ``killers`` and
    ``near_misses`` may hold the texts alone (``str``) or their result structs."""
    negatives = [{"text": _text(k), "tier": 3} for k in row["killers"]]
    negatives += [{"text": _text(n), "tier": 2} for n in row["near_misses"]]
    if not negatives:  # not a valid bundle: the model says why
        return row_to_bundle(row, pool).model_dump_json(exclude_none=True)
    out: dict[str, Any] = {
        "bundle_id": row["candidate_id"],
        "anchor": row["anchor"],
        "positive": row["positive"],
        "negatives": negatives,
        "pool": pool,
        "pass_count": int(row["pass_count"]),
    }
    return json.dumps(out, ensure_ascii=False, separators=(",", ":"))


def _text(negative: str | dict[str, Any]) -> str:
    return negative if isinstance(negative, str) else negative["text"]


def st_row(row: dict[str, Any], n: int) -> dict[str, str] | None:
    """A sentence-transformers n-tuple row (``anchor``, ``positive``, ``negative_1..n``), killers first;
    ``None`` when the row has fewer than ``n`` negatives to offer."""
    texts = [_text(k) for k in row["killers"]] + [_text(m) for m in row["near_misses"]]
    if len(texts) < n:
        return None
    out = {"anchor": row["anchor"], "positive": row["positive"]}
    out.update({f"negative_{i + 1}": t for i, t in enumerate(texts[:n])})
    return out


ST_LAYOUTS = ("n-tuple", "triplet", "labeled-pair")


def st_layout_rows(rows: Iterable[dict[str, Any]], layout: str, n: int) -> list[dict[str, Any]]:
    """Accepted result rows in a sentence-transformers layout (``mine_hard_negatives``' names), killers
    first, at most ``n`` negatives per row:

    - ``n-tuple``: ``anchor, positive, negative_1..n`` (rows with fewer than ``n`` negatives are left out);
    - ``triplet``: ``anchor, positive, negative``, one row per negative;
    - ``labeled-pair``: ``anchor, positive, label``: the positive with label 1, then each negative with 0.
    """
    if layout not in ST_LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(ST_LAYOUTS)}, not {layout!r}")
    out: list[dict[str, Any]] = []
    for row in rows:
        if not row.get("accepted"):
            continue
        if layout == "n-tuple":
            st = st_row(row, n)
            if st is not None:
                out.append(st)
            continue
        texts = ([k["text"] for k in row["killers"]] + [m["text"] for m in row["near_misses"]])[:n]
        if layout == "triplet":
            out.extend({"anchor": row["anchor"], "positive": row["positive"], "negative": t} for t in texts)
        else:
            out.append({"anchor": row["anchor"], "positive": row["positive"], "label": 1})
            out.extend({"anchor": row["anchor"], "positive": t, "label": 0} for t in texts)
    return out


@dataclass
class MiningTally:
    """Counts gathered while the results are assembled."""

    rows: int = 0
    status: Counter[str] = field(default_factory=Counter)
    pass_counts: Counter[int] = field(default_factory=Counter)
    dropped_false_negatives: int = 0
    dropped_duplicates: int = 0
    killers: int = 0
    bundles: Counter[str] = field(default_factory=Counter)
    st_rows: int = 0
    st_skipped: int = 0

    def summary(self, lineups: int) -> dict[str, Any]:
        sufficient = self.status["accepted"] + self.status["rejected"]
        return {
            "candidates": self.rows,
            "accepted": self.status["accepted"],
            "rejected": self.status["rejected"],
            "insufficient": self.status["insufficient"],
            "dropped_false_negatives": self.dropped_false_negatives,
            "dropped_duplicates": self.dropped_duplicates,
            "killers": self.killers,
            # Pass rate: accepted / all candidates; among candidates with enough negatives as well.
            "pass_rate": self.status["accepted"] / self.rows if self.rows else 0.0,
            "pass_rate_sufficient": self.status["accepted"] / sufficient if sufficient else 0.0,
            "pass_count_histogram": {str(k): self.pass_counts.get(k, 0) for k in range(lineups + 1)},
            "bundles": dict(self.bundles),
            "st_export": {"rows": self.st_rows, "skipped_too_few_negatives": self.st_skipped},
        }


def iter_parts(parts: Iterable[Path]) -> Iterator[pa.RecordBatch]:
    for p in parts:
        yield from pq.ParquetFile(p).iter_batches(batch_size=4096)


def assemble(
    parts: list[Path],
    out: Path,
    *,
    bundles: dict[str, Path] | None,
    holdout_fraction: float,
    st_export: Path | None,
    st_negatives: int,
) -> MiningTally:
    """Stream the parts into the results file and, for accepted rows, the bundle and export files.

    ``bundles`` maps ``"train"`` and ``"holdout"`` to bundle files (their pools are the file stems).
    Every file is written atomically; memory stays bounded by about two row groups (one batch read
    from a part, plus the rows waiting to fill the next row group).
    """
    tally = MiningTally()
    seen: set[str] = set()
    with ExitStack() as stack:
        tmp_out = stack.enter_context(atomic_path(out))
        writer = stack.enter_context(pq.ParquetWriter(tmp_out, RESULT_SCHEMA))
        bundle_files = {
            role: (stack.enter_context(atomic_write(path)), path.stem) for role, path in (bundles or {}).items()
        }
        st_file = stack.enter_context(atomic_write(st_export)) if st_export is not None else None
        groups = _RowGroups(writer, RESULT_ROW_GROUP)
        for batch in iter_parts(parts):
            table = pa.Table.from_batches([batch], schema=RESULT_SCHEMA)
            ids = table.column("candidate_id").to_pylist()
            keep = [i not in seen for i in ids]
            if not all(keep):  # a part re-delivered by a retried task: keep the first copy
                table = table.filter(pa.array(keep))
                ids = [i for i, k in zip(ids, keep, strict=True) if k]
            seen.update(ids)
            groups.add(table)
            _count(table, tally)
            # Only accepted rows go on, as plain values, and only the negatives' texts of them.
            accepted = table.filter(table.column("accepted"))
            rows = pa.table(
                {
                    "candidate_id": accepted.column("candidate_id"),
                    "anchor": accepted.column("anchor"),
                    "positive": accepted.column("positive"),
                    "pass_count": accepted.column("pass_count"),
                    "killers": _list_texts(accepted.column("killers")),
                    "near_misses": _list_texts(accepted.column("near_misses")),
                }
            ).to_pylist()
            for r in rows:
                role = "holdout" if in_holdout(r["candidate_id"], holdout_fraction) else "train"
                if role in bundle_files:
                    f, pool = bundle_files[role]
                    f.write(bundle_line(r, pool) + "\n")
                    tally.bundles[pool] += 1
                if st_file is not None:
                    st = st_row(r, st_negatives)
                    if st is None:
                        tally.st_skipped += 1
                    else:
                        st_file.write(json.dumps(st, ensure_ascii=False) + "\n")
                        tally.st_rows += 1
        groups.close()
    return tally


class _RowGroups:
    """Rows into a Parquet writer in row groups of exactly ``size`` rows (the last one shorter)."""

    def __init__(self, writer: pq.ParquetWriter, size: int) -> None:
        self.writer, self.size = writer, size
        self.pending = RESULT_SCHEMA.empty_table()  # fewer than ``size`` rows between calls

    def add(self, table: pa.Table) -> None:
        self.pending = pa.concat_tables([self.pending, table])  # no copy: the chunks are kept
        while self.pending.num_rows >= self.size:
            self._write(self.size)

    def close(self) -> None:
        if self.pending.num_rows:
            self._write(self.pending.num_rows)

    def _write(self, rows: int) -> None:
        # One contiguous chunk per column: the writer's pages would otherwise follow the chunk boundaries.
        self.writer.write_table(self.pending.slice(0, rows).combine_chunks(), row_group_size=rows)
        self.pending = self.pending.slice(rows)


def _count(table: pa.Table, tally: MiningTally) -> None:
    """Add a batch of result rows to the tally (Arrow kernels: no row becomes a Python object)."""
    tally.rows += table.num_rows
    for item in pc.value_counts(table.column("status")).to_pylist():
        tally.status[item["values"]] += item["counts"]
    tally.dropped_false_negatives += pc.sum(table.column("n_dropped_false_negatives")).as_py() or 0
    tally.dropped_duplicates += pc.sum(table.column("n_dropped_duplicates")).as_py() or 0
    judged = table.filter(pc.not_equal(table.column("status"), "insufficient"))
    for item in pc.value_counts(judged.column("pass_count")).to_pylist():
        tally.pass_counts[item["values"]] += item["counts"]
    killers = table.filter(table.column("accepted")).column("killers")
    tally.killers += pc.sum(pc.list_value_length(killers)).as_py() or 0


def _list_texts(column: pa.ChunkedArray) -> pa.Array:
    """A ``list<struct<text, ...>>`` column as ``list<string>`` of its texts."""
    lists = column.combine_chunks()
    lengths = pc.fill_null(pc.list_value_length(lists), 0)
    offsets = pa.concat_arrays([pa.array([0], pa.int32()), pc.cumulative_sum(lengths).cast(pa.int32())])
    texts = pc.struct_field(pc.list_flatten(lists), "text")
    return pa.ListArray.from_arrays(offsets, texts)
