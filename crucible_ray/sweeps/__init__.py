"""Sweep definitions (search spaces) and results tables; the Ray Tune shell is crucible_ray.distributed."""

from crucible_ray.sweeps._results import TRIALS_DIR, collect_results, trial_rows, write_results
from crucible_ray.sweeps._space import Grid, OptunaSpec, SweepSpace, grid_space, load_space, presets, trial_key

__all__ = [
    "TRIALS_DIR",
    "Grid",
    "OptunaSpec",
    "SweepSpace",
    "collect_results",
    "grid_space",
    "load_space",
    "presets",
    "trial_key",
    "trial_rows",
    "write_results",
]
