"""Comma-separated lists given as options, such as ``--steps 200,400``: one parser, one error format."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from crucible_ray.errors import ConfigError

T = TypeVar("T")


def parse_list(value: str | Sequence[Any], option: str, item: Callable[[Any], T], what: str) -> list[T]:
    """Read a comma-separated string (or a sequence, item by item) with ``item``; empty items are skipped.

    Args:
        value: ``"200,400"`` or ``[200, 400]``.
        option: the option as the user gave it, e.g. ``--steps``.
        item: reads one (stripped) item; a ``ValueError`` or ``TypeError`` from it becomes the one-line
            error below, a :class:`ConfigError` passes through (it already says what is wrong).
        what: what the items are, for the message, e.g. ``integers such as 42,123``.

    Raises:
        ConfigError: ``<option> takes comma-separated <what>, but got <value>`` (one line).
    """
    items = value.split(",") if isinstance(value, str) else list(value)
    try:
        return [item(x.strip() if isinstance(x, str) else x) for x in items if not isinstance(x, str) or x.strip()]
    except (TypeError, ValueError):
        raise ConfigError(f"{option} takes comma-separated {what}, but got {value!r}") from None


def parse_ints(value: str | Sequence[Any], option: str) -> list[int]:
    """A comma-separated list of integers for ``option`` (a sequence is read item by item).

    Example:
        >>> parse_ints("200, 400", "--steps")
        [200, 400]
        >>> parse_ints("200,x", "--steps")
        Traceback (most recent call last):
        ...
        crucible_ray.errors.ConfigError: --steps takes comma-separated integers such as 42,123, but got '200,x'
    """
    return parse_list(value, option, int, "integers such as 42,123")
