"""A finished sweep as an Optuna study: Optuna's dashboard and plots over crucible-ray's seed means.

One Optuna trial per config (ratio, milestone step, swept params), its two values the seed means of
retention and generalization, both maximised; the config's seed statistics ride along as user
attributes. ``optuna.visualization.plot_pareto_front(study)`` and ``optuna-dashboard <storage>`` then
show the sweep, and ``study.best_trials`` is the frontier :func:`crucible_ray.pareto` draws on the same
means (docs/sweeps.md, "In Optuna's dashboard").
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crucible_ray.errors import ConfigError

if TYPE_CHECKING:
    from crucible_ray.analysis import ParetoResult

OBJECTIVES = ("retention", "generalization")
#: The study attribute naming the sweep a study was written from (a re-export replaces only its own study).
SOURCE_ATTR = "crucible_ray_results"
_ATTRS = (
    "config",
    "n_seeds",
    "retention_ci_low",
    "retention_ci_high",
    "generalization_ci_low",
    "generalization_ci_high",
    "frontier_probability",
    "on_frontier",
    "recommended",
    "is_baseline",
)


def write_optuna_study(front: ParetoResult, storage: str, *, source: str | Path, study_name: str | None = None) -> Any:
    """Write ``front``'s configs into an Optuna study in ``storage`` (e.g. ``sqlite:///sweep.db``).

    Args:
        front: a Pareto analysis (:func:`crucible_ray.pareto`).
        storage: an Optuna storage URL.
        source: the sweep folder the analysis came from (recorded in the study).
        study_name: default ``crucible-ray/<sweep folder name>``.

    Returns:
        The ``optuna.Study``.

    Raises:
        ConfigError: the storage cannot be opened, or holds a study of that name written from another
            sweep (or by something else): it is left as it is.
    """
    import optuna

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # not "A new study created..." on the user's terminal
    try:
        with warnings.catch_warnings():
            # set_metric_names is marked experimental; the notice is about Optuna's API, not the user's run.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return _write(front, storage, str(Path(source).resolve()), study_name)
    finally:
        optuna.logging.set_verbosity(verbosity)


def _write(front: ParetoResult, storage: str, origin: str, study_name: str | None) -> Any:
    import optuna

    name = study_name or f"crucible-ray/{Path(origin).name}"
    try:
        names = {s.study_name: s for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}
    except Exception as e:  # noqa: BLE001 - Optuna raises what the database driver raises
        raise ConfigError(f"--optuna-storage {storage}: cannot open it ({type(e).__name__}: {e})") from None
    if name in names:
        if names[name].user_attrs.get(SOURCE_ATTR) != origin:
            raise ConfigError(
                f"--optuna-storage {storage} already holds a study {name!r} that this sweep did not write; "
                "choose another --optuna-study"
            )
        optuna.delete_study(study_name=name, storage=storage)  # this sweep's earlier export: replaced
    study = optuna.create_study(storage=storage, study_name=name, directions=["maximize", "maximize"])
    study.set_metric_names(list(OBJECTIVES))
    study.set_user_attr(SOURCE_ATTR, origin)
    study.set_user_attr("recommended", front.recommended)
    study.set_user_attr("hypervolume", front.hypervolume)
    study.add_trials(_trials(front))
    return study


def _trials(front: ParetoResult) -> list[Any]:
    import optuna
    from optuna.distributions import CategoricalDistribution, IntDistribution

    table = front.table
    params = [c for c in table.columns if c.startswith("param_")]
    dists: dict[str, Any] = {
        "ratio": CategoricalDistribution(sorted(table["ratio"].unique())),
        "step": IntDistribution(int(table["step"].min()), int(table["step"].max())),
    }
    for col in params:
        dists[col.removeprefix("param_")] = CategoricalDistribution(sorted(_plain(v) for v in table[col].unique()))
    trials = []
    for _, row in table.iterrows():
        values = [float(row[f"{o}_mean"]) for o in OBJECTIVES]
        if any(math.isnan(v) for v in values):
            continue  # a config without a finished seed has no mean to show
        chosen = {"ratio": row["ratio"], "step": int(row["step"])}
        chosen.update({c.removeprefix("param_"): _plain(row[c]) for c in params})
        trials.append(
            optuna.trial.create_trial(
                params=chosen,
                distributions={k: dists[k] for k in chosen},
                values=values,
                user_attrs={k: _plain(row[k]) for k in _ATTRS if k in row},
            )
        )
    return trials


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value Optuna stores."""
    return value.item() if hasattr(value, "item") else value
