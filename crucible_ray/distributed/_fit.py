"""One Ray Train run of the training loop: the ``TorchTrainer`` shared by ``train`` and sweep trials.

Rank 0 reports a recovery state (weights, optimiser moments, step) at each eval point as a Ray Train
checkpoint; a run restarted under the same ``name`` and ``storage`` continues from the latest one.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from crucible_ray.data import remove_interrupted_writes
from crucible_ray.encoders import adopt_kinds, plugin_kinds
from crucible_ray.errors import CrucibleError, TrainingError
from crucible_ray.training import RECOVERY_FORMAT, TrainConfig, TrainData, WorkerContext, train_worker

STATE_FILE = "state.pt"
# The outputs the workers write atomically: a worker killed in the middle of a write leaves a temporary
# ``.<name>.<random>.tmp`` beside them, which the next attempt removes.
_WORKER_OUTPUTS = ("checkpoint_*.pt", "scoreboard_*.json", "timing.json")
# Where a worker stages a recovery state for Ray Train to copy (inside the run folder, so a worker killed
# before it removed the folder leaves nothing in the system's temp folder; the next attempt removes it).
_STAGING = ".recovery-staging-"


def recovery_state(checkpoint: Any, run_dir: Path | None) -> dict[str, Any] | None:
    """The state to resume from: the reported ``checkpoint`` (Ray Train's or Tune's), else the newest
    one on disk under ``run_dir``; None for a fresh start."""
    resume = None
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            resume = torch.load(Path(d) / STATE_FILE, map_location="cpu", weights_only=True)
    elif run_dir is not None:
        resume = latest_state(run_dir)
    if resume is not None and resume.get("format") != RECOVERY_FORMAT:
        raise TrainingError(f"the recovery checkpoint of this run is not a {RECOVERY_FORMAT!r} state")
    return resume


def state_reporter(report: Any, checkpoint_type: Any, output_dir: Path) -> Any:
    """``report(metrics, state)`` for :class:`WorkerContext`: the metrics (Nones dropped) through
    ``report`` (``ray.train.report`` or ``ray.tune.report``), a state as a ``checkpoint_type``
    folder staged in ``output_dir`` and removed once reported (Ray has copied it to its storage)."""

    def send(metrics: dict[str, Any], state: dict[str, Any] | None) -> None:
        clean = {k: v for k, v in metrics.items() if v is not None}
        if state is None:
            report(clean)
            return
        output_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=_STAGING, dir=output_dir))
        try:
            torch.save(state, tmp / STATE_FILE)
            report(clean, checkpoint=checkpoint_type.from_directory(str(tmp)))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    return send


def _worker_loop(loop_config: dict[str, Any]) -> None:
    import ray
    import ray.train
    import ray.train.torch

    adopt_kinds(loop_config.get("kinds", ()))  # encoder kinds registered in the driver
    ctx = ray.train.get_context()
    config: TrainConfig = loop_config["config"]  # the driver's object, as Ray pickled it (not re-parsed)
    data: TrainData = ray.get(loop_config["data"])
    threads = int(loop_config.get("threads") or 0)
    if threads:
        torch.set_num_threads(threads)
    run_dir = Path(loop_config["run_dir"]) if loop_config.get("run_dir") else None
    worker = WorkerContext(
        rank=ctx.get_world_rank(),
        world_size=ctx.get_world_size(),
        device=ray.train.torch.get_device(),
        resume=recovery_state(ray.train.get_checkpoint(), run_dir),
        report=state_reporter(ray.train.report, ray.train.Checkpoint, Path(loop_config["output_dir"])),
    )
    train_worker(config, data, Path(loop_config["output_dir"]), worker)


def latest_state(run_dir: Path) -> dict[str, Any] | None:
    """The newest loadable recovery state among the run's checkpoint folders, or None.

    Ray Train V2 hands the latest checkpoint back only once it has written its checkpoint-manager
    snapshot, which it had not done when a worker died right after the first report (seen in a
    sweep trial's retry, which then started from step 0). The checkpoint folders themselves are
    already there, so a new attempt of the same run picks the newest one up here; a half-copied
    file (a crash during upload) is skipped for the one before it.
    """
    for d in sorted(run_dir.glob("checkpoint_*"), reverse=True):  # names carry the report time
        try:
            state = torch.load(d / STATE_FILE, map_location="cpu", weights_only=True)
        except Exception:  # missing or truncated: try the previous one
            continue
        if isinstance(state, dict):
            return state
    return None


def remove_interrupted_work(out: Path) -> int:
    """Remove what an earlier attempt of the run cut short left in ``out``: temporaries of its atomic
    writes and its recovery-state staging folders (the attempt that continues the run writes those
    again); returns how many."""
    removed = remove_interrupted_writes(out, _WORKER_OUTPUTS)
    for d in out.glob(f"{_STAGING}*"):
        if d.is_dir() and not d.is_symlink():
            shutil.rmtree(d, ignore_errors=True)
            removed += 1
    return removed


def fit_run(
    cfg: TrainConfig,
    data_ref: Any,
    out: Path,
    *,
    name: str,
    storage: Path,
    use_gpu: bool,
    cpus_per_worker: float,
    threads: int,
    max_failures: int,
    callbacks: list[Any] | None = None,
) -> None:
    """Run ``train_worker`` on ``cfg.workers`` Ray Train workers; blocks until the run ends.

    Args:
        data_ref: an object ref of the :class:`TrainData` (put once, shared by every worker).
        name, storage: the Ray Train run; the same pair resumes an interrupted run.
        callbacks: Ray Train callbacks (a sweep trial passes Tune's ``TuneReportCallback``).

    Raises:
        TrainingError: the workers failed more than ``max_failures`` times (first line of the cause).
    """
    remove_interrupted_work(out)
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    trainer = TorchTrainer(
        _worker_loop,
        train_loop_config={
            "config": cfg,
            "kinds": plugin_kinds(cfg.encoder),
            "data": data_ref,
            "output_dir": str(out),
            "threads": threads,
            "run_dir": str(storage / name),
        },
        scaling_config=ScalingConfig(
            num_workers=cfg.workers, use_gpu=use_gpu, resources_per_worker={"CPU": float(cpus_per_worker)}
        ),
        run_config=RunConfig(
            name=name,
            storage_path=str(storage),
            failure_config=FailureConfig(  # type: ignore[call-arg]  # V2 field; the stubs are V1
                max_failures=max_failures, controller_failure_limit=3
            ),
            checkpoint_config=CheckpointConfig(num_to_keep=1),
            callbacks=callbacks or [],
        ),
    )
    try:
        trainer.fit()
    except CrucibleError:
        raise
    except Exception as e:  # Ray wraps worker errors; report the first line of the root cause
        raise TrainingError(f"training failed: {root_message(e)}") from e


def root_message(e: BaseException) -> str:
    """The last line of the innermost cause: what actually went wrong."""
    while e.__cause__ is not None:
        e = e.__cause__
    text = str(e).strip().splitlines()
    return text[-1] if text else type(e).__name__
