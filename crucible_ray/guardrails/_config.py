"""Guardrail thresholds and mode (docs/sweeps.md, "Guardrails")."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from crucible_ray.errors import config_error


class GuardrailConfig(BaseModel):
    """Thresholds of the four guardrails; every drop is in absolute accuracy (0.02 = 2 points).

    Attributes:
        mode: ``warn`` reports violations and passes; ``block`` fails on any violation (exit code 1).
        dilution_floor: the least share of the legacy pool a ratio may give (0.70 = 70%).
        legacy_pool: the pool whose share the floor guards.
        dilution_drop: dilution outcome: retention falls more than this vs the baseline config while
            generalization rises.
        regression_drop: any tracked metric falls more than this vs a baseline scoreboard.
        cliff_drop: generalization falls more than this after its peak along the steps.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["warn", "block"] = "warn"
    dilution_floor: float = Field(0.70, ge=0.0, le=1.0)
    legacy_pool: str = "legacy"
    dilution_drop: float = Field(0.02, ge=0.0, le=1.0)
    regression_drop: float = Field(0.02, ge=0.0, le=1.0)
    cliff_drop: float = Field(0.02, ge=0.0, le=1.0)

    @classmethod
    def from_options(cls, **options: Any) -> GuardrailConfig:
        """Build from keyword options; one :class:`ConfigError` line naming the field on bad input."""
        try:
            return cls(**{k: v for k, v in options.items() if v is not None})
        except ValidationError as e:
            raise config_error(e, "guardrail option") from None
