"""``sweep``: a grid or an Optuna search of training runs on Ray Tune, Ray Train inside each trial.

A trial is one (ratio, seed, params) run trained to the largest milestone and evaluated at each one
(the Train V2 pattern: a ``TorchTrainer`` inside a Tune function trainable, ``TuneReportCallback`` in
its ``RunConfig``). Each trial's Ray Train run is named by the trial's stable id, so a trial Tune
retries (``tune.FailureConfig``) or a sweep resumed with ``resume=True`` continues from the trial's last
eval point. ``results.parquet`` is rebuilt from the trial folders on disk after every fit.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd

from crucible_ray._logging import get_logger
from crucible_ray.config import Ratio
from crucible_ray.data import check_manifest_kind, check_outputs, remove_stale_temporaries, write_json
from crucible_ray.distributed._fit import fit_run, root_message
from crucible_ray.distributed._progress import ProgressWatcher
from crucible_ray.distributed._resources import TRIAL_CPU, TrialPlan, plan_trials
from crucible_ray.distributed._session import cluster_cpus_gpus, ray_session
from crucible_ray.errors import ConfigError
from crucible_ray.guardrails import GuardrailConfig, enforce_dilution_floor
from crucible_ray.provenance import versions
from crucible_ray.scoreboard import Scoreboard
from crucible_ray.sweeps import (
    TRIALS_DIR,
    SweepSpace,
    collect_results,
    grid_space,
    load_space,
    trial_key,
    write_results,
)
from crucible_ray.sweeps._results import (
    STATUS_FILE,
    TRIAL_FILE,
    trial_status,
    write_trial_meta,
    write_trial_status,
)
from crucible_ray.sweeps._space import parse_ints
from crucible_ray.training import TrainConfig, prepare_training

log = get_logger(__name__)

EXPERIMENT = "tune"


def sweep(
    data: str | Path,
    *,
    output_dir: str | Path,
    space: SweepSpace | str | Path | None = None,
    ratios: str | list[str] | None = None,
    seeds: str | list[int] | None = None,
    steps: str | list[int] | None = None,
    resume: bool = False,
    address: str | None = None,
    use_gpu: bool | None = None,
    max_concurrent_trials: int | None = None,
    max_failures: int = 2,
    guardrails: GuardrailConfig | None = None,
    **train_options: Any,
) -> pd.DataFrame:
    """Run a sweep and return its results table (also written to ``output_dir/results.parquet``).

    Args:
        data: the world folder.
        output_dir: the sweep folder: ``tune/`` (the Tune experiment), ``trials/<id>/`` (checkpoints,
            scoreboards, TensorBoard), ``results.parquet``, ``manifest.json``.
        space: a :class:`SweepSpace`, a YAML path or a preset name (``seed_style``); or give
            ``ratios``, ``seeds`` and ``steps`` for a ratio grid.
        resume: continue the interrupted sweep in ``output_dir`` (finished trials are not re-run).
        address: a Ray cluster (default: ``RAY_ADDRESS`` or a new local instance).
        use_gpu: train on GPUs (default: when the cluster has them).
        max_concurrent_trials: a cap below what the cluster fits.
        max_failures: retries of a crashed trial (from its last eval point) before it is recorded as failed.
        guardrails: in ``block`` mode, a ratio below the dilution floor stops the sweep before it starts.
        train_options: training options shared by every trial (``workers``, ``batch_size``, ...).

    Returns:
        One row per (trial, milestone step): see :mod:`crucible_ray.analysis`. ``df.attrs`` holds
        ``output_dir`` and ``manifest``.

    Raises:
        ConfigError / DataError: a bad space, options or inputs (before Ray starts); an existing sweep in
            ``output_dir`` without ``resume``. GuardrailViolation: block mode refused a ratio.
        KeyboardInterrupt: Ctrl-C (SIGINT) stopped the sweep; Tune saved its state first, and the
            results so far and the manifest (``status: interrupted``) are written.
    """
    sp = _space(space, ratios, seeds, steps, train_options)
    gcfg = guardrails or GuardrailConfig()
    if gcfg.mode == "block":
        _check_floor(sp, gcfg)  # refuse before any work
    check_outputs(outputs={}, output_dirs={"--output-dir": output_dir}, folders={"--data": data})
    check_manifest_kind(output_dir, "sweep", option="--output-dir")
    out = Path(output_dir).resolve()
    exp = out / EXPERIMENT
    if exp.exists() and not resume:
        raise ConfigError(f"{out} already holds a sweep; pass --resume to continue it, or choose another --output-dir")
    union = _union_config(sp)
    prepared = prepare_training(data, union)
    if gcfg.mode == "warn":
        _check_floor(sp, gcfg)  # warn once the inputs are known to be good
    out.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {
        "kind": "sweep",
        "status": "running",
        "space": sp.model_dump(mode="json"),
        "pools": list(sp.pools),
        "data": str(Path(data).resolve()),
        "inputs": prepared.inputs,
        "guardrails": gcfg.model_dump(),
        "versions": versions(),
    }
    remove_stale_temporaries(out / "manifest.json")  # a driver killed while writing it leaves one
    write_json(out / "manifest.json", manifest)
    log.info("sweep %s", sp.describe())
    t0 = time.perf_counter()
    with ray_session(address):
        import ray
        from ray import tune

        cpus, gpus = cluster_cpus_gpus()
        workers = int(sp.train.get("workers", 1))
        plan = plan_trials(cpus, gpus, workers=workers, use_gpu=use_gpu, max_concurrent=max_concurrent_trials)
        log.info("resources: %s", plan.describe())
        setup = {"space": sp.model_dump(mode="json"), "output_dir": str(out), "plan": plan.__dict__}
        trainable = tune.with_resources(
            tune.with_parameters(_trial, data=[ray.put(prepared.data)], setup=setup), {"cpu": TRIAL_CPU}
        )
        if resume and exp.exists() and tune.Tuner.can_restore(str(exp)):
            log.info("resuming the sweep in %s (finished trials are kept)", exp)
            tuner = tune.Tuner.restore(str(exp), trainable=trainable, resume_errored=True)
        else:
            if resume:
                log.info("nothing to resume in %s; starting the sweep", out)
            tuner = _new_tuner(trainable, sp, plan, out, max_failures)
        watcher = ProgressWatcher(out / TRIALS_DIR, sp.steps[-1], pattern="*/scoreboard_step_*.json")
        watcher.start()
        sigint = signal.getsignal(signal.SIGINT)
        try:
            grid = tuner.fit()
        finally:
            watcher.stop()
            stopped = _tune_was_interrupted(sigint)
        for i in range(len(grid)):
            result = grid[i]
            if result.error is not None:
                _record_failure(out, sp, result.config or {}, root_message(result.error))
    with contextlib.suppress(OSError):
        (out / "ray_train").rmdir()  # empty once every trial finished
    table = collect_results(out)
    write_results(table, out)
    by_trial = table.groupby("trial_id")["status"].first() if not table.empty else pd.Series(dtype=str)
    failed = sorted(by_trial[by_trial == "failed"].index)
    finished = int(by_trial.isin(["complete", "failed"]).sum())
    expected = len(sp.trials()) if sp.grid is not None else sp.optuna.trials  # type: ignore[union-attr]
    # Tune takes a SIGINT (Ctrl-C; the CLI turns SIGTERM into one) as a request to stop: it saves its
    # experiment, stops the running trials and returns as if it had finished. Every trial Tune saw end
    # has its status on disk (complete, or failed), so a trial without one was stopped; a trial the stop
    # cut short may also have recorded a failure, which --resume retries.
    interrupted = stopped or finished < expected
    status = "interrupted" if interrupted else "complete"
    manifest.update(
        status=status,
        finished_trials=finished,
        plan=plan.__dict__,
        trials=int(table["trial_id"].nunique()) if not table.empty else 0,
        failed_trials=failed,
        wall_seconds=round(time.perf_counter() - t0, 2),
    )
    write_json(out / "manifest.json", manifest)
    if interrupted:  # the interrupt Tune consumed: the caller stops as on any other Ctrl-C
        raise KeyboardInterrupt(
            f"the sweep stopped with {finished} of {expected} trials finished; continue it with resume=True (--resume)"
        )
    table.attrs.update(output_dir=str(out), manifest=manifest)
    return table


def _tune_was_interrupted(previous: Any) -> bool:
    """Whether a SIGINT stopped ``Tuner.fit`` (Tune then returns as if the sweep had ended).

    In the main thread ``fit`` installs a SIGINT handler of its own and puts ``previous`` back only when
    a SIGINT arrives; otherwise its handler stays. So its handler still in place means no interrupt; it
    is then replaced by ``previous`` (a later Ctrl-C must not be swallowed).
    """
    if threading.current_thread() is not threading.main_thread():
        return False
    if os.environ.get("TUNE_DISABLE_SIGINT_HANDLER", "0") != "0":  # Tune installed no handler
        return False
    now = signal.getsignal(signal.SIGINT)
    if getattr(now, "__name__", "") == "signal_interrupt_tune_run":
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
        return False
    return now is previous


def _space(
    space: SweepSpace | str | Path | None,
    ratios: str | list[str] | None,
    seeds: str | list[int] | None,
    steps: str | list[int] | None,
    train_options: dict[str, Any],
) -> SweepSpace:
    options = {k: v for k, v in train_options.items() if v is not None}
    if space is None:
        if ratios is None or seeds is None or steps is None:
            raise ConfigError("a sweep needs a search space, or ratios, seeds and steps for a ratio grid")
        return grid_space(ratios, seeds, steps, train=options)
    sp = space if isinstance(space, SweepSpace) else load_space(space)
    if steps is not None or options:
        doc = sp.model_dump()
        if steps is not None:
            doc["steps"] = parse_ints(steps, "steps")
        doc["train"] = {**doc["train"], **options}
        sp = SweepSpace(**doc)
        sp.check()
    return sp


def _check_floor(sp: SweepSpace, cfg: GuardrailConfig) -> None:
    if sp.grid is not None:
        for r in sp.grid.ratio:
            enforce_dilution_floor(Ratio.parse(r, sp.pools), cfg)
    elif sp.optuna is not None and sp.optuna.legacy[0] / 100 < cfg.dilution_floor:
        low = sp.optuna.legacy[0]
        rest = [100 - low] + [0] * (len(sp.pools) - 2)
        enforce_dilution_floor(Ratio.parse([low, *rest], sp.pools), cfg)


def _union_config(sp: SweepSpace) -> TrainConfig:
    """A config whose ratio weights every pool some trial uses (what the driver must read once)."""
    used = set()
    if sp.grid is not None:
        for r in sp.grid.ratio:
            used |= {p for p, w in Ratio.parse(r, sp.pools).weights.items() if w > 0}
    else:
        used = set(sp.pools)
    share = [1 if p in used else 0 for p in sp.pools]
    percents = [100 // sum(share) * s for s in share]
    percents[share.index(1)] += 100 - sum(percents)
    return sp.train_config("_".join(map(str, percents)), sp.seed, {})


def _new_tuner(trainable: Any, sp: SweepSpace, plan: TrialPlan, out: Path, max_failures: int) -> Any:
    from ray import tune

    if sp.grid is not None:
        keys = [trial_key(t["ratio"], t["seed"], t["params"]) for t in sp.trials()]
        param_space: dict[str, Any] = {"trial": tune.grid_search(keys)}
        tune_config = tune.TuneConfig(max_concurrent_trials=plan.concurrency)
    else:
        from ray.tune.search.optuna import OptunaSearch

        assert sp.optuna is not None
        param_space = {}
        searcher = OptunaSearch(
            space=_OptunaSpace(sp),
            metric=["retention", "generalization"],
            mode=["max", "max"],
            sampler=_optuna_sampler(sp.optuna.sampler_seed),
        )
        tune_config = tune.TuneConfig(
            search_alg=searcher, num_samples=sp.optuna.trials, max_concurrent_trials=plan.concurrency
        )
    return tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune_config,
        run_config=tune.RunConfig(
            name=EXPERIMENT,
            storage_path=str(out),
            failure_config=tune.FailureConfig(max_failures=max_failures),
            verbose=0,
        ),
    )


def _optuna_sampler(seed: int) -> Any:
    import optuna

    return optuna.samplers.TPESampler(seed=seed)


class _OptunaSpace:
    """Optuna's define-by-run space: integer ratio parts summing to 100, then float params.

    A class rather than a closure: Tune pickles the searcher (with this space) in its experiment state.
    """

    def __init__(self, sp: SweepSpace) -> None:
        assert sp.optuna is not None
        self.pools = tuple(sp.pools)
        self.legacy = tuple(sp.optuna.legacy)
        self.params = {k: (r.low, r.high, r.log) for k, r in sp.optuna.params.items()}

    def __call__(self, trial: Any) -> None:
        left = 100 - trial.suggest_int(self.pools[0], self.legacy[0], self.legacy[1])
        for pool in self.pools[1:-1]:
            left -= trial.suggest_int(pool, 0, left)
        for name, (low, high, log) in self.params.items():
            trial.suggest_float(name, low, high, log=log)


def resolve_trial(config: dict[str, Any], sp: SweepSpace) -> tuple[str, int, dict[str, Any]]:
    """(ratio, seed, params) of a Tune trial config (a grid key, or Optuna's sampled values)."""
    if "trial" in config:
        for t in sp.trials():
            if trial_key(t["ratio"], t["seed"], t["params"]) == config["trial"]:
                return t["ratio"], t["seed"], t["params"]
        raise ConfigError(f"trial {config['trial']!r} is not in the search space {sp.name!r}")
    assert sp.optuna is not None
    parts = [int(config[p]) for p in sp.pools[:-1]]
    ratio = "_".join(map(str, [*parts, 100 - sum(parts)]))
    params = {k: float(config[k]) for k in sorted(sp.optuna.params)}
    return ratio, sp.seed, params


def _record_failure(out: Path, sp: SweepSpace, config: dict[str, Any], error: str) -> None:
    try:
        ratio, seed, params = resolve_trial(config, sp)
    except (ConfigError, KeyError):
        return
    trial_dir = out / TRIALS_DIR / trial_key(ratio, seed, params)
    if trial_status(trial_dir) == "complete":
        return
    write_trial_meta(trial_dir, _meta(trial_key(ratio, seed, params), ratio, seed, params, sp))
    write_trial_status(trial_dir, "failed", error, None)
    log.warning("trial %s failed: %s", trial_dir.name, error)


def _meta(key: str, ratio: str, seed: int, params: dict[str, Any], sp: SweepSpace) -> dict[str, Any]:
    return {"trial_id": key, "ratio": ratio, "seed": seed, "params": params, "steps": list(sp.steps)}


def _trial(config: dict[str, Any], data: list[Any], setup: dict[str, Any]) -> None:
    """The Tune function trainable: one training run on Ray Train, its reports forwarded to Tune."""
    from ray.tune.integration.ray_train import TuneReportCallback

    sp = SweepSpace(**setup["space"])
    plan = TrialPlan(**setup["plan"])
    out = Path(setup["output_dir"])
    ratio, seed, params = resolve_trial(config, sp)
    key = trial_key(ratio, seed, params)
    trial_dir = out / TRIALS_DIR / key
    if _replay_if_complete(trial_dir, sp.steps):
        return  # finished before a driver crash that Tune's last snapshot did not see
    for name in (TRIAL_FILE, STATUS_FILE):  # what an attempt killed while writing them left
        remove_stale_temporaries(trial_dir / name)
    write_trial_meta(trial_dir, _meta(key, ratio, seed, params, sp))
    write_trial_status(trial_dir, "running", None, None)
    t0 = time.perf_counter()
    cfg = sp.train_config(ratio, seed, params)
    cfg = TrainConfig(**{**cfg.model_dump(), "use_gpu": plan.use_gpu})
    storage = out / "ray_train"
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


def _replay_if_complete(trial_dir: Path, steps: tuple[int, ...]) -> bool:
    """Report a finished trial's milestones to Tune from disk instead of training it again."""
    from ray import tune

    if trial_status(trial_dir) != "complete":
        return False
    boards = [trial_dir / f"scoreboard_step_{s}.json" for s in steps]
    if not all(b.is_file() for b in boards):
        return False
    for path in boards:
        board = Scoreboard.read(path)
        metrics = {k: v for k, v in board.flat_metrics().items() if v is not None}
        tune.report({"step": board.step, **metrics})
    return True
