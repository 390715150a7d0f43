"""Counter-based lineup draws: lineup ``k`` of a candidate depends only on ``(seed, candidate_id, k)``.

Each candidate gets a 64-bit key from ``blake2b(seed, candidate_id)``. The draw for lineup ``k`` gives
negative ``j`` the SplitMix64 output number ``k * 2**32 + j`` of that key, and the lineup is the ``m``
negatives with the smallest outputs: a uniform draw of ``m`` distinct negatives out of ``N``, without
replacement. Nothing depends on the batch, the block, the actor or the device that does the work.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_NONE = np.iinfo(np.uint64).max


def _key_prefix(seed: int) -> Any:
    h = hashlib.blake2b(digest_size=8)
    h.update(f"crucible-ray/lineups/{int(seed)}\x1f".encode())
    return h


def candidate_key(seed: int, candidate_id: str) -> int:
    """The 64-bit key of a candidate's lineups."""
    h = _key_prefix(seed)
    h.update(candidate_id.encode("utf-8"))
    return int.from_bytes(h.digest(), "little")


def _keys(seed: int, candidate_ids: Sequence[str]) -> np.ndarray:
    """:func:`candidate_key` of every id, as uint64 (the seed's prefix hashed once)."""
    prefix = _key_prefix(seed)
    digests = bytearray()
    for c in candidate_ids:
        h = prefix.copy()
        h.update(c.encode("utf-8"))
        digests += h.digest()
    return np.frombuffer(bytes(digests), dtype="<u8").astype(np.uint64)


def _splitmix(state: np.ndarray) -> np.ndarray:
    z = state.copy()
    z ^= z >> np.uint64(30)
    z *= _M1
    z ^= z >> np.uint64(27)
    z *= _M2
    z ^= z >> np.uint64(31)
    return z


def draw_lineups(
    seed: int, candidate_ids: Sequence[str], n_negatives: np.ndarray, lineups: int, lineup_size: int
) -> np.ndarray:
    """Lineups as indices into each candidate's negatives.

    Args:
        seed: the mining seed.
        candidate_ids: one stable id per row.
        n_negatives: (B,) how many negatives each row has; a row with fewer than ``lineup_size`` is
            insufficient and gets ``-1`` everywhere.
        lineups: K.
        lineup_size: m.

    Returns:
        int64 (B, K, m); each ``[b, k]`` holds ``m`` distinct indices in ``[0, n_negatives[b])``.
    """
    n_negatives = np.asarray(n_negatives, dtype=np.int64)
    b = len(candidate_ids)
    n_max = int(n_negatives.max(initial=0))
    out = np.full((b, lineups, lineup_size), -1, dtype=np.int64)
    ok = n_negatives >= lineup_size
    if b == 0 or not ok.any() or n_max == 0:
        return out
    keys = _keys(seed, candidate_ids)  # (B,)
    counters = (np.arange(lineups, dtype=np.uint64)[:, None] << np.uint64(32)) + np.arange(n_max, dtype=np.uint64)
    with np.errstate(over="ignore"):
        # SplitMix64: output n of the stream seeded by key is mix(key + (n + 1) * golden).
        state = keys[:, None, None] + (counters[None] + np.uint64(1)) * _GOLDEN  # (B, K, N)
        u = _splitmix(state)
    # The outputs of one lineup never tie: distinct counters times an odd constant give distinct
    # states, and the mix is invertible. Only the padding of short rows (_NONE) can equal an output.
    stable = False
    if n_negatives.min() < n_max:
        beyond = np.arange(n_max)[None, :] >= n_negatives[:, None]  # (B, N): not a negative of this row
        stable = bool(np.any((u == _NONE) & ~beyond[:, None, :]))  # 2**-64 per output: ties go by index
        u = np.where(beyond[:, None, :], _NONE, u)
    order = np.argsort(u, axis=-1, kind="stable" if stable else None)  # (B, K, N)
    out[ok] = order[ok, :, :lineup_size]
    return out


def draw_lineup_scalar(seed: int, candidate_id: str, k: int, n_negatives: int, lineup_size: int) -> list[int]:
    """The same draw for one lineup in plain Python integers (a readable reference for tests and docs)."""
    mask = (1 << 64) - 1
    key = candidate_key(seed, candidate_id)

    def mix(z: int) -> int:
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        return z ^ (z >> 31)

    golden = 0x9E3779B97F4A7C15
    u = [mix((key + (((k << 32) + j + 1) * golden)) & mask) for j in range(n_negatives)]
    return sorted(range(n_negatives), key=lambda j: (u[j], j))[:lineup_size]
