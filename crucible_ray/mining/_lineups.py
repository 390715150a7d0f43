"""Counter-based lineup draws: lineup ``k`` of a candidate depends only on ``(seed, candidate_id, k)``.

Each candidate gets a 64-bit key from ``blake2b(seed, candidate_id)``. Lineup ``k`` is drawn with
Floyd's algorithm: for step ``i = 0 .. m-1`` let ``j = N - m + i`` and ``t`` uniform in ``[0, j]``;
the lineup takes ``t``, or ``j`` when ``t`` is already in it. That is a uniform draw of ``m`` distinct
negatives out of ``N``, without replacement, from only ``m`` random numbers per lineup. Step ``i`` of
lineup ``k`` uses SplitMix64 output number ``k * 2**32 + i`` of the candidate's key: its top 32 bits
``z`` give ``t = (z * (j + 1)) >> 32`` (each value's probability is exact to within ``(j + 1) / 2**32``).
Nothing depends on the batch, the block, the actor or the device that does the work.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np

#: Names the draw scheme in run keys and manifests; change it whenever the draws change.
DRAW_SCHEME = "floyd-splitmix64/1"

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_MAX_NEGATIVES = 2**31 - 1  # keeps z * (j + 1) inside int64


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


def lineup_randoms(seed: int, candidate_ids: Sequence[str], lineups: int, lineup_size: int) -> np.ndarray:
    """The random numbers of every row's draws, int64 (m, B, K): ``[i, b, k]`` is the top 32 bits of
    SplitMix64 output number ``k * 2**32 + i`` of row ``b``'s key.

    They do not depend on how many negatives a row has, so a caller may compute them ahead of
    retrieval (:func:`~crucible_ray.mining.mine_batch` does) and pass them to :func:`draw_lineups`.
    """
    keys = _keys(seed, candidate_ids)  # (B,)
    # counters[i, k] = k * 2**32 + i: the SplitMix64 output that step i of lineup k uses.
    counters = (np.arange(lineups, dtype=np.uint64) << np.uint64(32)) + np.arange(lineup_size, dtype=np.uint64)[:, None]
    with np.errstate(over="ignore"):
        # SplitMix64: output n of the stream seeded by key is mix(key + (n + 1) * golden).
        state = keys[None, :, None] + (counters[:, None, :] + np.uint64(1)) * _GOLDEN  # (m, B, K)
    return (_splitmix(state) >> np.uint64(32)).astype(np.int64)


def draw_lineups(
    seed: int,
    candidate_ids: Sequence[str],
    n_negatives: np.ndarray,
    lineups: int,
    lineup_size: int,
    *,
    randoms: np.ndarray | None = None,
) -> np.ndarray:
    """Lineups as indices into each candidate's negatives.

    Args:
        seed: the mining seed.
        candidate_ids: one stable id per row.
        n_negatives: (B,) how many negatives each row has; a row with fewer than ``lineup_size`` is
            insufficient and gets ``-1`` everywhere.
        lineups: K.
        lineup_size: m.
        randoms: :func:`lineup_randoms` of the same arguments, when the caller has them already.

    Returns:
        int64 (B, K, m); each ``[b, k]`` holds ``m`` distinct indices in ``[0, n_negatives[b])``, in the
        order Floyd's algorithm picked them.
    """
    n_negatives = np.asarray(n_negatives, dtype=np.int64)
    b, m = len(candidate_ids), lineup_size
    ok = n_negatives >= m
    if b == 0 or m == 0 or not ok.any():
        return np.full((b, lineups, m), -1, dtype=np.int64)
    if int(n_negatives.max()) > _MAX_NEGATIVES:
        raise ValueError(f"at most {_MAX_NEGATIVES} negatives per candidate, got {int(n_negatives.max())}")
    z = lineup_randoms(seed, candidate_ids, lineups, m) if randoms is None else randoms
    if z.shape != (m, b, lineups):
        raise ValueError(f"randoms have shape {z.shape}, expected {(m, b, lineups)}")
    picked = np.empty((m, b, lineups), dtype=np.int64)
    first = (np.where(ok, n_negatives, m) - m)[:, None]  # (B, 1): j at step 0
    for i in range(m):
        j = first + i
        t = (z[i] * (j + 1)) >> 32  # uniform in [0, j]
        if i:
            taken = picked[0] == t
            for r in range(1, i):
                taken |= picked[r] == t
            t = np.where(taken, j, t)
        picked[i] = t
    out = np.ascontiguousarray(picked.transpose(1, 2, 0))
    out[~ok] = -1
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
    lineup: list[int] = []
    for i in range(lineup_size):
        z = mix((key + (((k << 32) + i + 1) * golden)) & mask) >> 32
        j = n_negatives - lineup_size + i
        t = (z * (j + 1)) >> 32
        lineup.append(j if t in lineup else t)
    return lineup
