"""The four guardrail checks, each a pure function of numbers (no files, no Ray)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from crucible_ray.config import LEGACY_POOL, Ratio


@dataclass(frozen=True)
class Violation:
    """One guardrail finding: which check, on what, and the numbers behind it."""

    check: str  # dilution_floor | dilution_outcome | regression | overfitting_cliff
    subject: str
    message: str
    value: float
    threshold: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def dilution_floor(ratio: Ratio, floor: float, legacy_pool: str = LEGACY_POOL) -> Violation | None:
    """The ratio gives the legacy pool (the pool named ``legacy_pool``) less than ``floor`` of each batch.

    The pool is found by name, never by position: when the ratio's pools have no pool of that name,
    its share is 0 and any floor above 0 is a violation that says so (set ``GuardrailConfig.legacy_pool``).

    Example:
        >>> dilution_floor(Ratio.parse("65_25_10"), 0.70).message
        'legacy share 65% is below the dilution floor 70%'
        >>> dilution_floor(Ratio.parse("60_40", pools=["core", "fresh"]), 0.70, "core") is None
        False
        >>> dilution_floor(Ratio.parse("80_20", pools=["core", "fresh"]), 0.70, "core") is None
        True
    """
    share = ratio.share(legacy_pool)
    if share + 1e-12 >= floor:
        return None
    missing = (
        "" if legacy_pool in ratio.pools else f" (the pools {list(ratio.pools)} have no such pool; set legacy_pool)"
    )
    return Violation(
        "dilution_floor",
        ratio.canonical,
        f"{legacy_pool} share {share:.0%} is below the dilution floor {floor:.0%}{missing}",
        share,
        floor,
    )


def dilution_outcome(
    subject: str, retention_delta: float, generalization_delta: float, drop: float
) -> Violation | None:
    """Retention fell more than ``drop`` vs the baseline while generalization rose."""
    if math.isnan(retention_delta) or math.isnan(generalization_delta):
        return None
    if retention_delta < -drop and generalization_delta > 0:
        return Violation(
            "dilution_outcome",
            subject,
            f"retention {retention_delta:+.3f} vs the baseline while generalization {generalization_delta:+.3f}: "
            "new cases crowd out the known ones",
            retention_delta,
            -drop,
        )
    return None


def regression(
    subject: str, scores: Mapping[str, float | None], baseline: Mapping[str, float | None], drop: float
) -> list[Violation]:
    """Every metric present in both that fell more than ``drop`` below the baseline."""
    out = []
    for name in sorted(set(scores) & set(baseline)):
        new, old = scores[name], baseline[name]
        if new is None or old is None or math.isnan(new) or math.isnan(old):
            continue
        if new - old < -drop:
            out.append(
                Violation(
                    "regression",
                    subject,
                    f"{name} {new:.3f} vs baseline {old:.3f} ({new - old:+.3f})",
                    new - old,
                    -drop,
                )
            )
    return out


def overfitting_cliff(subject: str, curve: Sequence[tuple[int, float]], drop: float) -> tuple[int, Violation | None]:
    """The generalization peak along steps (the recommended early stop) and a violation when a later
    step falls more than ``drop`` below it.

    Example:
        >>> step, v = overfitting_cliff("75_15_10", [(1000, 0.40), (2000, 0.45), (4000, 0.41)], 0.02)
        >>> step, v.check
        (2000, 'overfitting_cliff')
    """
    pts = sorted((int(s), float(g)) for s, g in curve if not math.isnan(g))
    if not pts:
        raise ValueError(f"{subject}: no generalization values along steps")
    peak_step, peak = max(pts, key=lambda p: (p[1], -p[0]))  # the earliest step at the peak
    later = [g for s, g in pts if s > peak_step]
    if later and min(later) < peak - drop:
        low = min(later)
        return peak_step, Violation(
            "overfitting_cliff",
            subject,
            f"generalization peaks at {peak:.3f} (step {peak_step}) then falls to {low:.3f}; stop at step {peak_step}",
            low - peak,
            -drop,
        )
    return peak_step, None
