"""Guardrails against dilution, regression and over-training (pure: numbers in, findings out)."""

from crucible_ray.guardrails._checks import Violation, dilution_floor, dilution_outcome, overfitting_cliff, regression
from crucible_ray.guardrails._config import GuardrailConfig
from crucible_ray.guardrails._run import (
    GUARDRAILS_FILE,
    GuardrailReport,
    check_guardrails,
    enforce_dilution_floor,
)

__all__ = [
    "GUARDRAILS_FILE",
    "GuardrailConfig",
    "GuardrailReport",
    "Violation",
    "check_guardrails",
    "dilution_floor",
    "dilution_outcome",
    "enforce_dilution_floor",
    "overfitting_cliff",
    "regression",
]
