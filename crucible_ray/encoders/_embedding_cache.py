"""The embedding cache: every text a model has embedded, on disk, so that no run embeds it again.

Keyed by the model's fingerprint (its spec, trained tensors and frozen weights: any change to the
model is a new key) and by a hash of each text as the model saw it (prompt included: an anchor and
the same text as a document are two entries). ``mine``, ``expand``, ``eval`` and ``mine_local`` go
through it, so mining the same pool again with other miner settings, or expanding after mining with
the same model, embeds nothing twice (docs/mining.md, "The embedding cache").

Layout: ``<root>/<model key>/<content hash>.npy``, each file one *shard*: a structured array of
``key`` (16 bytes) and ``emb`` (float32, d) rows, written atomically and never changed. Readers map
the shards; a writer adds a shard; so any number of processes (actors on a node, runs side by side)
share a folder without locks. A model folder of many shards is merged into one, and the oldest shards
(least recently read) are deleted when the whole cache outgrows its size limit.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from crucible_ray._logging import get_logger
from crucible_ray.data import atomic_path
from crucible_ray.encoders._base import Encoder, Role
from crucible_ray.errors import ConfigError

log = get_logger(__name__)

ENV_DIR = "CRUCIBLE_RAY_EMBEDDING_CACHE"
ENV_SIZE = "CRUCIBLE_RAY_EMBEDDING_CACHE_SIZE"
DEFAULT_MAX_BYTES = 8 * 1024**3
#: A model folder with more shards than this is merged into one shard.
MERGE_AT = 16
_UNITS = {"": 1, "B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


@dataclass(frozen=True)
class EmbeddingCacheConfig:
    """Where the cache lives (``root``; ``None``: no cache) and how large it may grow (bytes)."""

    root: str | None
    max_bytes: int = DEFAULT_MAX_BYTES

    @property
    def enabled(self) -> bool:
        return self.root is not None

    def describe(self) -> dict[str, object]:
        """What a manifest records."""
        return {"root": self.root, "max_bytes": self.max_bytes}


def parse_size(text: str | int) -> int:
    """``"8GB"``, ``"500MB"``, ``"1024"`` (bytes) or an int, as bytes (units are powers of 1024)."""
    if isinstance(text, int):
        value, unit = float(text), ""
    else:
        m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]?B?)\s*", text.upper())
        if m is None:
            raise ConfigError(f"embedding cache size {text!r}: expected bytes or a size such as 500MB or 8GB")
        value, unit = float(m.group(1)), m.group(2)
    size = int(value * _UNITS[unit if unit.endswith("B") or not unit else unit + "B"])
    if size < 0:
        raise ConfigError(f"embedding cache size must be at least 0, got {text!r}")
    return size


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/crucible-ray/embeddings`` (``~/.cache/...`` when unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "crucible-ray" / "embeddings"


def cache_config(path: str | Path | None = None, size: str | int | None = None) -> EmbeddingCacheConfig:
    """The cache a run uses: ``path`` (``"off"``: none), else ``$CRUCIBLE_RAY_EMBEDDING_CACHE``, else
    :func:`default_cache_dir`; ``size`` else ``$CRUCIBLE_RAY_EMBEDDING_CACHE_SIZE``, else 8 GiB."""
    where = str(path) if path is not None else os.environ.get(ENV_DIR) or str(default_cache_dir())
    limit = size if size is not None else os.environ.get(ENV_SIZE)
    max_bytes = parse_size(limit) if limit is not None else DEFAULT_MAX_BYTES
    if where.strip().lower() in ("off", "none", "") or max_bytes == 0:
        return EmbeddingCacheConfig(None, max_bytes)
    return EmbeddingCacheConfig(str(Path(where).expanduser().resolve()), max_bytes)


def text_keys(texts: Sequence[str]) -> np.ndarray:
    """16-byte key of each text, as ``(n, 16)`` uint8."""
    raw = b"".join(hashlib.blake2b(t.encode("utf-8"), digest_size=16).digest() for t in texts)
    return np.frombuffer(raw, dtype=np.uint8).reshape(len(texts), 16)


def model_key(encoder: Encoder) -> str:
    """The cache folder of a model: its fingerprint and whatever else shapes its output."""
    ident = {
        "fingerprint": encoder.fingerprint(),
        "dim": encoder.dim,
        "max_seq_length": getattr(encoder.module, "max_seq_length", None),
    }
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:32]


def _dtype(dim: int) -> np.dtype:
    return np.dtype([("key", np.uint8, (16,)), ("emb", np.float32, (dim,))])


class EmbeddingCache:
    """One model's embeddings in the cache: look texts up, add new ones.

    The shards present when it is first used are indexed (mapped, not read); texts added by this
    object join the index; shards that other processes add later are seen by the next object.
    """

    def __init__(self, config: EmbeddingCacheConfig, key: str, dim: int) -> None:
        if config.root is None:
            raise ValueError("the embedding cache is off")
        self.config = config
        self.folder = Path(config.root) / key
        self.dim = dim
        self._index: dict[bytes, tuple[int, int]] | None = None
        self._shards: list[np.ndarray] = []
        self._paths: list[Path] = []
        self._touched: set[int] = set()

    def _load(self) -> dict[bytes, tuple[int, int]]:
        if self._index is None:
            self._index = {}
            for path in sorted(self.folder.glob("*.npy")):
                self._add_shard(path)
        return self._index

    def _add_shard(self, path: Path) -> None:
        try:
            shard = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError):  # merged or evicted meanwhile, or not ours
            return
        if shard.dtype != _dtype(self.dim):
            return
        assert self._index is not None
        s = len(self._shards)
        self._shards.append(shard)
        self._paths.append(path)
        keys = np.ascontiguousarray(shard["key"])
        for row, k in enumerate(keys):
            self._index.setdefault(k.tobytes(), (s, row))

    def __len__(self) -> int:
        return len(self._load())

    def contains(self, texts: Sequence[str]) -> np.ndarray:
        """Which texts are cached (bool ``(n,)``), without reading their vectors."""
        index = self._load()
        return np.fromiter((k.tobytes() in index for k in text_keys(texts)), dtype=bool, count=len(texts))

    def get(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(found, embeddings)``: which texts are cached (bool ``(n,)``) and a ``(n, d)`` float32
        array holding their vectors (rows of the others are zero)."""
        index = self._load()
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        found = np.zeros(len(texts), dtype=bool)
        if not index or not texts:
            return found, out
        where = [index.get(k.tobytes()) for k in text_keys(texts)]
        by_shard: dict[int, tuple[list[int], list[int]]] = {}
        for i, w in enumerate(where):
            if w is not None:
                rows, idx = by_shard.setdefault(w[0], ([], []))
                rows.append(w[1])
                idx.append(i)
        for s, (rows, idx) in by_shard.items():
            out[idx] = self._shards[s]["emb"][np.asarray(rows)]
            found[idx] = True
            if s not in self._touched:  # least recently read goes first when the cache is full
                self._touched.add(s)
                try:
                    os.utime(self._paths[s])
                except OSError:
                    pass
        return found, out

    def put(self, texts: Sequence[str], embeddings: np.ndarray) -> None:
        """Add ``texts``' embeddings as one shard (atomically); merge and evict as needed.

        A cache that cannot be written (read-only, full disk) is reported once and left alone.
        """
        if not len(texts):
            return
        index = self._load()
        keys = text_keys(texts)
        new = [i for i, k in enumerate(keys) if k.tobytes() not in index]
        if not new:
            return
        shard = np.empty(len(new), dtype=_dtype(self.dim))
        shard["key"] = keys[new]
        shard["emb"] = np.asarray(embeddings, dtype=np.float32)[new]
        try:
            path = self._write(shard)
        except OSError as e:
            log.warning("the embedding cache in %s cannot be written (%s); going on without it", self.folder, e)
            self.config = EmbeddingCacheConfig(None, 0)
            return
        self._add_shard(path)
        try:
            if len(self._paths) > MERGE_AT:
                self._merge()
            evict(self.config, keep={path})
        except OSError as e:  # another process merged or evicted the same files: nothing lost
            log.debug("embedding cache upkeep in %s: %s", self.folder, e)

    def _write(self, shard: np.ndarray) -> Path:
        if self.config.root is None:
            raise OSError("the embedding cache is off")
        self.folder.mkdir(parents=True, exist_ok=True)
        name = hashlib.blake2b(np.ascontiguousarray(shard["key"]).tobytes(), digest_size=12).hexdigest()
        path = self.folder / f"{name}.npy"
        if not path.exists():
            with atomic_path(path) as tmp, open(tmp, "wb") as fh:  # a handle: np.save would add ".npy" to a name
                np.save(fh, shard, allow_pickle=False)
        return path

    def _merge(self) -> None:
        """Rewrite this model's shards as one (each key once), then delete the merged ones."""
        parts = [(p, s) for p, s in zip(self._paths, self._shards, strict=True)]
        keys = np.concatenate([np.ascontiguousarray(s["key"]) for _, s in parts])
        emb = np.concatenate([np.asarray(s["emb"]) for _, s in parts])
        _, first = np.unique(keys.view(np.dtype((np.void, 16))).ravel(), return_index=True)
        first.sort()
        merged = np.empty(len(first), dtype=_dtype(self.dim))
        merged["key"] = keys[first]
        merged["emb"] = emb[first]
        path = self._write(merged)
        for p, _ in parts:
            if p != path:
                p.unlink(missing_ok=True)
        self._index, self._shards, self._paths, self._touched = None, [], [], set()
        self._load()


