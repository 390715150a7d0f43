"""The curriculum sampler: exact per-batch pool quotas, reshuffled pool epochs, tier-3-first negatives.

A batch is a pure function of ``(seed, step, rank, world_size)``: nothing depends on what was drawn
before, so a run resumed at step ``t`` sees exactly the batches an uninterrupted run would.

Each pool is an endless stream of epochs; epoch ``e`` is a permutation keyed by ``(seed, pool, e)``.
At step ``t`` worker ``r`` of ``W`` takes the pool's stream positions ``(t*W + r)*q .. +q`` (``q`` its
quota), so the workers of one step draw disjoint bundles and, together, see every bundle of a pool
once per pool epoch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from crucible_ray._rng import rng_for, stable_fraction
from crucible_ray.config import Ratio
from crucible_ray.data import Bundle
from crucible_ray.errors import ConfigError


@dataclass(frozen=True)
class TrainBatch:
    """One worker's batch: per slot the pool, bundle id, texts and up to ``n`` negatives (tier 3 first)."""

    step: int
    pools: list[str]
    bundle_ids: list[str]
    anchors: list[str]
    positives: list[str]
    negatives: list[list[str]]
    negative_tiers: list[list[int]]

    def __len__(self) -> int:
        return len(self.bundle_ids)


class CurriculumSampler:
    """Draw training batches from named pools by an explicit ratio.

    Args:
        pools: bundles per pool name (a pool with weight 0 may be absent or empty).
        ratio: the mix, e.g. ``Ratio.parse("75_15_10")``.
        batch_size: bundles per worker batch.
        seed: the run seed.
        negatives_per_bundle: at most this many negatives per bundle, tier 3 first.
        rank, world_size: this worker and the number of workers.
        quality_weighting: draw bundles that carry a ``pass_count`` (organic) in proportion to it,
            with replacement within each pool epoch, instead of a plain permutation.

    Raises:
        ConfigError: a pool with weight > 0 has no bundles.

    Example:
        >>> s = CurriculumSampler(pools, Ratio.parse("75_15_10"), 64, seed=42)  # doctest: +SKIP
        >>> s.batch(0).pools.count("legacy")  # doctest: +SKIP
        48
    """

    def __init__(
        self,
        pools: Mapping[str, Sequence[Bundle]],
        ratio: Ratio,
        batch_size: int,
        *,
        seed: int,
        negatives_per_bundle: int = 4,
        rank: int = 0,
        world_size: int = 1,
        quality_weighting: bool = False,
    ) -> None:
        if not 0 <= rank < world_size:
            raise ConfigError(f"worker rank {rank} is outside 0..{world_size - 1}")
        self.quotas = ratio.quotas(batch_size)
        for name in self.quotas:
            if ratio.weights[name] > 0 and not pools.get(name):
                raise ConfigError(
                    f"pool {name!r} has weight {ratio.weights[name]} in ratio {ratio} but no bundles; "
                    f"add that pool to the data (e.g. `crucible-ray mine` / `expand`) or give it weight 0"
                )
        self.pools = {name: list(pools[name]) for name, q in self.quotas.items() if q > 0}
        self.seed = seed
        self.negatives_per_bundle = negatives_per_bundle
        self.rank = rank
        self.world_size = world_size
        self._weights: dict[str, np.ndarray | None] = {
            name: _quality_weights(bundles) if quality_weighting else None for name, bundles in self.pools.items()
        }
        self._epoch = lru_cache(maxsize=8)(self._epoch_order)

    def _epoch_order(self, pool: str, epoch: int) -> np.ndarray:
        n = len(self.pools[pool])
        rng = rng_for(self.seed, "curriculum-epoch", pool, epoch)
        w = self._weights[pool]
        if w is None:
            return rng.permutation(n)
        return rng.choice(n, size=n, replace=True, p=w)

    def _draws(self, pool: str, step: int) -> list[tuple[int, int]]:
        """``(index into pools[pool], pool epoch)`` of each slot this worker fills at ``step``."""
        q = self.quotas[pool]
        n = len(self.pools[pool])
        start = (step * self.world_size + self.rank) * q
        out = []
        for pos in range(start, start + q):
            epoch, offset = divmod(pos, n)
            out.append((int(self._epoch(pool, epoch)[offset]), epoch))
        return out

    def indices(self, pool: str, step: int) -> list[int]:
        """Indices into ``pools[pool]`` that this worker takes at ``step``."""
        return [i for i, _ in self._draws(pool, step)]

    def batch(self, step: int) -> TrainBatch:
        """The batch for ``step`` (0-based), in pool order then stream order."""
        pools: list[str] = []
        ids: list[str] = []
        anchors: list[str] = []
        positives: list[str] = []
        negatives: list[list[str]] = []
        tiers: list[list[int]] = []
        for pool in self.pools:
            for i, epoch in self._draws(pool, step):
                bundle = self.pools[pool][i]
                negs = self.pick_negatives(bundle, epoch)
                pools.append(pool)
                ids.append(bundle.bundle_id)
                anchors.append(bundle.anchor)
                positives.append(bundle.positive)
                negatives.append([x.text for x in negs])
                tiers.append([x.tier for x in negs])
        return TrainBatch(step, pools, ids, anchors, positives, negatives, tiers)

    def pick_negatives(self, bundle: Bundle, epoch: int) -> list:
        """Up to ``negatives_per_bundle`` negatives: highest tier first, a fresh random order per epoch."""
        keyed = sorted(
            bundle.negatives,
            key=lambda x: (-x.tier, stable_fraction(self.seed, "curriculum-negative", bundle.bundle_id, epoch, x.text)),
        )
        return keyed[: self.negatives_per_bundle]


def _quality_weights(bundles: Sequence[Bundle]) -> np.ndarray | None:
    counts = [b.pass_count for b in bundles]
    if all(c is None for c in counts):
        return None  # no pass counts: a plain permutation
    top = max(c for c in counts if c is not None)
    w = np.array([top if c is None else c for c in counts], dtype=np.float64)
    if w.sum() <= 0:
        return None
    return w / w.sum()
