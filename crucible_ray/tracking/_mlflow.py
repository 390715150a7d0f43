"""MLflow: where a training run or a sweep is also logged, when the user names a tracking URI.

Only the MLflow client is used here (no Ray): the Ray shell logs a sweep's trials through Ray Tune's
MLflow callback and calls these functions for the rest. ``mlflow`` is imported when a target is opened,
never by ``import crucible_ray``; without it installed, naming a URI is a one-line ConfigError.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crucible_ray._logging import get_logger
from crucible_ray.errors import ConfigError
from crucible_ray.scoreboard import Scoreboard

log = get_logger(__name__)

DEFAULT_EXPERIMENT = "crucible-ray"
# Tags every run carries (docs/tracking.md): what made it, and how runs relate.
TAG_KIND = "crucible.kind"  # train | sweep | trial
TAG_OUTPUT = "crucible.output_dir"
TAG_TRIAL = "crucible.trial_id"
TAG_RECOMMENDED = "crucible.recommended"
PARENT_TAG = "mlflow.parentRunId"  # MLflow's own nesting tag: a trial's run sits under its sweep's run
_PARAM_VALUE_MAX = 6000  # MLflow's limit on a param value


@dataclass(frozen=True)
class MlflowTarget:
    """A tracking store and an experiment in it.

    ``uri``: anything MLflow takes as a tracking URI: ``sqlite:///runs.db``, ``http://127.0.0.1:5000``,
    ``databricks``... A SQLite store keeps artifacts in ``mlartifacts/`` beside the database file (MLflow's
    own default is the current folder).
    """

    uri: str
    experiment: str = DEFAULT_EXPERIMENT

    def __post_init__(self) -> None:
        if not self.uri.strip():
            raise ConfigError("--mlflow-uri is empty")
        if not self.experiment.strip():
            raise ConfigError("--mlflow-experiment is empty")

    @classmethod
    def from_options(cls, uri: str | None, experiment: str | None = None) -> MlflowTarget | None:
        """The target of ``--mlflow-uri``/``--mlflow-experiment`` (None without a URI). A relative SQLite
        path is made absolute, so a run resumed from another folder logs to the same database."""
        if uri is None:
            if experiment is not None:
                raise ConfigError("--mlflow-experiment needs --mlflow-uri")
            return None
        return cls(_absolute_sqlite(uri), experiment or DEFAULT_EXPERIMENT)

    @property
    def shown_uri(self) -> str:
        """The URI without a password it may carry (``https://user:secret@host`` -> ``https://user:***@host``),
        for logs and manifests. Credentials belong in ``MLFLOW_TRACKING_USERNAME``/``_PASSWORD``."""
        return redact_uri(self.uri)

    def to_dict(self) -> dict[str, str]:
        return {"uri": self.shown_uri, "experiment": self.experiment}

    def open(self) -> MlflowRuns:
        """Connect (creating the experiment if it is new)."""
        return MlflowRuns(self)


class MlflowRuns:
    """The runs of one target: start, log, end. A thin layer over ``mlflow.MlflowClient``."""

    def __init__(self, target: MlflowTarget) -> None:
        try:
            from mlflow import MlflowClient
        except ImportError as e:
            raise ConfigError(
                "--mlflow-uri needs MLflow: pip install 'crucible-ray[mlflow]' (or pip install mlflow)"
            ) from e
        _quiet_mlflow()
        self.target = target
        try:
            self.client = MlflowClient(tracking_uri=target.uri)
            self.experiment_id = self._experiment_id()
        except ConfigError:
            raise
        except Exception as e:  # a bad URI, a store that is down, a refused request
            raise ConfigError(f"--mlflow-uri {target.shown_uri}: {_first_line(e)}") from e

    def _experiment_id(self) -> str:
        name = self.target.experiment
        found = self.client.get_experiment_by_name(name)
        if found is None:
            try:
                return str(self.client.create_experiment(name, artifact_location=_artifact_root(self.target)))
            except Exception:  # another driver created it meanwhile
                found = self.client.get_experiment_by_name(name)
                if found is None:
                    raise
        if found.lifecycle_stage == "deleted":
            raise ConfigError(
                f"--mlflow-experiment {name!r} is deleted in {self.target.shown_uri}: restore it "
                f"(mlflow experiments restore --experiment-id {found.experiment_id}) or name another"
            )
        return str(found.experiment_id)

    def start(
        self, name: str, *, params: Mapping[str, Any] | None = None, tags: Mapping[str, str] | None = None
    ) -> str:
        """A new run (status RUNNING) with its params and tags; returns its id. A param the store refuses
        ends the run FAILED and raises ConfigError."""
        run = self.client.create_run(self.experiment_id, run_name=name, tags=dict(tags or {}))
        run_id = str(run.info.run_id)
        try:
            self.log_params(run_id, params or {})
        except Exception as e:
            with best_effort("end the run"):
                self.end(run_id, "FAILED")
            raise ConfigError(f"MLflow refused the params of run {name!r}: {_first_line(e)}") from e
        return run_id

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        """Params by name (characters MLflow does not take in a key become ``_``); None is left out."""
        from mlflow.entities import Param

        items = [Param(_metric_key(k), _param_text(v)) for k, v in sorted(params.items()) if v is not None]
        for i in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(run_id, params=items[i : i + 100])

    def log_metrics(self, run_id: str, metrics: Mapping[str, float | None], step: int) -> None:
        """Finite numbers only (MLflow refuses NaN on some stores), at ``step``."""
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [
            Metric(_metric_key(k), float(v), now, int(step))
            for k, v in sorted(metrics.items())
            if v is not None and math.isfinite(float(v))
        ]
        for i in range(0, len(items), 1000):
            self.client.log_batch(run_id, metrics=items[i : i + 1000])

    def log_board(self, run_id: str, board: Scoreboard) -> None:
        """A scoreboard's figures (retention, generalization, ``<set>_tier<k>_accuracy``) at its step."""
        self.log_metrics(run_id, board.flat_metrics(), board.step or 0)

    def log_files(self, run_id: str, paths: Iterable[Path], artifact_path: str | None = None) -> None:
        for p in paths:
            if p.is_file():
                self.client.log_artifact(run_id, str(p), artifact_path)

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        for k, v in tags.items():
            self.client.set_tag(run_id, k, v)

    def end(self, run_id: str, status: str = "FINISHED") -> None:
        """``FINISHED``, ``FAILED`` or ``KILLED`` (an interrupted run)."""
        self.client.set_terminated(run_id, status=status)

    def end_children(self, parent_id: str, status: str) -> int:
        """End the still-running runs nested under ``parent_id`` (trials a stopped sweep cut short);
        returns how many."""
        open_runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{PARENT_TAG}` = '{parent_id}' and attributes.status = 'RUNNING'",
            max_results=10000,
        )
        for run in open_runs:
            self.end(run.info.run_id, status)
        return len(open_runs)

    def reopen(self, run_id: str) -> bool:
        """Mark an existing run of this experiment RUNNING again (a resumed run); False if it is gone or
        deleted."""
        try:
            run = self.client.get_run(run_id)
            if run.info.lifecycle_stage != "active" or str(run.info.experiment_id) != self.experiment_id:
                return False
            self.client.update_run(run_id, status="RUNNING")
        except Exception:
            return False
        return True

    def find_trial(self, parent_id: str, trial_key: str) -> str | None:
        """The latest run of the trial ``trial_key`` under ``parent_id`` (a trial a resumed sweep goes on
        with), or None."""
        found = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{PARENT_TAG}` = '{parent_id}' and tags.`{TAG_TRIAL}` = '{trial_key}'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        return str(found[0].info.run_id) if found else None

    def logged_steps(self, run_id: str, key: str = "retention") -> set[int]:
        """The steps at which ``key`` was logged (what a resumed run need not log again)."""
        return {int(m.step) for m in self.client.get_metric_history(run_id, key)}

    def run_url(self, run_id: str) -> str:
        """Where the run is shown: the UI page for a server URI, else the store and the run id."""
        uri = self.target.shown_uri
        if uri.startswith(("http://", "https://")):
            return f"{uri.rstrip('/')}/#/experiments/{self.experiment_id}/runs/{run_id}"
        return f"{uri} (experiment {self.target.experiment!r}, run {run_id})"


@contextmanager
def best_effort(what: str, warned: set[str] | None = None) -> Iterator[None]:
    """For logging that must not change how a run ends: an error in the block (a store that went down, a
    refused request) becomes one warning (once per ``what`` when ``warned`` is given) and the run goes on."""
    try:
        yield
    except Exception as e:
        if warned is None or what not in warned:
            log.warning("MLflow: could not %s (%s); the run goes on without it", what, _first_line(e))
        if warned is not None:
            warned.add(what)


@contextmanager
def mlflow_run(
    runs: MlflowRuns, name: str, *, params: Mapping[str, Any], tags: Mapping[str, str], resume_id: str | None = None
) -> Iterator[str]:
    """A run for the block: FINISHED when it ends, KILLED on Ctrl-C (or SIGTERM), FAILED on an error; an
    error ending it is a warning, never in the way of the block's own outcome. ``resume_id``: an earlier
    run to go on with (a continued run), when the store still has it; else a new run."""
    if resume_id is not None and runs.reopen(resume_id):
        run_id = resume_id
    else:
        run_id = runs.start(name, params=params, tags=tags)
    try:
        yield run_id
    except KeyboardInterrupt:
        with best_effort("end the run"):
            runs.end(run_id, "KILLED")
        raise
    except BaseException:
        with best_effort("end the run"):
            runs.end(run_id, "FAILED")
        raise
    with best_effort("end the run"):
        runs.end(run_id, "FINISHED")


def run_params(config: Mapping[str, Any], world: Path | None = None) -> dict[str, Any]:
    """A training run's params: its config flattened (``encoder.kind``, ``ratio``, ``seed``...) and, when
    the world records them, the settings of the mining runs that made its pools (``miner.<name>.<field>``)."""
    params = _flatten(config)
    if world is not None:
        params.update(miner_params(world))
    return params


def miner_params(world: Path) -> dict[str, Any]:
    """``miner.<name>.<field>`` for each mining manifest in the world folder (lineups K, min_passes P,
    neighbors N, danger margin, seed, the model that mined, the pass rate)."""
    import json

    out: dict[str, Any] = {}
    for path in sorted(world.glob("*.manifest.json")):
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(doc, dict) or doc.get("kind") != "mining":
            continue
        name = path.name.removesuffix(".manifest.json")
        for k, v in (doc.get("config") or {}).items():
            out[f"miner.{name}.{k}"] = v
        model = doc.get("model")
        if model is not None:
            out[f"miner.{name}.model"] = model if isinstance(model, str) else _compact(model)
        rate = (doc.get("counts") or {}).get("pass_rate")
        if rate is not None:
            out[f"miner.{name}.pass_rate"] = rate
    return out


def training_artifacts(out: Path) -> dict[str, list[Path]]:
    """A training run's files to keep with its MLflow run, by artifact folder: the final checkpoint,
    the scoreboards, the manifest."""
    return {
        "checkpoint": [out / "checkpoint_final.pt"],
        "scoreboards": sorted(out.glob("scoreboard_*.json")),
        "": [out / "manifest.json", out / "trial.json", out / "status.json"],
    }


def log_training_outputs(runs: MlflowRuns, run_id: str, out: Path, *, logged_steps: set[int] | None = None) -> None:
    """Log a finished run's milestone scoreboards not logged yet (by step) and its files."""
    done = logged_steps if logged_steps is not None else set()
    for path in sorted(out.glob("scoreboard_step_*.json"), key=_step_of):
        board = Scoreboard.read(path)
        if (board.step or 0) not in done:
            runs.log_board(run_id, board)
            done.add(board.step or 0)
    for folder, paths in training_artifacts(out).items():
        runs.log_files(run_id, paths, folder or None)


def _step_of(path: Path) -> int:
    m = re.search(r"(\d+)", path.stem.rsplit("_", 1)[-1])
    return int(m.group(1)) if m else 0


def _flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in config.items():
        if isinstance(v, Mapping):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _param_text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        text = ",".join(map(str, value))
    elif isinstance(value, Mapping):
        text = _compact(value)
    else:
        text = str(value)
    return text if len(text) <= _PARAM_VALUE_MAX else text[: _PARAM_VALUE_MAX - 3] + "..."


def _compact(value: Any) -> str:
    import json

    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _metric_key(key: str) -> str:
    """MLflow keys hold letters, digits, ``_ - . / `` and spaces; anything else becomes ``_``."""
    return re.sub(r"[^\w\-./ ]", "_", key)


def redact_uri(uri: str) -> str:
    """``scheme://user:password@host...`` with the password replaced by ``***``."""
    return re.sub(r"^([A-Za-z][\w+.-]*://[^/@:]*):[^/@]*@", r"\1:***@", uri)


def _absolute_sqlite(uri: str) -> str:
    """``sqlite:///runs.db`` (relative to the current folder) as ``sqlite:////abs/runs.db``."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return uri
    rest, _, query = uri[len(prefix) :].partition("?")
    if not rest or rest == ":memory:" or rest.startswith("/"):
        return uri
    return prefix + str(Path(rest).resolve()) + (f"?{query}" if query else "")


def _artifact_root(target: MlflowTarget) -> str | None:
    """``mlartifacts/<experiment>`` beside a SQLite database; None (the store's default) otherwise."""
    prefix = "sqlite:///"
    rest = target.uri[len(prefix) :].split("?", 1)[0] if target.uri.startswith(prefix) else ""
    if not rest or rest == ":memory:":
        return None
    safe = re.sub(r"[^\w.-]", "_", target.experiment)
    return (Path(rest).resolve().parent / "mlartifacts" / safe).as_uri()


def _quiet_mlflow() -> None:
    """MLflow's INFO lines (creating tables, run links) stay off the terminal unless the user asked for
    them (``MLFLOW_LOGGING_LEVEL``, MLflow's own setting)."""
    import os

    if "MLFLOW_LOGGING_LEVEL" not in os.environ:
        for name in ("mlflow", "alembic"):
            logging.getLogger(name).setLevel(logging.WARNING)


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