def evict(config: EmbeddingCacheConfig, *, keep: Collection[Path] = ()) -> int:
    """Delete the least recently read shards until the cache fits ``config.max_bytes``; bytes freed."""
    if config.root is None:
        return 0
    files = []
    for path in Path(config.root).glob("*/*.npy"):
        try:
            st = path.stat()
        except FileNotFoundError:
            continue
        files.append((st.st_mtime, st.st_size, path))
    total = sum(size for _, size, _ in files)
    freed = 0
    for _, size, path in sorted(files):
        if total - freed <= config.max_bytes:
            break
        if path in keep:
            continue
        path.unlink(missing_ok=True)
        freed += size
    return freed


class CachingEncoder(Encoder):
    """An encoder whose :meth:`encode` takes what it can from an :class:`EmbeddingCache` and adds the
    rest; :meth:`embed` (training, with gradients) is the base encoder's, untouched."""

    def __init__(self, base: Encoder, cache: EmbeddingCache) -> None:
        super().__init__(base.spec, base.module)
        self.base = base
        self.cache = cache

    def embed(self, texts: Sequence[str], *, role: Role | None = "document") -> torch.Tensor:
        return self.base.embed(texts, role=role)

    def fingerprint(self) -> str:
        return self.base.fingerprint()

    def encode(self, texts: Sequence[str], *, batch_size: int = 256, role: Role | None = "document") -> np.ndarray:
        texts = self.prompted(texts, role)
        if not self.cache.config.enabled:
            return self.base.encode(texts, batch_size=batch_size, role=None)
        found, out = self.cache.get(texts)
        missing = np.flatnonzero(~found)
        if len(missing):
            todo = list(dict.fromkeys(texts[i] for i in missing))  # each distinct text once
            new = self.base.encode(todo, batch_size=batch_size, role=None)
            rows = {t: r for r, t in enumerate(todo)}
            out[missing] = new[[rows[texts[i]] for i in missing]]
            self.cache.put(todo, new)
        return out


def with_embedding_cache(encoder: Encoder, config: EmbeddingCacheConfig | None) -> Encoder:
    """``encoder`` going through the embedding cache ``config`` describes (unchanged when it is off)."""
    if config is None or not config.enabled or isinstance(encoder, CachingEncoder):
        return encoder
    return CachingEncoder(encoder, EmbeddingCache(config, model_key(encoder), encoder.dim))
