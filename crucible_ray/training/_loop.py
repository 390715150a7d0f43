"""The training loop, one worker's view: plain torch, no Ray.

The Ray Train shell (:mod:`crucible_ray.distributed._train`) calls :func:`train_worker` on every
worker with a :class:`WorkerContext` that knows how to report to Ray; a test or a plain script can
call it directly. Everything that decides the result is a function of the config's seed and the step:
batches (see the sampler), dropout seeds and the learning rate. A run resumed from a recovery state at
step ``t`` therefore continues exactly as the uninterrupted run would.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from crucible_ray._logging import get_logger
from crucible_ray._rng import stream_key
from crucible_ray.data import Bundle, write_json
from crucible_ray.encoders import CachedFeatureEncoder, Encoder, FeatureTable, build_encoder, save_checkpoint
from crucible_ray.evaluation import evaluate_loaded
from crucible_ray.training._config import TrainConfig
from crucible_ray.training._logbook import Logbook
from crucible_ray.training._loss import info_nce
from crucible_ray.training._optim import Optimizers, average_gradients, broadcast_parameters, clip_gradients
from crucible_ray.training._sampler import CurriculumSampler, TrainBatch
from crucible_ray.training._schedule import lr_at

log = get_logger(__name__)

RECOVERY_FORMAT = "crucible-ray-train-state"


@dataclass
class TrainData:
    """What a worker trains and evaluates on (already validated by the driver)."""

    pools: dict[str, list[Bundle]]
    eval_sets: dict[str, tuple[list[Bundle], dict[str, Any]]]
    features: FeatureTable | None = None


def _noop_report(metrics: dict[str, Any], state: dict[str, Any] | None) -> None:
    return None


@dataclass
class WorkerContext:
    """How one worker talks to the world around it.

    ``report(metrics, state)`` is called by every worker at each eval point; ``state`` (the recovery
    state, a dict of tensors and plain types) is given on rank 0 only. ``resume`` is the state to
    continue from, if any.
    """

    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    resume: dict[str, Any] | None = None
    report: Callable[[dict[str, Any], dict[str, Any] | None], None] = _noop_report


def step_seed(seed: int, rank: int, step: int) -> int:
    """The torch seed of one optimizer step on one worker (dropout and any other torch randomness)."""
    return int(stream_key(seed, "train-step", rank, step)[0] % (2**63))


def batch_loss(encoder: Encoder, batch: TrainBatch, temperature: float) -> tuple[torch.Tensor, dict[str, float]]:
    """InfoNCE of one batch and the batch's per-tier accuracies (positive above every negative of that tier)."""
    b = len(batch)
    flat = [t for negs in batch.negatives for t in negs]
    texts = [*encoder.prompted(batch.anchors, "query"), *encoder.prompted([*batch.positives, *flat], "document")]
    emb = encoder.embed(texts, role=None)  # one forward pass, each text with its role's prompt
    anchors, positives, neg_flat = emb[:b], emb[b : 2 * b], emb[2 * b :]
    width = max((len(n) for n in batch.negatives), default=0)
    negatives = emb.new_zeros((b, width, emb.shape[1]))
    mask = torch.zeros((b, width), dtype=torch.bool, device=emb.device)
    tiers = np.zeros((b, width), dtype=np.int64)
    offset = 0
    for i, negs in enumerate(batch.negatives):
        n = len(negs)
        if n:
            negatives[i, :n] = neg_flat[offset : offset + n]
            mask[i, :n] = True
            tiers[i, :n] = batch.negative_tiers[i]
        offset += n
    loss = info_nce(
        anchors,
        positives,
        negatives,
        mask,
        temperature=temperature,
        positive_ids=batch.positives,
        anchor_ids=batch.anchors,
    )
    with torch.no_grad():
        s_pos = (anchors * positives).sum(-1).cpu().numpy()
        s_neg = torch.einsum("bd,bnd->bn", anchors, negatives).cpu().numpy() if width else np.zeros((b, 0))
    stats: dict[str, float] = {}
    for tier in (1, 2, 3):
        sel = tiers == tier
        has = sel.any(axis=1)
        if has.any():
            worst = np.where(sel, s_neg, -np.inf).max(axis=1)
            stats[f"tier{tier}_accuracy"] = float(np.mean(s_pos[has] > worst[has]))
    return loss, stats


