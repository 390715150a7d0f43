"""Reading the miner's inputs once, up front: every row validated, shards ready for Ray Data.

Bad input fails here, before any Ray work starts, with the file, row and field in one line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from crucible_ray.data import ARROW_SCHEMA, Candidate, iter_rows
from crucible_ray.errors import ConfigError
from crucible_ray.mining._config import MinerConfig

CANDIDATE_SCHEMA = ARROW_SCHEMA[Candidate]


@dataclass(frozen=True)
class CandidateScan:
    """What the validation pass found."""

    path: str
    rows: int  # every row in the file
    skipped: int  # rows already mined by an interrupted run
    with_negatives: int
    without_negatives: int
    max_negatives: int


def scan_candidates(
    path: str | Path,
    *,
    on_shard: Callable[[pa.Table], None],
    skip_ids: set[str] | None = None,
    shard_rows: int = 4096,
) -> CandidateScan:
    """Validate every candidate row and hand them on as Arrow shards of ``shard_rows`` rows, in file order.

    Raises:
        DataError: a missing or empty file, a bad row (``path:line: field '...'``), a duplicate id.
    """
    skip_ids = skip_ids or set()
    buf: list[dict[str, object]] = []
    rows = skipped = with_neg = without_neg = max_neg = 0

    def flush() -> None:
        if buf:
            on_shard(pa.Table.from_pylist(buf, schema=CANDIDATE_SCHEMA))
            buf.clear()

    for cand in iter_rows(path, Candidate):
        rows += 1
        if cand.negatives is None:
            without_neg += 1
        else:
            with_neg += 1
            max_neg = max(max_neg, len(cand.negatives))
        if cand.candidate_id in skip_ids:
            skipped += 1
            continue
        buf.append(cand.model_dump())
        if len(buf) >= shard_rows:
            flush()
    flush()
    return CandidateScan(str(path), rows, skipped, with_neg, without_neg, max_neg)


def skip_done(shards: list[pa.Table], done: set[str]) -> tuple[list[pa.Table], int]:
    """The shards without the candidates an interrupted run already mined, and how many were dropped."""
    import pyarrow.compute as pc

    keep: list[pa.Table] = []
    skipped = 0
    ids = pa.array(sorted(done), type=pa.string())
    for table in shards:
        mask = pc.invert(pc.is_in(table.column("candidate_id"), value_set=ids))
        kept = table.filter(mask)
        skipped += table.num_rows - kept.num_rows
        if kept.num_rows:
            keep.append(kept)
    return keep, skipped


def check_feasible(scan: CandidateScan, config: MinerConfig, *, has_corpus: bool) -> None:
    """Refuse inputs under which the run could not validate anything, before it starts."""
    if scan.without_negatives:
        if not has_corpus:
            raise ConfigError(
                f"{scan.path}: {scan.without_negatives} candidate(s) have no 'negatives' and no corpus was given; "
                "pass --corpus F to retrieve their negatives"
            )
        config.check_corpus_mining()
    elif scan.max_negatives < config.lineup_size:
        raise ConfigError(
            f"{scan.path}: lineup_size must be <= a candidate's number of negatives, but got lineup_size="
            f"{config.lineup_size} and every candidate has at most {scan.max_negatives}; "
            "all would be 'insufficient'. Lower --lineup-size"
        )
