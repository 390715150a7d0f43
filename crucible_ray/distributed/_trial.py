"""What runs inside one Tune trial of a sweep: the function trainable, the resources Tune reserves
for it, and the two ways it trains (the loop in the trial itself for one worker, a Ray Train run for
several). The driver's side, building the Tuner and collecting the results, is ``_sweep.py``.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from crucible_ray.distributed._fit import fit_run, recovery_state, remove_interrupted_work, root_message, state_reporter
from crucible_ray.distributed._resources import TRIAL_CPU, TrialPlan
from crucible_ray.encoders import adopt_kinds
from crucible_ray.sweeps import TRIALS_DIR, SweepSpace, completed_boards, resolve_trial, start_trial, write_trial_status

__all__ = ["EXPERIMENT", "run_trial", "trial_resources"]

EXPERIMENT = "tune"
"""The Tune experiment's folder in a sweep's output folder."""


def run_trial(config: dict[str, Any], data: list[Any], setup: dict[str, Any]) -> None:
    """The Tune function trainable: one training run on Ray Train, its reports forwarded to Tune."""
    from ray.tune.integration.ray_train import TuneReportCallback

    adopt_kinds(setup.get("kinds", ()))
    sp: SweepSpace = setup["space"]
    plan: TrialPlan = setup["plan"]
    out = Path(setup["output_dir"])
    trial = resolve_trial(config, sp)
    key = trial.key
    trial_dir = out / TRIALS_DIR / key
    if _replay_if_complete(trial_dir, sp.steps):
        return  # finished before a driver crash that Tune's last snapshot did not see
    start_trial(trial_dir, trial, sp.steps)
    t0 = time.perf_counter()
    cfg = sp.train_config(trial.ratio, trial.seed, trial.params).model_copy(update={"use_gpu": plan.use_gpu})
    storage = out / "ray_train"
    if plan.workers == 1:
        try:
            _train_in_trial(cfg, data[0], trial_dir, plan, out / EXPERIMENT)
        except Exception as e:
            write_trial_status(trial_dir, "failed", root_message(e), round(time.perf_counter() - t0, 2))
            raise
        write_trial_status(trial_dir, "complete", None, round(time.perf_counter() - t0, 2))
        return
    try:
        fit_run(
            cfg,
            data[0],
            trial_dir,
            name=key,
            storage=storage,
            use_gpu=plan.use_gpu,
            cpus_per_worker=plan.cpus_per_worker,
            threads=plan.threads if not plan.use_gpu else 0,
            max_failures=0,  # Tune retries the whole trial, which resumes from the run's last checkpoint
            callbacks=[TuneReportCallback()],
        )
    except Exception as e:
        write_trial_status(trial_dir, "failed", root_message(e), round(time.perf_counter() - t0, 2))
        raise
    write_trial_status(trial_dir, "complete", None, round(time.perf_counter() - t0, 2))
    shutil.rmtree(storage / key, ignore_errors=True)  # the recovery state is not needed once the trial is done


def trial_resources(plan: TrialPlan) -> dict[str, float]:
    """What Tune reserves per trial: a one-worker trial trains in the trial itself, so it holds its
    worker's CPUs (and GPU); a bigger one only a sliver for the function that drives its Ray Train run."""
    if plan.workers == 1:
        res = {"cpu": round(TRIAL_CPU + plan.cpus_per_worker, 2)}
        if plan.use_gpu:
            res["gpu"] = plan.gpus_per_worker
        return res
    return {"cpu": TRIAL_CPU}


def _train_in_trial(cfg: Any, data_ref: Any, trial_dir: Path, plan: TrialPlan, experiment: Path) -> None:
    """Run the training loop here, in the Tune trial: each eval point and its recovery state go to Tune,
    and a retried trial resumes from the last one Tune kept.

    Tune hands back only checkpoints its driver had recorded; one the trial had saved just before a
    stop (SIGTERM, a killed driver) is still in the trial's folder of the experiment, and the newest
    loadable one there is taken instead (as Ray Train runs do)."""
    import ray
    import torch
    from ray import tune

    from crucible_ray.training import WorkerContext, train_worker

    remove_interrupted_work(trial_dir)
    data = ray.get(data_ref)
    if not plan.use_gpu and plan.threads:
        torch.set_num_threads(plan.threads)
    device = torch.device("cuda" if plan.use_gpu and torch.cuda.is_available() else "cpu")
    worker = WorkerContext(
        rank=0,
        world_size=1,
        device=device,
        resume=recovery_state(tune.get_checkpoint(), experiment / Path(tune.get_context().get_trial_dir()).name),
        report=state_reporter(tune.report, tune.Checkpoint, trial_dir),
    )
    train_worker(cfg, data, trial_dir, worker)


def _replay_if_complete(trial_dir: Path, steps: tuple[int, ...]) -> bool:
    """Report a finished trial's milestones to Tune from disk instead of training it again."""
    from ray import tune

    boards = completed_boards(trial_dir, steps)
    if boards is None:
        return False
    for board in boards:
        metrics = {k: v for k, v in board.flat_metrics().items() if v is not None}
        tune.report({"step": board.step, **metrics})
    return True
