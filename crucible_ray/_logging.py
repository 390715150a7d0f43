"""The package logger. Library code logs; only the CLI writes to the terminal."""

from __future__ import annotations

import logging

logger = logging.getLogger("crucible_ray")
logger.addHandler(logging.NullHandler())


def get_logger(name: str) -> logging.Logger:
    """Return a child of the package logger for module ``name``."""
    return logging.getLogger(name if name.startswith("crucible_ray") else f"crucible_ray.{name}")
