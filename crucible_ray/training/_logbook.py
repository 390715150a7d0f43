"""TensorBoard event files of a training run (rank 0 only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from crucible_ray.metrics import BundleScores, margins
from crucible_ray.scoreboard import Scoreboard

TB_DIR = "tensorboard"


class Logbook:
    """Writes ``train/*`` scalars every ``every`` steps and ``eval/*`` scalars and histograms at eval points.

    Tags: ``train/loss``, ``train/lr``, ``train/grad_norm``, ``train/tier<k>_accuracy`` (on training
    batches); ``eval/retention``, ``eval/generalization``; per eval set ``<set>/tier<k>/accuracy``,
    ``mrr``, ``danger_rate``, ``margin_p<q>``; histograms ``<set>/margins_tier<k>``.

    A run resumed from step ``t`` passes ``resumed_at=t``: events an earlier attempt logged after step ``t``
    (it went on before it died, and this attempt logs those steps again) are hidden from TensorBoard's
    readers, so each step appears once.
    """

    def __init__(self, output_dir: Path, *, enabled: bool, every: int = 10, resumed_at: int | None = None) -> None:
        self.every = every
        self.writer: Any = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            purge = None if resumed_at is None else resumed_at + 1
            self.writer = SummaryWriter(log_dir=str(output_dir / TB_DIR), purge_step=purge)

    def train_scalars(self, step: int, loss: float, lr: float, grad_norm: float, tiers: dict[str, float]) -> None:
        if self.writer is None:
            return
        self.writer.add_scalar("train/loss", loss, step)
        self.writer.add_scalar("train/lr", lr, step)
        self.writer.add_scalar("train/grad_norm", grad_norm, step)
        for k, v in tiers.items():
            self.writer.add_scalar(f"train/{k}", v, step)

    def eval_scalars(self, step: int, board: Scoreboard, raw: dict[str, BundleScores]) -> None:
        if self.writer is None:
            return
        w = self.writer
        if board.retention is not None:
            w.add_scalar("eval/retention", board.retention, step)
        if board.generalization is not None:
            w.add_scalar("eval/generalization", board.generalization, step)
        for name, result in board.eval_sets.items():
            for tier in ("1", "2", "3", "all"):
                r = result[tier]
                for key in ("accuracy", "mrr", "danger_rate"):
                    if r[key] is not None:
                        w.add_scalar(f"{name}/tier{tier}/{key}", r[key], step)
                for q, v in r["margin"].items():
                    if q.startswith("p") and v is not None:
                        w.add_scalar(f"{name}/tier{tier}/margin_{q}", v, step)
            scores = raw.get(name)
            if scores is None:
                continue
            for tier, tier_set in (("3", {3}), ("all", {1, 2, 3})):
                m = margins(scores.s_pos, scores.s_neg, scores.tiers, tier_set)
                m = m[~np.isnan(m)]
                if m.size:
                    w.add_histogram(f"{name}/margins_tier{tier}", m, step)
        w.flush()

    def hparams(self, config: dict[str, Any], board: Scoreboard) -> None:
        """The run's settings and final figures for TensorBoard's HParams table (one row per run, so the
        trials of a sweep, under ``tensorboard --logdir <sweep>/trials``, compare side by side).

        Settings are the training config's fields (nested ones as ``a.b``; lists as text); figures are
        ``hparam/retention``, ``hparam/generalization`` and ``hparam/<set>_tier<k>_accuracy``.
        """
        if self.writer is None:
            return
        settings = {k: _hparam_value(v) for k, v in _flatten(config).items() if v is not None}
        figures = {f"hparam/{k}": float(v) for k, v in board.flat_metrics().items() if v is not None}
        # "." writes into this run's own folder (by default torch makes a sub-run per call).
        self.writer.add_hparams(settings, figures, run_name=".", global_step=board.step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in config.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _hparam_value(value: Any) -> bool | int | float | str:
    """What the HParams plugin holds: a number, a bool or text (lists and the rest as text)."""
    if isinstance(value, (bool, int, float, str)):
        return value
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
