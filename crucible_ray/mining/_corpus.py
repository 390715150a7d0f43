"""The corpus the miner retrieves negatives from: de-duplicated texts, their ids, their embeddings.

Texts are de-duplicated by normalised text before embedding (the first id wins), so retrieval never
returns the same text twice and exact score ties between different rows do not arise from copies.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from crucible_ray.data import CorpusDoc
from crucible_ray.errors import MiningError
from crucible_ray.mining._execution import CORPUS_CHUNK
from crucible_ray.mining._text import text_code


@dataclass
class CorpusIndex:
    """Corpus rows after de-duplication, with lookups by id and by normalised text.

    ``embeddings`` is (C, d) float32 with L2-normalised rows: an array in memory or a ``np.memmap``.
    """

    ids: list[str]
    texts: list[str]
    embeddings: np.ndarray
    n_duplicates: int = 0
    _by_id: dict[str, int] = field(default_factory=dict, repr=False)
    _by_code: dict[int, int] = field(default_factory=dict, repr=False)
    text_array: pa.Array = field(init=False, repr=False)  # ``texts`` as Arrow, for vectorised gathers
    id_array: pa.Array = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.ids) != len(self.texts) or len(self.ids) != int(self.embeddings.shape[0]):
            raise MiningError(
                f"corpus index is inconsistent: {len(self.ids)} ids, {len(self.texts)} texts, "
                f"{self.embeddings.shape[0]} embeddings"
            )
        self._by_id = {d: i for i, d in enumerate(self.ids)}
        self._by_code = {text_code(t): i for i, t in enumerate(self.texts)}
        self.text_array = pa.array(self.texts, type=pa.string())
        self.id_array = pa.array(self.ids, type=pa.string())

    def __len__(self) -> int:
        return len(self.ids)

    def row_of_id(self, doc_id: str | None) -> int:
        """The row of a corpus id, ``-1`` when absent."""
        return -1 if doc_id is None else self._by_id.get(doc_id, -1)

    def row_of_text(self, text: str) -> int:
        """The row whose normalised text equals ``text``'s, ``-1`` when absent."""
        return self._by_code.get(text_code(text), -1)


def dedupe_corpus(docs: Iterable[CorpusDoc]) -> tuple[list[str], list[str], int]:
    """``(ids, texts, n_duplicates)``: one row per normalised text, the first occurrence kept."""
    ids: list[str] = []
    texts: list[str] = []
    seen: set[int] = set()
    dups = 0
    for d in docs:
        code = text_code(d.text)
        if code in seen:
            dups += 1
            continue
        seen.add(code)
        ids.append(d.id)
        texts.append(d.text)
    return ids, texts, dups


def open_embeddings(path: str | Path) -> np.ndarray:
    """A corpus embedding file (``.npy``) memory-mapped read-only."""
    return np.load(path, mmap_mode="r", allow_pickle=False)


def embed_corpus_to_file(
    texts: list[str],
    encoder: Any,
    out: str | Path,
    *,
    encode_batch_size: int = 128,
    chunk: int = CORPUS_CHUNK,
    stop: threading.Event | None = None,
    feature_cache: str | Path | None = None,
) -> Path:
    """Embed ``texts`` chunk by chunk into a ``.npy`` file (atomically), memory bounded by one chunk.

    An encoder that goes through the embedding cache (:func:`~crucible_ray.encoders.with_embedding_cache`)
    embeds only the texts the cache lacks. With a frozen-backbone encoder (``minilm:mode=frozen-head``)
    and a ``feature_cache`` folder (the world's), the backbone's features of those texts come from the
    cache that training fills (computed there once for texts it has not seen) and only the head runs
    here: a corpus is encoded once per backbone, not once per ``mine``/``expand``/``train``.

    Raises:
        MiningError: ``stop`` was set (checked between chunks); nothing is left under ``out``.
    """
    from crucible_ray.data import atomic_path
    from crucible_ray.encoders import CachedFeatureEncoder, CachingEncoder, Encoder, feature_table, is_frozen_backbone

    if feature_cache is not None and isinstance(encoder, Encoder) and is_frozen_backbone(encoder):
        base, cache = (encoder.base, encoder.cache) if isinstance(encoder, CachingEncoder) else (encoder, None)
        prompted = encoder.prompted(texts, "document")  # what the backbone sees, as the cache keys it
        if cache is not None:  # texts whose embeddings are cached need no backbone features
            found = cache.contains(prompted)
            prompted = [t for t, hit in zip(prompted, found, strict=True) if not hit]
        if prompted:
            featured = CachedFeatureEncoder(base, feature_table(base, prompted, feature_cache))
            encoder = CachingEncoder(featured, cache) if cache is not None else featured
    out = Path(out)
    with atomic_path(out) as tmp:
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(texts), encoder.dim))
        for i in range(0, len(texts), chunk):
            if stop is not None and stop.is_set():
                raise MiningError("corpus embedding was cancelled")
            array[i : i + chunk] = encoder.encode(texts[i : i + chunk], batch_size=encode_batch_size)
        array.flush()
        del array
    return out


def failure_note(path: str | Path) -> Path:
    """Where a failed corpus embedding leaves its one-line reason (``<path>.error``)."""
    return Path(f"{path}.error")


def await_embeddings(path: str | Path, *, poll_s: float = 0.05) -> np.ndarray:
    """Wait until another process has written the embedding file ``path``, then memory-map it.

    The writer renames a finished file into place (:func:`embed_corpus_to_file`), so the file is
    complete once it exists; a writer that fails leaves :func:`failure_note` instead.

    Raises:
        MiningError: the writer failed (its reason in the message).
    """
    path = Path(path)
    note = failure_note(path)
    while not path.exists():
        if note.exists():
            raise MiningError(f"the corpus embedding failed: {note.read_text().strip()}")
        time.sleep(poll_s)
    return open_embeddings(path)
