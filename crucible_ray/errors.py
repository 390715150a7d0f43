"""The exception hierarchy: one root, one subclass per kind of failure.

The CLI catches :class:`CrucibleError` once and turns it into one line and an exit code
(2 for bad input or configuration, 1 for a guardrail that blocked). Library callers can catch
the root or a specific subclass.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError

__all__ = [
    "CrucibleError",
    "ConfigError",
    "DataError",
    "EncoderError",
    "MiningError",
    "GuardrailViolation",
    "TrainingError",
    "config_error",
]


class CrucibleError(Exception):
    """Root of every error crucible-ray raises on purpose."""

    exit_code: int = 2


class ConfigError(CrucibleError, ValueError):
    """A configuration value breaks a rule (the message names the rule, the value and the fix)."""


class DataError(CrucibleError, ValueError):
    """An input file is missing or malformed; the message starts with ``path:line:``."""


class EncoderError(CrucibleError):
    """An encoder spec or checkpoint cannot be built or loaded."""


class MiningError(CrucibleError):
    """The organic miner cannot run as configured."""


class TrainingError(CrucibleError):
    """A training run failed on its workers and did not recover within its retry budget."""

    exit_code = 3


class GuardrailViolation(CrucibleError):
    """A guardrail in ``block`` mode refused a configuration or a result."""

    exit_code = 1


def config_error(error: ValidationError, what: str, *, whole: str | None = None) -> ConfigError:
    """The one-line :class:`ConfigError` for a rejected configuration: ``<what> 'field': why (got value)``.

    ``what`` names the kind of option (``"miner option"``, ``"training option"``...). The first problem
    pydantic found is reported; a rule that spans fields (a model validator) names no field and is
    reported as ``<whole>: why`` (default: ``<what>s: why``).
    """
    first = error.errors(include_url=False)[0]
    field = ".".join(str(p) for p in first["loc"])
    msg = str(first["msg"]).removeprefix("Value error, ")
    if field and first["type"] not in ("missing", "extra_forbidden") and "input" in first:
        shown = repr(first["input"])
        msg += f" (got {shown[:60] + '...' if len(shown) > 60 else shown})"
    return ConfigError(f"{what} {field!r}: {msg}" if field else f"{whole or what + 's'}: {msg}")