def train_worker(config: TrainConfig, data: TrainData, output_dir: Path, ctx: WorkerContext) -> dict[str, Any]:
    """Train to ``config.max_step``, evaluating at every eval point; returns the last eval point's metrics.

    Rank 0 writes the outputs under ``output_dir``: ``checkpoint_step_<n>.pt`` and ``scoreboard_step_<n>.json``
    at each milestone, ``scoreboard_step_<n>.json`` at each other eval point, ``checkpoint_final.pt`` and
    ``scoreboard_final.json`` at the end, TensorBoard events under ``tensorboard/``.
    """
    base = build_encoder(config.encoder, device=str(ctx.device))
    encoder: Encoder = CachedFeatureEncoder(base, data.features) if data.features is not None else base
    opt = Optimizers(encoder.module, lr=config.learning_rate, weight_decay=config.weight_decay)
    start = 0
    if ctx.resume is not None:
        encoder.load_trainable_state(ctx.resume["state_dict"])
        opt.load_state_dict(ctx.resume["optimizer"])
        start = int(ctx.resume["step"])
        log.info("rank %d resumes at step %d", ctx.rank, start)
    else:
        broadcast_parameters(encoder.module)
    sampler = CurriculumSampler(
        data.pools,
        config.ratio,
        config.batch_size,
        seed=config.seed,
        negatives_per_bundle=config.negatives_per_bundle,
        rank=ctx.rank,
        world_size=ctx.world_size,
        quality_weighting=config.quality_weighting,
    )
    book = Logbook(output_dir, enabled=ctx.rank == 0, resumed_at=start if ctx.resume is not None else None)
    eval_points = [s for s in config.eval_steps() if s > start]
    milestones = set(config.steps)
    last: dict[str, Any] = {}
    window: list[float] = []
    tier_window: dict[str, list[float]] = {}
    t_last_log = time.monotonic()
    started_at, eval_seconds = time.time(), 0.0
    encoder.module.train()
    for step in range(start, config.max_step):
        torch.manual_seed(step_seed(config.seed, ctx.rank, step))
        lr = lr_at(
            step, base=config.learning_rate, warmup=config.warmup, total=config.max_step, schedule=config.schedule
        )
        opt.set_lr(lr)
        loss, stats = batch_loss(encoder, sampler.batch(step), config.temperature)
        opt.zero_grad()
        loss.backward()
        average_gradients(opt.params)
        grad_norm = clip_gradients(opt.params, config.grad_clip)
        opt.step()
        done = step + 1
        loss_value = float(loss.detach())
        window.append(loss_value)
        for k, v in stats.items():
            tier_window.setdefault(k, []).append(v)
        if done % book.every == 0 or done in eval_points:
            book.train_scalars(
                done, float(np.mean(window)), lr, grad_norm, {k: float(np.mean(v)) for k, v in tier_window.items()}
            )
            window, tier_window = [], {}
        if ctx.rank == 0 and time.monotonic() - t_last_log > 10:
            log.info("step %d/%d loss %.4f lr %.2e", done, config.max_step, loss_value, lr)
            t_last_log = time.monotonic()
        if done in eval_points:
            t_eval = time.monotonic()
            last = _eval_point(encoder, opt, config, data, output_dir, ctx, book, done, done in milestones)
            eval_seconds += time.monotonic() - t_eval
    book.close()
    if ctx.rank == 0:
        total = time.time() - started_at
        timing = {
            "loop_started_at": started_at,
            "steps_run": config.max_step - start,
            "loop_seconds": round(total, 3),
            "eval_seconds": round(eval_seconds, 3),
            "train_seconds": round(total - eval_seconds, 3),
            "samples_per_second": round(
                (config.max_step - start) * config.batch_size / max(total - eval_seconds, 1e-9), 1
            ),
        }
        write_json(output_dir / "timing.json", timing)
    return last


def _eval_point(
    encoder: Encoder,
    opt: Optimizers,
    config: TrainConfig,
    data: TrainData,
    output_dir: Path,
    ctx: WorkerContext,
    book: Logbook,
    step: int,
    milestone: bool,
) -> dict[str, Any]:
    metrics: dict[str, Any] = {"step": step}
    state: dict[str, Any] | None = None
    if ctx.rank == 0:
        encoder.weights_changed()
        plain = config.model_dump(mode="json")
        ckpt = output_dir / f"checkpoint_step_{step}.pt"
        if milestone:
            save_checkpoint(encoder, ckpt, step=step, train_config=plain)
        board, raw = evaluate_loaded(
            encoder,
            data.eval_sets,
            danger_margin=config.danger_margin,
            retention_set=config.retention_set,
            generalization_set=config.generalization_set,
            step=step,
            checkpoint=str(ckpt) if milestone else None,
        )
        encoder.module.train()
        board.write(output_dir / f"scoreboard_step_{step}.json")
        if step == config.max_step:
            save_checkpoint(encoder, output_dir / "checkpoint_final.pt", step=step, train_config=plain)
            final = dataclasses.replace(board, checkpoint=str(output_dir / "checkpoint_final.pt"))
            final.write(output_dir / "scoreboard_final.json")
        book.eval_scalars(step, board, raw)
        if step == config.max_step:
            book.hparams(plain, board)
        metrics.update(board.flat_metrics())
        state = {
            "format": RECOVERY_FORMAT,
            "step": step,
            "encoder_spec": dict(encoder.spec),
            "state_dict": encoder.trainable_state(),
            "optimizer": copy.deepcopy(opt.state_dict()),  # a snapshot, not the live moment tensors
        }
        log.info("step %d: retention %s generalization %s", step, board.retention, board.generalization)
    ctx.report(metrics, state)
    return metrics
