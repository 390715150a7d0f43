"""The Pareto analyzer over retention and generalization (pure pandas/numpy/scipy, no Ray)."""

from crucible_ray.analysis._analyze import pareto
from crucible_ray.analysis._findings import (
    REFERENCE_SET,
    Effect,
    Findings,
    Peak,
    dilution,
    findings,
    gain,
    mining_lines,
    peaks,
    reference_column,
    share_slopes,
)
from crucible_ray.analysis._frontier import frontier_mask, frontier_probability, hypervolume
from crucible_ray.analysis._result import ParetoResult, SweepOutput
from crucible_ray.analysis._stats import holm, paired_test, seed_summary
from crucible_ray.analysis._table import (
    OBJECTIVES,
    PARAM_PREFIX,
    POOLS_COLUMN,
    RESULTS_FILE,
    config_columns,
    load_results,
    manifest_pools,
    table_ratios,
)

__all__ = [
    "Effect",
    "Findings",
    "Peak",
    "REFERENCE_SET",
    "dilution",
    "findings",
    "mining_lines",
    "gain",
    "peaks",
    "reference_column",
    "share_slopes",
    "OBJECTIVES",
    "PARAM_PREFIX",
    "POOLS_COLUMN",
    "ParetoResult",
    "RESULTS_FILE",
    "SweepOutput",
    "config_columns",
    "frontier_mask",
    "frontier_probability",
    "holm",
    "hypervolume",
    "load_results",
    "manifest_pools",
    "paired_test",
    "pareto",
    "seed_summary",
    "table_ratios",
]
