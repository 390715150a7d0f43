"""The scoreboard: per eval set and tier, the metrics of docs/metrics.md, plus retention and
generalization. JSON with ``schema_version: 1``; see :func:`crucible_ray.evaluate`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crucible_ray.data import write_json
from crucible_ray.errors import DataError

SCHEMA_VERSION = 1
RETENTION_SET = "frozen_eval"
GENERALIZATION_SET = "organic_holdout"
DEFAULT_DANGER_MARGIN = 0.05


@dataclass(frozen=True)
class Scoreboard:
    """Evaluation results of one model at one step.

    ``eval_sets[name][tier]`` (tier ``"1"``, ``"2"``, ``"3"``, ``"all"``) holds ``n``, ``left_out``,
    ``accuracy``, ``mrr``, ``danger_rate`` and ``margin`` (mean, std, p5..p95); ``eval_sets[name]``
    also carries ``n_bundles``, ``path`` and ``sha256`` of its input. ``retention`` is tier-3 accuracy on
    the retention set (the frozen eval), ``generalization`` on the generalization set (the organic
    holdout); each is None when that set was not evaluated.
    """

    eval_sets: dict[str, dict[str, Any]]
    danger_margin: float
    retention: float | None
    generalization: float | None
    retention_set: str = RETENTION_SET
    generalization_set: str = GENERALIZATION_SET
    step: int | None = None
    checkpoint: str | None = None
    encoder: dict[str, Any] = field(default_factory=dict)

    def accuracy(self, eval_set: str, tier: str = "3") -> float | None:
        """Accuracy of ``eval_set`` at ``tier`` (KeyError if the set was not evaluated)."""
        return self.eval_sets[eval_set][tier]["accuracy"]

    def flat_metrics(self) -> dict[str, float | None]:
        """The scoreboard as flat numbers, named as in a sweep's results table and in Tune's results.

        ``retention``, ``generalization`` and ``<set>_tier<k>_accuracy`` for every eval set and tier
        (``k`` in 1, 2, 3, all); the one flattening used by live trials, replayed trials and guardrails.

        Example:
            >>> board.flat_metrics()["frozen_eval_tier3_accuracy"]  # doctest: +SKIP
            0.91
        """
        out: dict[str, float | None] = {"retention": self.retention, "generalization": self.generalization}
        for name, tiers in self.eval_sets.items():
            for tier, m in tiers.items():
                if isinstance(m, dict) and "accuracy" in m:
                    out[f"{name}_tier{tier}_accuracy"] = m["accuracy"]
        return out

    def to_dict(self) -> dict[str, Any]:
        """The JSON document (``schema_version`` 1)."""
        return {
            "schema_version": SCHEMA_VERSION,
            "retention": self.retention,
            "generalization": self.generalization,
            "retention_set": self.retention_set,
            "generalization_set": self.generalization_set,
            "danger_margin": self.danger_margin,
            "step": self.step,
            "checkpoint": self.checkpoint,
            "encoder": self.encoder,
            "eval_sets": self.eval_sets,
        }

    def write(self, path: str | Path) -> Path:
        """Write the JSON document atomically."""
        write_json(path, self.to_dict())
        return Path(path)

    @classmethod
    def from_dict(cls, doc: dict[str, Any], *, source: str = "scoreboard") -> Scoreboard:
        """Read a scoreboard document; a :class:`DataError` names what is wrong."""
        if not isinstance(doc, dict):
            raise DataError(f"{source}: a scoreboard is a JSON object")
        if doc.get("schema_version") != SCHEMA_VERSION:
            raise DataError(
                f"{source}: field 'schema_version': expected {SCHEMA_VERSION}, got {doc.get('schema_version')!r}"
            )
        for key in ("eval_sets", "danger_margin"):
            if key not in doc:
                raise DataError(f"{source}: field '{key}': missing")
        return cls(
            eval_sets=doc["eval_sets"],
            danger_margin=doc["danger_margin"],
            retention=doc.get("retention"),
            generalization=doc.get("generalization"),
            retention_set=doc.get("retention_set", RETENTION_SET),
            generalization_set=doc.get("generalization_set", GENERALIZATION_SET),
            step=doc.get("step"),
            checkpoint=doc.get("checkpoint"),
            encoder=doc.get("encoder", {}),
        )

    @classmethod
    def read(cls, path: str | Path) -> Scoreboard:
        """Read a scoreboard JSON file."""
        path = Path(path)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError(f"{path}: no such file") from None
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{e.lineno}: invalid JSON: {e.msg}") from None
        return cls.from_dict(doc, source=str(path))
