"""``train``: one training run on Ray Train (``TorchTrainer``), from a 1-CPU laptop to N GPUs.

The driver validates the inputs and builds the frozen-backbone feature cache, puts the data in the
object store once, and runs :func:`crucible_ray.training.train_worker` on every worker. Rank 0 reports a
recovery state at each eval point; Ray Train keeps the latest, and a failed worker group restarts from
it (``FailureConfig(max_failures)``). The run's storage folder is named by the config's hash, so
re-running an interrupted ``train`` with the same arguments continues from its last eval point.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crucible_ray._logging import get_logger
from crucible_ray.config import Ratio
from crucible_ray.data import check_manifest_kind, check_outputs, read_json_object
from crucible_ray.distributed._fit import fit_run
from crucible_ray.distributed._progress import ProgressWatcher
from crucible_ray.distributed._session import cluster_cpus_gpus, ray_session
from crucible_ray.errors import ConfigError, CrucibleError, TrainingError
from crucible_ray.guardrails import GuardrailConfig, enforce_dilution_floor
from crucible_ray.provenance import build_manifest, content_key, write_manifest
from crucible_ray.scoreboard import Scoreboard
from crucible_ray.tracking import (
    TAG_KIND,
    TAG_OUTPUT,
    MlflowRuns,
    MlflowTarget,
    best_effort,
    log_training_outputs,
    mlflow_run,
    run_params,
)
from crucible_ray.training import TB_DIR, TrainConfig, prepare_training
from crucible_ray.worlds import world_ratio_pools

log = get_logger(__name__)


@dataclass(frozen=True)
class TrainResult:
    """What a finished run left in ``output_dir``."""

    output_dir: Path
    final: Scoreboard
    milestones: dict[int, Scoreboard]  # step -> scoreboard at each milestone
    manifest: dict[str, Any]

    @property
    def checkpoint(self) -> Path:
        return self.output_dir / "checkpoint_final.pt"


def run_key(config: TrainConfig, inputs: dict[str, Any]) -> str:
    """A short hash of everything that decides the run (the Ray Train run name)."""
    doc = {"config": config.model_dump(mode="json"), "inputs": {k: v["sha256"] for k, v in sorted(inputs.items())}}
    return content_key(doc, 16)


def train(
    data: str | Path,
    *,
    output_dir: str | Path,
    ratio: str | Ratio | None = None,
    steps: int | str | list[int] | None = None,
    seed: int | None = None,
    encoder: str | dict[str, Any] | None = None,
    workers: int | None = None,
    use_gpu: bool | None = None,
    config: TrainConfig | None = None,
    address: str | None = None,
    max_failures: int = 3,
    restart: bool = False,
    guardrails: GuardrailConfig | None = None,
    mlflow_uri: str | None = None,
    mlflow_experiment: str | None = None,
    **options: Any,
) -> TrainResult:
    """Train an encoder on a world's pools by a ratio, evaluating at every milestone.

    Args:
        data: the world folder (``crucible-ray data build``; organic/expansion pools from ``mine``/``expand``).
        output_dir: where checkpoints, scoreboards, TensorBoard logs and the manifest go.
        ratio: the pool mix, a :class:`~crucible_ray.config.Ratio` or anything :meth:`Ratio.parse` reads
            (``"75_15_10"``, ``{"legacy": 75, ...}``), parsed once into the run's :class:`TrainConfig`.
        steps, seed, encoder, workers: the common options (see :class:`TrainConfig` for all;
            any other field may be passed as a keyword, or a whole ``config``).
        use_gpu: train on GPUs; default: when the Ray cluster has any.
        address: a Ray cluster (default: ``RAY_ADDRESS`` or a new local instance).
        max_failures: worker-group restarts allowed before the run fails.
        restart: discard an interrupted run's recovery state instead of continuing from it.
        guardrails: in ``block`` mode a ratio below the dilution floor is refused before anything starts
            (``warn``, the default, logs it).
        mlflow_uri, mlflow_experiment: also log the run to MLflow (docs/tracking.md): its config and the
            world's miner settings as params, every milestone's figures at their step, the final
            checkpoint, scoreboards and manifest as artifacts. Needs the ``mlflow`` extra.

    Returns:
        A :class:`TrainResult` with the final and per-milestone scoreboards.

    Raises:
        ConfigError / DataError: bad options or inputs, before any training starts.
        GuardrailViolation: block mode refused the ratio.
        TrainingError: the workers failed more than ``max_failures`` times.

    Example:
        >>> res = train("worlds/synthetic", output_dir="runs/a", ratio="75_15_10", steps=[200, 400])  # doctest: +SKIP
        >>> res.final.retention  # doctest: +SKIP
    """
    if isinstance(ratio, str) and not Ratio.is_named(ratio) and "pools" not in options and config is None:
        options["pools"] = world_ratio_pools(data)  # 70_30 on a world of its own pools: in their declared order
    common = dict(ratio=ratio, steps=steps, seed=seed, encoder=encoder, workers=workers)
    given = {k: v for k, v in common.items() if v is not None}
    if config is not None:
        cfg = TrainConfig.from_options(**{**dict(config), **given, **options})
    else:
        cfg = TrainConfig.from_options(**given, **options)
    gcfg = guardrails or GuardrailConfig()
    if gcfg.mode == "block":
        enforce_dilution_floor(cfg.ratio, gcfg)  # refuse before any work
    tracker = MlflowTarget.from_options(mlflow_uri, mlflow_experiment)
    check_outputs(outputs={}, output_dirs={"--output-dir": output_dir}, folders={"--data": data})
    check_manifest_kind(output_dir, "train", option="--output-dir")
    prepared = prepare_training(data, cfg)
    if gcfg.mode == "warn":
        enforce_dilution_floor(cfg.ratio, gcfg)  # warn once the inputs are known to be good
    runs = tracker.open() if tracker is not None else None  # a bad URI fails here, before anything is touched
    out = Path(output_dir).resolve()
    key = run_key(cfg, prepared.inputs)
    storage = out / "ray_train"
    earlier = _earlier_run(out, runs) if runs is not None and not restart and (storage / key).exists() else None
    out.mkdir(parents=True, exist_ok=True)
    if restart:
        shutil.rmtree(storage / key, ignore_errors=True)
    if not (storage / key).exists():
        _clear_outputs(out)  # a fresh run: nothing from an earlier run may be mistaken for this one's
    else:
        log.info("continuing the interrupted run %s from its last eval point (--restart starts over)", key)
    manifest = build_manifest(
        "train",
        status="running",
        run_key=key,
        config=cfg.model_dump(mode="json"),
        seed=cfg.seed,
        data=str(Path(data).resolve()),
        inputs=prepared.inputs,
        feature_cache=len(prepared.data.features) if prepared.data.features is not None else None,
    )
    t0 = time.perf_counter()
    if runs is None:
        write_manifest(out, manifest)  # also removes the temporary a driver killed while writing it left
        gpu = _fit(cfg, prepared.data, out, key, storage, address, use_gpu, max_failures)
        return _finish(out, cfg, manifest, t0, storage, key, gpu)
    params = run_params(manifest["config"], Path(data))
    tags = {TAG_KIND: "train", TAG_OUTPUT: str(out), "crucible.run_key": key}
    with mlflow_run(runs, out.name, params=params, tags=tags, resume_id=earlier) as run_id:
        manifest["mlflow"] = {**runs.target.to_dict(), "run_id": run_id}
        write_manifest(out, manifest)
        logged: set[int] = set()
        if run_id == earlier:  # the continued run's MLflow run: what it logged before stays, once
            with best_effort("read the continued run's milestones"):
                logged |= runs.logged_steps(run_id)
            log.info("continuing MLflow run %s", run_id)

        def log_board(board: Scoreboard) -> None:
            if (board.step or 0) not in logged:
                runs.log_board(run_id, board)
                logged.add(board.step or 0)

        gpu = _fit(cfg, prepared.data, out, key, storage, address, use_gpu, max_failures, on_board=log_board)
        result = _finish(out, cfg, manifest, t0, storage, key, gpu)
        with best_effort("log the run's checkpoint and scoreboards"):  # the run is done: this cannot undo it
            log_training_outputs(runs, run_id, out, logged_steps=logged)
    log.info("logged to MLflow: %s", runs.run_url(run_id))
    return result


def _earlier_run(out: Path, runs: MlflowRuns) -> str | None:
    """The MLflow run an interrupted run in ``out`` logged to, when it logged to the same store and
    experiment (a continued run goes on in it)."""
    manifest = out / "manifest.json"
    try:
        prev = read_json_object(manifest).get("mlflow") if manifest.is_file() else None
    except CrucibleError:
        return None
    if not isinstance(prev, dict) or not prev.get("run_id"):
        return None
    if (prev.get("uri"), prev.get("experiment")) != (runs.target.shown_uri, runs.target.experiment):
        return None
    return str(prev["run_id"])


def _fit(
    cfg: TrainConfig,
    data: Any,
    out: Path,
    key: str,
    storage: Path,
    address: str | None,
    use_gpu: bool | None,
    max_failures: int,
    on_board: Callable[[Scoreboard], None] | None = None,
) -> bool:
    """Run the training on Ray; returns whether it used GPUs."""
    with ray_session(address):
        import ray

        cpus, gpus = cluster_cpus_gpus()
        gpu = bool(gpus) if use_gpu is None else use_gpu
        if gpu and gpus < cfg.workers:
            raise ConfigError(f"{cfg.workers} GPU workers asked for but the Ray cluster has {gpus:g} GPUs")
        per_worker = max(1.0, (cpus - 1) // cfg.workers) if cpus > cfg.workers else max(0.1, cpus / (cfg.workers + 1))
        watcher = ProgressWatcher(out, cfg.max_step, on_board=on_board)
        watcher.start()
        try:
            fit_run(
                cfg,
                ray.put(data),
                out,
                name=key,
                storage=storage,
                use_gpu=gpu,
                cpus_per_worker=float(per_worker),
                threads=max(1, int(per_worker)) if not gpu else 0,
                max_failures=max_failures,
            )
        finally:
            watcher.stop()
    return gpu


def _finish(
    out: Path, cfg: TrainConfig, manifest: dict[str, Any], t0: float, storage: Path, key: str, gpu: bool
) -> TrainResult:
    final_path = out / "scoreboard_final.json"
    if not final_path.is_file():
        raise TrainingError(f"training ended without {final_path}")
    final = Scoreboard.read(final_path)
    milestones = {s: Scoreboard.read(out / f"scoreboard_step_{s}.json") for s in cfg.steps}
    manifest.update(
        status="complete",
        wall_seconds=round(time.perf_counter() - t0, 2),
        use_gpu=gpu,
        milestones={
            str(s): {
                "retention": b.retention,
                "generalization": b.generalization,
                "scoreboard": f"scoreboard_step_{s}.json",
                "checkpoint": f"checkpoint_step_{s}.pt",
            }
            for s, b in milestones.items()
        },
        final={"retention": final.retention, "generalization": final.generalization},
    )
    write_manifest(out, manifest)
    shutil.rmtree(storage / key, ignore_errors=True)  # the recovery state is not needed once the run is complete
    with contextlib.suppress(OSError):
        storage.rmdir()
    return TrainResult(out, final, milestones, manifest)


def _clear_outputs(out: Path) -> None:
    for pattern in ("checkpoint_step_*.pt", "checkpoint_final.pt", "scoreboard_step_*.json", "scoreboard_final.json"):
        for p in out.glob(pattern):
            p.unlink()
    shutil.rmtree(out / TB_DIR, ignore_errors=True)
