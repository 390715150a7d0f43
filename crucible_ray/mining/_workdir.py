"""Where a mining run keeps finished work until it is complete, so an interrupted run resumes.

The folder ``.<out name>.work`` beside the output holds ``state.json`` (the run key: config, model,
input hashes) and ``part-NNNNNN.parquet`` files, each written atomically. A re-run with the same key
skips the candidates already in parts; any other key starts afresh. The final output is assembled
from the parts only when every candidate is done, and the folder is then removed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from crucible_ray._logging import get_logger
from crucible_ray.data import atomic_path, write_json
from crucible_ray.errors import DataError
from crucible_ray.provenance import content_key

log = get_logger(__name__)


def run_key(parts: dict[str, Any]) -> str:
    """A sha256 over everything that determines a run's results."""
    return content_key(parts)


class WorkDir:
    """Part files of one run, keyed by its run key."""

    def __init__(self, out: str | Path, key: str) -> None:
        out = Path(out)
        self.root = out.parent / f".{out.name}.work"
        self.key = key

    def check(self) -> None:
        """Refuse a work folder that is not a plain folder (a symbolic link, a file): it is removed
        and recreated freely, which must never happen to anything but its own parts.

        Raises:
            DataError: the path is a link or not a folder.
        """
        if self.root.is_symlink():
            raise DataError(
                f"{self.root}: the mining work folder is a symbolic link; remove the link (crucible-ray only "
                "writes and deletes a plain folder there)"
            )
        if self.root.exists() and not self.root.is_dir():
            raise DataError(f"{self.root}: the mining work folder is not a folder; move that file away")

    def open(self, *, resume: bool = True) -> bool:
        """Prepare the folder; returns True when earlier parts of the same run are reused."""
        self.check()
        state = self.root / "state.json"
        if self.root.exists():
            same = False
            if resume and state.is_file():
                try:
                    same = json.loads(state.read_text()).get("key") == self.key
                except (OSError, json.JSONDecodeError):
                    same = False
            if same:
                return bool(self.parts())
            log.info("discarding unfinished work of a different run in %s", self.root)
            shutil.rmtree(self.root)
        self.root.mkdir(parents=True)
        write_json(state, {"key": self.key})
        return False

    def parts(self) -> list[Path]:
        """Finished part files, in the order they were written."""
        return sorted(self.root.glob("part-*.parquet"))

    def done_ids(self) -> set[str]:
        """Candidate ids already in a part file."""
        done: set[str] = set()
        for p in self.parts():
            done.update(str(x) for x in pq.read_table(p, columns=["candidate_id"]).column(0).to_pylist())
        return done

    def write_part(self, table: pa.Table) -> Path:
        """Write a part atomically (a crash leaves either the whole part or none of it)."""
        path = self.root / f"part-{len(self.parts()):06d}.parquet"
        try:
            with atomic_path(path) as tmp:
                pq.write_table(table, tmp)
        except OSError as e:  # a full or failing disk: the parts written so far stay valid
            raise DataError(
                f"{path}: cannot write mined results: {e.strerror or e}; free space, then rerun the same "
                "command: it continues from the parts already written"
            ) from None
        return path

    def path(self, name: str) -> Path:
        return self.root / name

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
