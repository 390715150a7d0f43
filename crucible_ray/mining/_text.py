"""Text identity for exclusion and de-duplication: case- and whitespace-insensitive."""

from __future__ import annotations

import hashlib


def normalize_text(text: str) -> str:
    """Casefold and collapse whitespace: ``"  A  Dog"`` and ``"a dog"`` are the same text."""
    return " ".join(text.casefold().split())


def text_code(text: str) -> int:
    """A stable signed 63-bit code of the normalised text (equal texts, equal codes)."""
    digest = hashlib.blake2b(normalize_text(text).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1
