"""Provenance: content keys, library versions and the manifest every output folder carries.

Every command that writes an output folder (a world, a mining run, a training run, a sweep) records
what made it in ``manifest.json``: its kind, its configuration, seeds, the sha256 of its inputs, the
versions of the libraries that decide its numbers, and when it was written. Resumable work is keyed by
:func:`content_key` over exactly what decides its results. See docs/formats.md for each manifest.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from crucible_ray.data import remove_stale_temporaries, write_json

MANIFEST = "manifest.json"


def versions() -> dict[str, str]:
    """Versions of Python and the libraries whose behaviour affects results (recording them imports no Ray)."""
    import numpy
    import pyarrow
    import torch

    from crucible_ray import __version__

    out = {
        "crucible_ray": __version__,
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "torch": torch.__version__,
        "pyarrow": pyarrow.__version__,
    }
    try:  # from the installed distribution: recording the version must not import Ray
        out["ray"] = importlib.metadata.version("ray")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - ray is a core dependency
        pass
    return out


def content_key(doc: Any, length: int | None = None) -> str:
    """A sha256 (hex) over the canonical JSON of ``doc`` (sorted keys; other types by ``str``).

    Equal documents give equal keys whatever their key order, so a key names the work that ``doc``
    decides. ``length`` keeps only that many leading hex digits.

    Example:
        >>> content_key({"b": 1, "a": [2, 3]}, 12) == content_key({"a": [2, 3], "b": 1}, 12)
        True
    """
    digest = hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()
    return digest if length is None else digest[:length]


def now_utc() -> str:
    """The current time in UTC, to the second, in ISO 8601 (``2026-12-02T10:00:00+00:00``)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def build_manifest(kind: str, **fields: Any) -> dict[str, Any]:
    """A manifest document: ``kind``, the caller's ``fields``, ``versions`` and ``created_at``.

    Example:
        >>> m = build_manifest("train", seed=3, config={"ratio": "75_15_10"})
        >>> m["kind"], m["seed"], sorted(m["versions"])[:2]
        ('train', 3, ['crucible_ray', 'numpy'])
    """
    return {"kind": kind, **fields, "versions": versions(), "created_at": now_utc()}


def write_manifest(folder: str | Path, manifest: dict[str, Any], *, name: str = MANIFEST) -> Path:
    """Write ``folder/manifest.json`` (or ``folder/<name>``) atomically, first removing a temporary a
    killed writer left behind."""
    path = Path(folder) / name
    remove_stale_temporaries(path)
    write_json(path, manifest)
    return path
