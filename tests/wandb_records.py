"""Read an offline W&B run file (``run-<id>.wandb``): the records ``wandb sync`` would upload.

The file is W&B's record log: a 7-byte header (``:W&B``, a magic number, a version), then the LevelDB
log format (32 KiB blocks; each chunk a CRC, a little-endian length, a type: full, first, middle,
last), each record a ``wandb_internal_pb2.Record``. wandb has no public Python reader of it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_BLOCK = 32 * 1024
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def records(path: Path) -> Iterator[Any]:
    """Every record of the run file, parsed."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    pos, pending = 7, b""
    while pos + 7 <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < 7:  # a block's tail too short for a chunk header is padding
            pos += left
            continue
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
        if length == 0 and kind == 0:
            pos += left
            continue
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == _FIRST:
            pending = chunk
            continue
        if kind == _MIDDLE:
            pending += chunk
            continue
        payload = pending + chunk if kind == _LAST else chunk
        record = pb.Record()
        record.ParseFromString(payload)
        yield record


def run_summary(path: Path) -> dict[str, Any]:
    """The run's name, project, group and config, and its history rows (key -> value)."""
    out: dict[str, Any] = {"history": [], "config": {}}
    for r in records(path):
        kind = r.WhichOneof("record_type")
        if kind == "run":
            out.update(name=r.run.display_name, project=r.run.project, group=r.run.run_group)
            out["config"].update({i.key: json.loads(i.value_json) for i in r.run.config.update})
        elif kind == "config":
            out["config"].update({i.key: json.loads(i.value_json) for i in r.config.update if i.key})
        elif kind == "history":
            out["history"].append({(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in r.history.item})
    return out
