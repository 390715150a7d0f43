"""Validated configuration values shared by every stage: pool ratios and comma-separated option lists."""

from crucible_ray.config._lists import parse_ints, parse_list
from crucible_ray.config._ratio import DEFAULT_POOLS, LEGACY_POOL, Ratio

__all__ = ["DEFAULT_POOLS", "LEGACY_POOL", "Ratio", "parse_ints", "parse_list"]
