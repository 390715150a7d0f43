"""``sweep``: a grid or an Optuna search of training runs on Ray Tune, Ray Train inside each trial.

A trial is one (ratio, seed, params) run trained to the largest milestone and evaluated at each one.
A one-worker trial runs the training loop in the Tune function itself, reporting each eval point and
its recovery state to Tune (``tune.report`` with a checkpoint): no Ray Train controller or worker to
start, which was most of a trial's fixed cost. A trial of several workers runs a ``TorchTrainer``
inside the Tune function (the Train V2 pattern, ``TuneReportCallback`` in its ``RunConfig``), its Ray
Train run named by the trial's stable id. Either way a trial Tune retries (``tune.FailureConfig``) or a
sweep resumed with ``resume=True`` continues from the trial's last eval point. ``results.parquet`` is
rebuilt from the trial folders on disk after every fit.

Only the Tune wiring lives here; what a sweep runs (spaces, trials, the Optuna define-by-run space, the
trial records and the results table) is :mod:`crucible_ray.sweeps`, testable without Ray.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from crucible_ray._logging import get_logger
from crucible_ray.analysis import RESULTS_FILE
from crucible_ray.data import check_manifest_kind, check_outputs, read_json_object
from crucible_ray.distributed._fit import root_message
from crucible_ray.distributed._progress import ProgressWatcher
from crucible_ray.distributed._resources import TrialPlan, plan_trials
from crucible_ray.distributed._session import cluster_cpus_gpus, largest_node_cpus, ray_session
from crucible_ray.distributed._trial import EXPERIMENT, run_trial, trial_resources
from crucible_ray.encoders import plugin_kinds
from crucible_ray.errors import ConfigError
from crucible_ray.guardrails import GuardrailConfig, enforce_dilution_floor
from crucible_ray.provenance import build_manifest, write_manifest
from crucible_ray.sweeps import (
    GRID_PARAM,
    TRIALS_DIR,
    OptunaSearchSpace,
    SweepResult,
    SweepSpace,
    collect_results,
    expected_trials,
    floor_ratios,
    grid_keys,
    optuna_sampler,
    record_failed_trial,
    resolve_trial,
    space_with,
    trial_outcomes,
    union_config,
    write_results,
)
from crucible_ray.tracking import (
    TAG_KIND,
    TAG_OUTPUT,
    MlflowRuns,
    MlflowTarget,
    best_effort,
    log_sweep_outcome,
    sweep_params,
)
from crucible_ray.training import prepare_training
from crucible_ray.worlds import world_ratio_pools

log = get_logger(__name__)

# A sweep started before the trial function moved to ``_trial.py`` pickled it into Tune's experiment
# state under this module's name: ``--resume`` of such a sweep finds it here.
_trial = run_trial


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
    pools: Sequence[str] | None = None,
    callbacks: Sequence[Any] | None = None,
    mlflow_uri: str | None = None,
    mlflow_experiment: str | None = None,
    baseline: str | None = None,
    wandb_project: str | None = None,
    **train_options: Any,
) -> SweepResult:
    """Run a sweep and return its results (the table is also written to ``output_dir/results.parquet``).

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
        pools: the pool names a ratio grid's ratios are read against, in order (for worlds with their
            own pools, e.g. ``["legacy", "support", "organic"]``); a space file names its own.
        callbacks: Ray Tune callbacks (``ray.tune.Callback``, e.g. Ray's MLflow or W&B logger callbacks),
            added to the Tune run's ``RunConfig``: each trial's reports reach them as Tune's own do
            (docs/sweeps.md "Tune's own view"). A resumed sweep keeps the callbacks it started with.
        mlflow_uri, mlflow_experiment: also log the sweep to MLflow (docs/tracking.md): a parent run with
            the space as params, one nested run per trial (logged live through Ray Tune's MLflow
            callback), and at the end the results, Pareto table, guardrail report and HTML report, with
            the recommended config tagged. A resumed sweep logs where it started. Needs the ``mlflow`` extra.
        baseline: the Pareto baseline of what is logged to MLflow (default: the space's, else the most
            legacy ratio).
        wandb_project: also log each trial to Weights & Biases through Ray Tune's W&B callback, one run
            per trial grouped by the sweep, under ``output_dir/wandb/``; ``WANDB_MODE=offline`` keeps it
            there for ``wandb sync``. Needs the ``wandb`` extra.
        train_options: training options shared by every trial (``workers``, ``batch_size``, ...).

    Returns:
        A :class:`~crucible_ray.sweeps.SweepResult`: ``table`` (one row per (trial, milestone step), see
        :mod:`crucible_ray.analysis`), ``output_dir``, ``manifest`` and ``tune_results`` (Tune's
        ``ResultGrid`` of this run).

    Raises:
        ConfigError / DataError: a bad space, options or inputs (before Ray starts); an existing sweep in
            ``output_dir`` without ``resume``. GuardrailViolation: block mode refused a ratio.
        KeyboardInterrupt: Ctrl-C (SIGINT) stopped the sweep; Tune saved its state first, and the
            results so far and the manifest (``status: interrupted``) are written.
    """
    if space is None and not pools:
        pools = world_ratio_pools(data)  # positional ratios on a world of its own pools: its declared order
    sp = space_with(space, ratios=ratios, seeds=seeds, steps=steps, train=train_options, pools=pools)
    gcfg = guardrails or GuardrailConfig()
    if gcfg.mode == "block":
        _check_floor(sp, gcfg)  # refuse before any work
    check_outputs(outputs={}, output_dirs={"--output-dir": output_dir}, folders={"--data": data})
    check_manifest_kind(output_dir, "sweep", option="--output-dir")
    out = Path(output_dir).resolve()
    exp = out / EXPERIMENT
    if exp.exists() and not resume:
        raise ConfigError(f"{out} already holds a sweep; pass --resume to continue it, or choose another --output-dir")
    if exp.exists() and (callbacks or wandb_project):
        raise ConfigError(
            "callbacks= and --wandb-project apply to a new sweep: a resumed sweep keeps the callbacks it "
            "started with (Tune restores them)"
        )
    tracker, parent = _tracking_of(out, MlflowTarget.from_options(mlflow_uri, mlflow_experiment), resume=exp.exists())
    prepared = prepare_training(data, union_config(sp))
    if gcfg.mode == "warn":
        _check_floor(sp, gcfg)  # warn once the inputs are known to be good
    if wandb_project:
        callbacks = [*(callbacks or ()), _wandb_logger(wandb_project, sp, out, Path(data))]
    runs = tracker.open() if tracker is not None else None  # a bad URI fails here, before Ray starts
    if runs is not None:
        if parent is None:
            parent = runs.start(out.name, params=sweep_params(sp), tags={TAG_KIND: "sweep", TAG_OUTPUT: str(out)})
        elif runs.reopen(parent):
            runs.end_children(parent, "KILLED")  # what a driver that died left RUNNING; resumed trials reopen theirs
        else:
            raise ConfigError(
                f"{out} logs to MLflow run {parent} in {runs.target.shown_uri}, which is gone or deleted: restore "
                f"it (mlflow runs restore --run-id {parent}) or start a new sweep"
            )
        callbacks = [*(callbacks or ()), _trial_logger(runs, parent, sp, out, Path(data))]
    out.mkdir(parents=True, exist_ok=True)
    manifest = build_manifest(
        "sweep",
        status="running",
        space=sp.model_dump(mode="json"),
        pools=list(sp.pools),
        data=str(Path(data).resolve()),
        inputs=prepared.inputs,
        guardrails=gcfg.model_dump(),
    )
    if runs is not None:
        manifest["mlflow"] = {**runs.target.to_dict(), "run_id": parent}
    write_manifest(out, manifest)  # also removes the temporary a driver killed while writing it left
    log.info("sweep %s", sp.describe())
    try:
        result = _run(
            sp, prepared, out, manifest, resume, address, use_gpu, max_concurrent_trials, max_failures, callbacks
        )
    except BaseException as e:
        if runs is not None and parent is not None:  # the results so far; trials cut short end KILLED
            status = "KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED"
            with best_effort("log the sweep's results so far"):
                runs.log_files(parent, [out / RESULTS_FILE, out / "manifest.json"])
            with best_effort("end the sweep's runs"):
                runs.end_children(parent, "KILLED")
                runs.end(parent, status)
        raise
    if runs is not None and parent is not None:  # the sweep is done: logging its outcome cannot undo that
        with best_effort("log the sweep's outcome"):
            log_sweep_outcome(runs, parent, out, data=Path(data), guardrails=gcfg, baseline=baseline)
        with best_effort("end the sweep's run"):
            runs.end(parent, "FINISHED")
        log.info("logged to MLflow: %s", runs.run_url(parent))
    return result


def _run(
    sp: SweepSpace,
    prepared: Any,
    out: Path,
    manifest: dict[str, Any],
    resume: bool,
    address: str | None,
    use_gpu: bool | None,
    max_concurrent_trials: int | None,
    max_failures: int,
    callbacks: Sequence[Any] | None,
) -> SweepResult:
    """The Tune run of a validated sweep, and its results written."""
    exp = out / EXPERIMENT
    t0 = time.perf_counter()
    with ray_session(address):
        import ray
        from ray import tune

        cpus, gpus = cluster_cpus_gpus()
        workers = int(sp.train.get("workers", 1))
        plan = plan_trials(
            cpus,
            gpus,
            workers=workers,
            use_gpu=use_gpu,
            max_concurrent=max_concurrent_trials,
            node_cpus=largest_node_cpus(),
        )
        log.info("resources: %s", plan.describe())
        kinds = plugin_kinds(sp.train["encoder"]) if "encoder" in sp.train else ()  # kinds the driver registered
        setup = {"space": sp, "output_dir": str(out), "plan": plan, "kinds": kinds}  # Tune pickles these objects
        trainable = tune.with_resources(
            tune.with_parameters(run_trial, data=[ray.put(prepared.data)], setup=setup), trial_resources(plan)
        )
        if resume and exp.exists() and tune.Tuner.can_restore(str(exp)):
            log.info("resuming the sweep in %s (finished trials are kept)", exp)
            tuner = tune.Tuner.restore(str(exp), trainable=trainable, resume_errored=True)
        else:
            if resume:
                log.info("nothing to resume in %s; starting the sweep", out)
            tuner = _new_tuner(trainable, sp, plan, out, max_failures, callbacks or ())
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
    failed, finished = trial_outcomes(table)
    expected = expected_trials(sp)
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
    write_manifest(out, manifest)
    if interrupted:  # the interrupt Tune consumed: the caller stops as on any other Ctrl-C
        raise KeyboardInterrupt(
            f"the sweep stopped with {finished} of {expected} trials finished; continue it with resume=True (--resume)"
        )
    return SweepResult(table=table, output_dir=out, manifest=manifest, tune_results=grid)


def _tracking_of(out: Path, given: MlflowTarget | None, *, resume: bool) -> tuple[MlflowTarget | None, str | None]:
    """Where the sweep logs to MLflow, and its parent run when a resumed sweep already has one.

    A resumed sweep logs where it started (Tune restores its callbacks): it needs no flags, and flags
    naming another store or experiment, or a store for a sweep that started without one, are refused."""
    if not resume:
        return given, None
    manifest = out / "manifest.json"
    prev = read_json_object(manifest).get("mlflow") if manifest.is_file() else None
    if not isinstance(prev, dict):
        if given is not None:
            raise ConfigError(
                f"{out} is a sweep started without MLflow; a resumed sweep keeps how it logs "
                "(start a new sweep with --mlflow-uri)"
            )
        return None, None
    uri, experiment = str(prev.get("uri", "")), str(prev.get("experiment", ""))
    run_id = str(prev["run_id"]) if prev.get("run_id") else None
    if given is not None:  # the manifest holds the URI without its password: compare it so
        if (given.shown_uri, given.experiment) != (uri, experiment):
            raise ConfigError(
                f"{out} logs to MLflow at {uri} (experiment {experiment!r}); a resumed sweep keeps where it logs"
            )
        return given, run_id
    if ":***@" in uri:
        raise ConfigError(
            f"{out} logs to MLflow at {uri}, whose password is not kept: pass the same --mlflow-uri to resume "
            "(or keep credentials in MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD)"
        )
    return MlflowTarget(uri, experiment), run_id


def _trial_logger(runs: MlflowRuns, parent: str, sp: SweepSpace, out: Path, data: Path) -> Any:
    from crucible_ray.distributed._tracking import TrialRunLogger

    return TrialRunLogger(runs.target, parent, sp, out, data.resolve())


def _wandb_logger(project: str, sp: SweepSpace, out: Path, data: Path) -> Any:
    from crucible_ray.distributed._wandb import trial_wandb_logger

    return trial_wandb_logger(project, sp, out, data.resolve(), mode=os.environ.get("WANDB_MODE"))


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


def _check_floor(sp: SweepSpace, cfg: GuardrailConfig) -> None:
    for ratio in floor_ratios(sp):
        enforce_dilution_floor(ratio, cfg)


def _new_tuner(
    trainable: Any, sp: SweepSpace, plan: TrialPlan, out: Path, max_failures: int, callbacks: Sequence[Any]
) -> Any:
    from ray import tune

    if sp.grid is not None:
        param_space: dict[str, Any] = {GRID_PARAM: tune.grid_search(grid_keys(sp))}
        tune_config = tune.TuneConfig(max_concurrent_trials=plan.concurrency, reuse_actors=True)
    else:
        from ray.tune.search.optuna import OptunaSearch

        assert sp.optuna is not None
        param_space = {}
        searcher = OptunaSearch(
            space=OptunaSearchSpace(sp),
            metric=["retention", "generalization"],
            mode=["max", "max"],
            sampler=optuna_sampler(sp.optuna.sampler_seed),
        )
        tune_config = tune.TuneConfig(
            search_alg=searcher,
            num_samples=sp.optuna.trials,
            max_concurrent_trials=plan.concurrency,
            reuse_actors=True,
        )
    return tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune_config,
        run_config=tune.RunConfig(
            name=EXPERIMENT,
            storage_path=str(out),
            failure_config=tune.FailureConfig(max_failures=max_failures),
            callbacks=list(callbacks),
            # Every recovery checkpoint is kept: a driver killed between two reports leaves an experiment
            # snapshot naming an older one, which the resumed sweep loads (num_to_keep=1 had deleted it).
            verbose=0,
        ),
    )


def _record_failure(out: Path, sp: SweepSpace, config: dict[str, Any], error: str) -> None:
    try:
        trial = resolve_trial(config, sp)
    except (ConfigError, KeyError):
        return
    if record_failed_trial(out, trial, sp.steps, error):
        log.warning("trial %s failed: %s", trial.key, error)


class _OptunaSpace(OptunaSearchSpace):
    """The class an Optuna sweep written before the sweep logic moved to ``crucible_ray.sweeps`` pickled
    into Tune's experiment state, under this module's name: ``--resume`` of such a sweep unpickles it
    here. Its ``pools`` held every pool (the first drawn within the legacy bounds, the last taking the
    rest); the space now keeps only the sampled ones.
    """

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update({**state, "pools": tuple(state["pools"])[:-1]})
