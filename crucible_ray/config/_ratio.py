"""Pool ratios such as ``75_15_10``: the share of training bundles drawn from each pool."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from crucible_ray.errors import ConfigError

DEFAULT_POOLS: tuple[str, ...] = ("legacy", "expansion", "organic")
# The pool whose share the dilution floor guards and the "most legacy" baseline is picked by
# (``GuardrailConfig.legacy_pool``; docs/sweeps.md, "Guardrails"). It is found by name, never by position.
LEGACY_POOL = "legacy"

_RATIO_STRING = re.compile(r"^R?(\d+(?:_\d+)*)$")


@dataclass(frozen=True)
class Ratio:
    """Integer percentages per pool, in the configured pool order, summing to 100.

    Build one with :meth:`parse` from ``"75_15_10"``, ``"R75_15_10"``, a mapping
    ``{"legacy": 75, ...}`` or a sequence ``[75, 15, 10]``, or with :meth:`from_parts` from all parts
    but the last (the last pool takes what is left of 100). A ratio is parsed once, where it enters
    (CLI option, API argument, YAML); its canonical string (:attr:`canonical`) is how it is stored.

    Example:
        >>> Ratio.parse("75_15_10").weights
        {'legacy': 75, 'expansion': 15, 'organic': 10}
        >>> str(Ratio.parse({"legacy": 50, "expansion": 0, "organic": 50}))
        '50_0_50'
    """

    pools: tuple[str, ...]
    percents: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.pools) != len(self.percents):
            raise ConfigError(
                f"a ratio needs one percentage per pool {list(self.pools)}, but got {list(self.percents)}."
            )
        if len(set(self.pools)) != len(self.pools):
            raise ConfigError(f"pool names in a ratio must be distinct, but got {list(self.pools)}.")
        if any(p < 0 for p in self.percents):
            raise ConfigError(f"ratio percentages must be >= 0, but got {list(self.percents)}.")
        total = sum(self.percents)
        if total != 100:
            raise ConfigError(
                f"ratio percentages must sum to 100, but {self.canonical} sums to {total}; write e.g. 75_15_10."
            )

    @classmethod
    def from_named(cls, text: str) -> Ratio:
        """A ratio written with pool names, ``legacy=70,support=20,organic=10``: the pools are the names,
        in the order written.

        Example:
            >>> r = Ratio.from_named("legacy=70,support=20,organic=10")
            >>> r.pools, str(r)
            (('legacy', 'support', 'organic'), '70_20_10')

        Raises:
            ConfigError: a part that is not ``name=integer``, a repeated name, or a sum other than 100.
        """
        pools: list[str] = []
        percents: list[int] = []
        for part in text.split(","):
            name, eq, number = (x.strip() for x in part.partition("="))
            if not eq or not name or not re.fullmatch(r"\d+", number):
                raise ConfigError(
                    f"a named ratio is pool=percent joined by ',' (e.g. legacy=70,support=30), but got {text!r}."
                )
            pools.append(name)
            percents.append(int(number))
        return cls(tuple(pools), tuple(percents))

    @staticmethod
    def is_named(value: object) -> bool:
        """True for a ratio string written with pool names (``legacy=70,...``)."""
        return isinstance(value, str) and "=" in value

    @classmethod
    def parse(
        cls,
        value: str | Mapping[str, int] | Sequence[int] | Ratio,
        pools: Sequence[str] = DEFAULT_POOLS,
    ) -> Ratio:
        """Parse a ratio in any accepted form against the pool order ``pools``.

        Raises:
            ConfigError: wrong number of parts, non-integer parts, unknown pools, or a sum other than 100.
        """
        pools = tuple(pools)
        if isinstance(value, Ratio):
            if value.pools != pools:
                return cls.parse(value.weights, pools)
            return value
        if cls.is_named(value):
            return cls.parse(cls.from_named(str(value)).weights, pools)
        if isinstance(value, str):
            m = _RATIO_STRING.match(value.strip())
            if not m:
                raise ConfigError(
                    f"a ratio string is integer percentages joined by '_' (e.g. 75_15_10), but got {value!r}."
                )
            parts = tuple(int(x) for x in m.group(1).split("_"))
            if len(parts) != len(pools):
                raise ConfigError(
                    f"ratio {value!r} has {len(parts)} parts but there are {len(pools)} pools "
                    f"({'_'.join(pools)}); give one percentage per pool."
                )
            return cls(pools, parts)
        if isinstance(value, Mapping):
            unknown = sorted(set(value) - set(pools))
            if unknown:
                raise ConfigError(f"ratio names unknown pools {unknown}; the pools are {list(pools)}.")
            percents: list[int] = []
            for pool in pools:
                v = value.get(pool, 0)
                if isinstance(v, bool) or not isinstance(v, int):
                    raise ConfigError(f"ratio percentage for pool {pool!r} must be an integer, but got {v!r}.")
                percents.append(v)
            return cls(pools, tuple(percents))
        if isinstance(value, Sequence):
            items = list(value)
            if any(isinstance(v, bool) or not isinstance(v, int) for v in items):
                raise ConfigError(f"ratio percentages must be integers, but got {items!r}.")
            if len(items) != len(pools):
                raise ConfigError(
                    f"ratio {items} has {len(items)} parts but there are {len(pools)} pools {list(pools)}."
                )
            return cls(pools, tuple(int(v) for v in items))  # type: ignore[call-overload]
        raise ConfigError(f"cannot read a ratio from {value!r} (type {type(value).__name__}).")

    @classmethod
    def from_parts(cls, parts: Mapping[str, int], pools: Sequence[str] = DEFAULT_POOLS) -> Ratio:
        """A ratio from the percentages of every pool but one; the remaining pool takes the rest of 100.

        The remaining pool is the last pool of ``pools`` not named in ``parts`` (an Optuna trial
        samples all pools but one; see docs/sweeps.md, "Search spaces").

        Example:
            >>> str(Ratio.from_parts({"legacy": 70, "expansion": 20}))
            '70_20_10'
            >>> str(Ratio.from_parts({"legacy": 60, "organic": 30}))
            '60_10_30'

        Raises:
            ConfigError: not exactly one pool left out, unknown pools, or parts above 100.
        """
        pools = tuple(pools)
        unknown = sorted(set(parts) - set(pools))
        if unknown:
            raise ConfigError(f"ratio parts name unknown pools {unknown}; the pools are {list(pools)}.")
        rest = [p for p in pools if p not in parts]
        if len(rest) != 1:
            raise ConfigError(f"ratio parts must leave out exactly one pool of {list(pools)}, but leave out {rest}.")
        return cls.parse({**parts, rest[0]: 100 - sum(parts.values())}, pools)

    def share(self, pool: str) -> float:
        """The fraction of each batch drawn from ``pool`` (0.0 for a pool the ratio does not have).

        Example:
            >>> Ratio.parse("75_15_10").share("legacy")
            0.75
            >>> Ratio.parse("60_40", pools=["core", "fresh"]).share("legacy")
            0.0
        """
        return self.weights.get(pool, 0) / 100

    def sort_key(self) -> tuple[int, ...]:
        """Order ratios by their shares in pool order, largest first (the heatmap rows of the report).

        Example:
            >>> rs = [Ratio.parse(r) for r in ["65_25_10", "85_10_5", "75_15_10", "85_15_0"]]
            >>> [str(r) for r in sorted(rs, key=Ratio.sort_key)]
            ['85_15_0', '85_10_5', '75_15_10', '65_25_10']
        """
        return tuple(-p for p in self.percents)

    @property
    def pool_names(self) -> str:
        """The pool names joined by ``,``, e.g. ``legacy,expansion,organic`` (a results table's ``pools`` column)."""
        return ",".join(self.pools)

    @property
    def canonical(self) -> str:
        """The canonical string form, e.g. ``75_15_10``."""
        return "_".join(str(p) for p in self.percents)

    @property
    def weights(self) -> dict[str, int]:
        """Percentages keyed by pool name, in pool order."""
        return dict(zip(self.pools, self.percents, strict=True))

    def quotas(self, batch_size: int) -> dict[str, int]:
        """Exact per-pool counts for one batch by largest-remainder rounding of ``ratio * batch_size``.

        Ties in the remainder go to the pool that comes first in pool order, so quotas are stable.

        Example:
            >>> Ratio.parse("75_15_10").quotas(16)
            {'legacy': 12, 'expansion': 2, 'organic': 2}
        """
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, but got {batch_size}.")
        exact = [p * batch_size for p in self.percents]  # in hundredths of a bundle
        base = [e // 100 for e in exact]
        remainder = [e % 100 for e in exact]
        left = batch_size - sum(base)
        order = sorted(range(len(base)), key=lambda i: (-remainder[i], i))
        for i in order[:left]:
            base[i] += 1
        return dict(zip(self.pools, base, strict=True))

    def __str__(self) -> str:
        return self.canonical
