"""One trial of a sweep: a (ratio, seed, params) point, its stable id and its ``trial.json`` record."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from crucible_ray.config import Ratio
from crucible_ray.provenance import content_key


def trial_key(ratio: Ratio | str, seed: int, params: dict[str, Any]) -> str:
    """A stable, readable id of one trial, e.g. ``r75_15_10-s42-3f2a9c1d``.

    The ratio enters by its canonical string, so the id of a trial never depends on how its ratio was
    written (``R75_15_10``, a mapping, a :class:`Ratio`).

    Example:
        >>> trial_key(Ratio.parse("75_15_10"), 42, {}) == trial_key("75_15_10", 42, {})
        True
    """
    r = str(ratio)
    return f"r{r}-s{seed}-{content_key({'r': r, 's': seed, 'p': params}, 8)}"


@dataclass(frozen=True)
class Trial:
    """One point of a sweep: trained to the largest milestone, evaluated at each (docs/sweeps.md).

    Example:
        >>> t = Trial(Ratio.parse("85_10_5"), 1, {"lr": 0.01})
        >>> t.key.startswith("r85_10_5-s1-")
        True
        >>> t.meta([10, 20])["pools"]
        ['legacy', 'expansion', 'organic']
    """

    ratio: Ratio
    seed: int
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """The trial's id (its folder under ``trials/`` and its Ray Train run name)."""
        return trial_key(self.ratio, self.seed, self.params)

    def meta(self, steps: Sequence[int]) -> dict[str, Any]:
        """The trial's ``trial.json``: id, ratio (canonical string), its pools, seed, params, milestones."""
        return {
            "trial_id": self.key,
            "ratio": self.ratio.canonical,
            "pools": list(self.ratio.pools),
            "seed": self.seed,
            "params": self.params,
            "steps": list(steps),
        }
