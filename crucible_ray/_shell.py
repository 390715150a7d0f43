"""Lazy re-exports of the Ray entry points from their domains (docs/architecture.md)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def shell_entry_points(module: str, names: tuple[str, ...]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that finds ``names`` in ``crucible_ray.distributed`` on first use, so that
    importing a core package never loads the Ray shell; any other name is an AttributeError."""

    def __getattr__(name: str) -> Any:
        if name in names:
            return getattr(importlib.import_module("crucible_ray.distributed"), name)
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__
