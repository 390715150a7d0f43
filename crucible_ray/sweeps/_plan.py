"""What a sweep runs, as the driver sees it before and after Tune: trials by their Tune config, the
config the driver reads the data for, the ratios the dilution floor checks, the trials to expect.

Pure: no Ray here; :func:`crucible_ray.sweep` wires these into Ray Tune (docs/sweeps.md).
"""

from __future__ import annotations

from typing import Any

from crucible_ray.config import Ratio
from crucible_ray.errors import ConfigError
from crucible_ray.sweeps._optuna import optuna_ratio
from crucible_ray.sweeps._space import SweepSpace
from crucible_ray.sweeps._trial import Trial
from crucible_ray.training import TrainConfig

# The one Tune parameter of a grid sweep: the trial's key (Tune's grid search runs each once).
GRID_PARAM = "trial"


def grid_keys(space: SweepSpace) -> list[str]:
    """The keys Tune's grid search runs over (one per grid trial, in the space's order)."""
    return [t.key for t in space.trials()]


def resolve_trial(config: dict[str, Any], space: SweepSpace) -> Trial:
    """The :class:`Trial` of a Tune trial config: a grid key, or Optuna's sampled values.

    Example:
        >>> space = SweepSpace(steps=[10], optuna={"trials": 1, "params": {"lr": {"low": 0.001, "high": 0.1}}})
        >>> t = resolve_trial({"legacy": 80, "expansion": 15, "lr": 0.01}, space)
        >>> str(t.ratio), t.seed, t.params
        ('80_15_5', 42, {'lr': 0.01})

    Raises:
        ConfigError: a grid key that is not in the space. KeyError: an Optuna value missing.
    """
    if GRID_PARAM in config:
        for t in space.trials():
            if t.key == config[GRID_PARAM]:
                return t
        raise ConfigError(f"trial {config[GRID_PARAM]!r} is not in the search space {space.name!r}")
    assert space.optuna is not None
    params = {k: float(config[k]) for k in sorted(space.optuna.params)}
    return Trial(optuna_ratio(config, space), space.seed, params)


def union_config(space: SweepSpace) -> TrainConfig:
    """A config whose ratio weights every pool some trial uses: what the driver must read once.

    The used pools share 100 evenly, the first used pool (in pool order) takes the remainder.

    Example:
        >>> from crucible_ray.sweeps import grid_space
        >>> str(union_config(grid_space("85_15_0,90_10_0", "1", "10")).ratio)
        '50_50_0'
    """
    used: set[str] = set()
    if space.grid is not None:
        for r in space.grid.ratio:
            used |= {p for p, w in r.weights.items() if w > 0}
    else:
        used = set(space.pools)
    share = [p for p in space.pools if p in used]
    weights = {p: 100 // len(share) for p in share}
    weights[share[0]] += 100 - sum(weights.values())
    return space.train_config(Ratio.parse(weights, space.pools), space.seed, {})


def floor_ratios(space: SweepSpace) -> list[Ratio]:
    """The ratios the dilution floor is checked on before a sweep: every grid ratio, or the Optuna
    space's corner with the least legacy share (:meth:`SweepSpace.legacy_corner`)."""
    if space.grid is not None:
        return list(space.grid.ratio)
    assert space.optuna is not None
    return [space.legacy_corner(space.optuna.legacy[0])]


def expected_trials(space: SweepSpace) -> int:
    """How many trials a complete sweep of ``space`` has."""
    if space.grid is not None:
        return len(space.trials())
    assert space.optuna is not None
    return space.optuna.trials
