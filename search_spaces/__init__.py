"""Sweep search spaces shipped with crucible-ray (YAML files in this package)."""

from __future__ import annotations

from pathlib import Path

SEARCH_SPACE_DIR = Path(__file__).resolve().parent


def available() -> dict[str, Path]:
    """The shipped search spaces by name (file stem)."""
    return {p.stem: p for p in sorted(SEARCH_SPACE_DIR.glob("*.yaml"))}
