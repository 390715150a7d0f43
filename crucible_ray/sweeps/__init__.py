"""Sweeps without Ray: search spaces, trials, the Optuna define-by-run space, trial bookkeeping and
results tables. :func:`crucible_ray.sweep` (``crucible_ray.distributed``) wires them into Ray Tune.
"""

from typing import TYPE_CHECKING

from crucible_ray._shell import shell_entry_points
from crucible_ray.sweeps._optuna import OptunaSearchSpace, optuna_ratio, optuna_sampler, sampled_pools
from crucible_ray.sweeps._optuna_study import write_optuna_study
from crucible_ray.sweeps._plan import GRID_PARAM, expected_trials, floor_ratios, grid_keys, resolve_trial, union_config
from crucible_ray.sweeps._recommended import recommended_checkpoint, recommended_trials
from crucible_ray.sweeps._results import (
    STATUS_FILE,
    TRIAL_FILE,
    TRIALS_DIR,
    collect_results,
    completed_boards,
    record_failed_trial,
    start_trial,
    trial_outcomes,
    trial_rows,
    trial_status,
    write_results,
    write_trial_status,
)
from crucible_ray.sweeps._space import Grid, OptunaSpec, SweepSpace, grid_space, load_space, presets, space_with
from crucible_ray.sweeps._sweep_result import SweepResult
from crucible_ray.sweeps._trial import Trial, trial_key

__all__ = [
    "write_optuna_study",
    "sweep",
    "GRID_PARAM",
    "STATUS_FILE",
    "TRIALS_DIR",
    "TRIAL_FILE",
    "Grid",
    "OptunaSearchSpace",
    "OptunaSpec",
    "SweepResult",
    "SweepSpace",
    "Trial",
    "collect_results",
    "recommended_checkpoint",
    "recommended_trials",
    "completed_boards",
    "expected_trials",
    "floor_ratios",
    "grid_keys",
    "grid_space",
    "load_space",
    "optuna_ratio",
    "optuna_sampler",
    "presets",
    "record_failed_trial",
    "resolve_trial",
    "sampled_pools",
    "space_with",
    "start_trial",
    "trial_key",
    "trial_outcomes",
    "trial_rows",
    "trial_status",
    "union_config",
    "write_results",
    "write_trial_status",
]

# The entry points that run on Ray (``sweep``) live in the Ray shell (crucible_ray.distributed); they are
# importable from this domain too, imported on first use so that importing this package never loads the
# shell (docs/architecture.md).
if TYPE_CHECKING:
    from crucible_ray.distributed import sweep

__getattr__ = shell_entry_points(__name__, ("sweep",))
