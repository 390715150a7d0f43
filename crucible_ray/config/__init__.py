"""Validated configuration objects (one per concern)."""

from crucible_ray.config._ratio import DEFAULT_POOLS, Ratio

__all__ = ["DEFAULT_POOLS", "Ratio"]
