"""The Optuna search over a space: a define-by-run ratio simplex (and float params), pure Optuna.

Tune's ``OptunaSearch`` calls :class:`OptunaSearchSpace` with each new ``optuna.trial.Trial``; the
sampled values come back as the Tune trial's config, which :func:`crucible_ray.sweeps.resolve_trial`
turns into a :class:`~crucible_ray.sweeps.Trial`. Testable with ``optuna.trial.FixedTrial`` or an
in-memory study (docs/sweeps.md, "Search spaces").
"""

from __future__ import annotations

from typing import Any

from crucible_ray.config import Ratio
from crucible_ray.sweeps._space import SweepSpace


def sampled_pools(space: SweepSpace) -> tuple[str, ...]:
    """The pools whose percentages Optuna samples: the legacy pool first, then the others in pool order
    but the last, which takes what is left of 100.

    Example:
        >>> sampled_pools(SweepSpace(steps=[10], optuna={"trials": 1}))
        ('legacy', 'expansion')
    """
    assert space.optuna is not None
    legacy = space.optuna.legacy_pool
    others = [p for p in space.pools if p != legacy]
    return (legacy, *others[:-1])


def optuna_ratio(values: dict[str, Any], space: SweepSpace) -> Ratio:
    """The ratio of an Optuna trial's sampled values (one integer per :func:`sampled_pools` pool).

    Example:
        >>> space = SweepSpace(steps=[10], optuna={"trials": 1})
        >>> str(optuna_ratio({"legacy": 70, "expansion": 20, "lr": 0.01}, space))
        '70_20_10'
    """
    return Ratio.from_parts({p: int(values[p]) for p in sampled_pools(space)}, space.pools)


class OptunaSearchSpace:
    """Optuna's define-by-run space: integer pool percentages summing to 100, then the float params.

    The legacy pool (``optuna.legacy_pool``) is drawn within the ``optuna.legacy`` bounds, each other
    sampled pool within what is left; the last pool takes the rest. A class rather than a closure: Tune
    pickles the searcher (with this space) in its experiment state.

    Example:
        >>> import optuna
        >>> space = SweepSpace(steps=[10], optuna={"trials": 1, "legacy": [60, 90]})
        >>> fixed = optuna.trial.FixedTrial({"legacy": 80, "expansion": 15})
        >>> OptunaSearchSpace(space)(fixed)
        >>> str(optuna_ratio(fixed.params, space))
        '80_15_5'
    """

    def __init__(self, space: SweepSpace) -> None:
        assert space.optuna is not None
        self.pools = sampled_pools(space)
        self.legacy = tuple(space.optuna.legacy)
        self.params = {k: (r.low, r.high, r.log) for k, r in space.optuna.params.items()}

    def __call__(self, trial: Any) -> None:
        legacy, *others = self.pools
        left = 100 - trial.suggest_int(legacy, self.legacy[0], self.legacy[1])
        for pool in others:
            left -= trial.suggest_int(pool, 0, left)
        for name, (low, high, log) in self.params.items():
            trial.suggest_float(name, low, high, log=log)


def optuna_sampler(seed: int) -> Any:
    """The sampler of every Optuna sweep: TPE, seeded (the same seed proposes the same trials)."""
    import optuna

    return optuna.samplers.TPESampler(seed=seed)
