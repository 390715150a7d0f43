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
        """The target of ``--mlflow-uri``/``--mlflow-experiment`` (None without a URI)."""
        if uri is None:
            if experiment is not None:
                raise ConfigError("--mlflow-experiment needs --mlflow-uri")
            return None
        return cls(uri, experiment or DEFAULT_EXPERIMENT)

    def to_dict(self) -> dict[str, str]:
        return {"uri": self.uri, "experiment": self.experiment}

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
            found = self.client.get_experiment_by_name(target.experiment)
            if found is not None:
                self.experiment_id = str(found.experiment_id)
            else:
                self.experiment_id = str(
                    self.client.create_experiment(target.experiment, artifact_location=_artifact_root(target))
                )
        except Exception as e:  # a bad URI, a store that is down, a refused request
            raise ConfigError(f"--mlflow-uri {target.uri}: {_first_line(e)}") from e

    def start(
        self, name: str, *, params: Mapping[str, Any] | None = None, tags: Mapping[str, str] | None = None
    ) -> str:
        """A new run (status RUNNING) with its params and tags; returns its id."""
        run = self.client.create_run(self.experiment_id, run_name=name, tags=dict(tags or {}))
        run_id = str(run.info.run_id)
        self.log_params(run_id, params or {})
        return run_id

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, _param_text(v)) for k, v in sorted(params.items()) if v is not None]
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
        """Mark an existing run RUNNING again (a resumed sweep's parent run); False if it is gone."""
        try:
            self.client.update_run(run_id, status="RUNNING")
        except Exception:
            return False
        return True

    def run_url(self, run_id: str) -> str:
        """Where the run is shown: the UI page for a server URI, else the store and the run id."""
        if self.target.uri.startswith(("http://", "https://")):
            return f"{self.target.uri.rstrip('/')}/#/experiments/{self.experiment_id}/runs/{run_id}"
        return f"{self.target.uri} (experiment {self.target.experiment!r}, run {run_id})"


@contextmanager
def mlflow_run(runs: MlflowRuns, name: str, *, params: Mapping[str, Any], tags: Mapping[str, str]) -> Iterator[str]:
    """A run for the block: FINISHED when it ends, KILLED on Ctrl-C (or SIGTERM), FAILED on an error."""
    run_id = runs.start(name, params=params, tags=tags)
    try:
        yield run_id
    except KeyboardInterrupt:
        runs.end(run_id, "KILLED")
        raise
    except BaseException:
        runs.end(run_id, "FAILED")
        raise
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
