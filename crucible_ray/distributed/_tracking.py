"""Ray Tune's MLflow callback, logging each sweep trial as a crucible-ray run (docs/tracking.md).

Ray's ``MLflowLoggerCallback`` keeps one MLflow run per Tune trial and ends it with the trial's status;
this subclass names the run by the trial's stable id, nests it under the sweep's parent run, logs the
trial's resolved training settings (not Tune's opaque grid key) as params, each milestone's figures at
its training step (not Tune's report count), and the trial's checkpoint and scoreboards at its end.
Tune pickles its callbacks with the experiment, so a resumed sweep logs through the same one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ray.air.integrations.mlflow import MLflowLoggerCallback
from ray.tune.result import AUTO_RESULT_KEYS

from crucible_ray._logging import get_logger
from crucible_ray.sweeps import TRIALS_DIR, SweepSpace, resolve_trial
from crucible_ray.tracking import (
    PARENT_TAG,
    TAG_KIND,
    TAG_OUTPUT,
    TAG_TRIAL,
    MlflowRuns,
    MlflowTarget,
    best_effort,
    run_params,
    training_artifacts,
)

log = get_logger(__name__)

# What Tune adds to every report, besides ``step`` (the x axis) and its bookkeeping flags.
_NOT_METRICS = frozenset(AUTO_RESULT_KEYS) | {"step", "done", "trial_id", "experiment_tag", "should_checkpoint"}


class TrialRunLogger(MLflowLoggerCallback):
    """One MLflow run per sweep trial, under the sweep's parent run.

    Logging is best effort: a store that goes down mid-sweep costs a warning, never a trial. A trial a
    resumed sweep goes on with (or Tune retries) continues in its earlier run, which keeps the milestones
    it logged; a milestone is never logged twice.
    """

    def __init__(
        self, target: MlflowTarget, parent_run_id: str, space: SweepSpace, output_dir: Path, world: Path
    ) -> None:
        super().__init__(
            tracking_uri=target.uri,
            experiment_name=target.experiment,
            tags={PARENT_TAG: parent_run_id, TAG_KIND: "trial", TAG_OUTPUT: str(output_dir)},
        )
        self.target = target
        self.parent_run_id = parent_run_id
        self.space = space
        self.output_dir = Path(output_dir)
        self.world = Path(world)
        self._runs: MlflowRuns | None = None
        self._steps: dict[str, set[int]] = {}
        self._warned: set[str] = set()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_runs"] = None  # a client is not part of the experiment's state; setup() opens one
        return state

    def setup(self, *args: Any, **kwargs: Any) -> None:
        # Ray's setup() points the process-wide MLflow client at the store; this logger keeps a client of
        # its own (and the driver's global MLflow settings as they are).
        self.tags = self.tags or {}
        self._trial_runs = {}
        self._steps = {}
        self._warned = set()
        self._runs = None

    @property
    def runs(self) -> MlflowRuns:
        if self._runs is None:
            self._runs = self.target.open()
        return self._runs

    def log_trial_start(self, trial: Any) -> None:
        with best_effort("start a trial's run", self._warned):
            if trial in self._trial_runs:  # a retried trial goes on in its run
                self.runs.reopen(self._trial_runs[trial])
                return
            t = resolve_trial(trial.config, self.space)
            run_id = self.runs.find_trial(self.parent_run_id, t.key)
            if run_id is not None and self.runs.reopen(run_id):  # a resumed sweep: the trial's earlier run
                self._steps[run_id] = self.runs.logged_steps(run_id)
            else:
                cfg = self.space.train_config(t.ratio, t.seed, t.params).model_dump(mode="json")
                tags = {**(self.tags or {}), TAG_TRIAL: t.key, "trial_name": str(trial)}
                run_id = self.runs.start(t.key, params=run_params(cfg, self.world), tags=tags)
                self._steps[run_id] = set()
            self._trial_runs[trial] = run_id

    def log_trial_result(self, iteration: int, trial: Any, result: dict[str, Any]) -> None:
        run_id = self._trial_runs.get(trial)
        step = result.get("step")
        if run_id is None or step is None or int(step) in self._steps.get(run_id, set()):
            return
        metrics = {
            k: float(v)
            for k, v in result.items()
            if k not in _NOT_METRICS and isinstance(v, (int, float)) and not isinstance(v, bool)
        }
        with best_effort("log a trial's milestone", self._warned):
            self.runs.log_metrics(run_id, metrics, int(step))
            self._steps.setdefault(run_id, set()).add(int(step))

    def log_trial_end(self, trial: Any, failed: bool = False) -> None:
        run_id = self._trial_runs.get(trial)
        if run_id is None:
            return
        with best_effort("log a trial's files", self._warned):
            key = resolve_trial(trial.config, self.space).key
            for folder, paths in training_artifacts(self.output_dir / TRIALS_DIR / key).items():
                self.runs.log_files(run_id, paths, folder or None)
        with best_effort("end a trial's run", self._warned):
            self.runs.end(run_id, "FAILED" if failed else "FINISHED")
