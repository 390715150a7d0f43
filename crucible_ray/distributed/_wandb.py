"""Ray Tune's W&B callback for sweeps (docs/tracking.md): one W&B run per trial, grouped by the sweep.

Its own module: Ray's W&B integration imports ``wandb`` when it is imported, which only a sweep given a
W&B project may do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ray.air.integrations.wandb import WandbLoggerCallback
from ray.tune.result import TRAINING_ITERATION

from crucible_ray.errors import ConfigError
from crucible_ray.sweeps import SweepSpace, resolve_trial
from crucible_ray.tracking import run_params


def trial_wandb_logger(project: str, space: SweepSpace, output_dir: Path, world: Path, mode: str | None = None) -> Any:
    """Ray Tune's W&B callback for a sweep (docs/tracking.md): one W&B run per trial, grouped by the
    sweep, written under ``<output_dir>/wandb/`` (``wandb sync`` uploads an offline one later)."""
    try:
        import wandb  # noqa: F401
    except ImportError as e:
        raise ConfigError(
            "--wandb-project needs Weights & Biases: pip install 'crucible-ray[wandb]' (or pip install wandb)"
        ) from e
    if (mode or "online") not in _LOCAL_MODES and not _wandb_has_key():
        raise ConfigError(
            "--wandb-project logs online and W&B has no API key here: run `wandb login`, set WANDB_API_KEY, "
            "or set WANDB_MODE=offline (upload later with `wandb sync`)"
        )
    return TrialWandbLogger(project, space, output_dir, world, mode=mode)


_LOCAL_MODES = frozenset({"offline", "dryrun", "disabled"})


def _wandb_has_key() -> bool:
    """Whether W&B can log in: ``WANDB_API_KEY``, or a key ``wandb login`` saved."""
    import os

    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        import wandb

        return bool(wandb.login(prompt=False, verify=False))
    except Exception:  # W&B's own check failed: let its callback say why
        return True


class TrialWandbLogger(WandbLoggerCallback):
    """Ray's ``WandbLoggerCallback`` with each trial's resolved settings as its W&B config, named by the
    trial's stable id, and each milestone logged at its training step.

    The logging actor Ray starts per trial runs ``wandb.init`` in its own process: the mode the driver
    runs in (``WANDB_MODE``, e.g. ``offline``) is passed to it rather than left to that process's
    environment.
    """

    def __init__(self, project: str, space: SweepSpace, output_dir: Path, world: Path, mode: str | None = None) -> None:
        extra: dict[str, Any] = {"mode": mode} if mode else {}
        super().__init__(project=project, group=Path(output_dir).name, dir=str(output_dir), **extra)
        self.space = space
        self.world = Path(world)

    def log_trial_start(self, trial: Any) -> None:
        t = resolve_trial(trial.config, self.space)
        cfg = self.space.train_config(t.ratio, t.seed, t.params).model_dump(mode="json")
        exclude = [*self._exclude_results, *self.excludes, "config"]
        init = dict(
            id=trial.trial_id,
            name=t.key,
            resume=False,
            reinit=True,
            allow_val_change=True,
            group=self.group,
            project=self.project,
            config={**run_params(cfg, self.world), "crucible_trial_id": t.key},
        )
        init.update(self.kwargs)
        self._start_logging_actor(trial, exclude, **init)

    def log_trial_result(self, iteration: int, trial: Any, result: dict[str, Any]) -> None:
        if "step" in result:  # the logging actor logs at the result's training_iteration: make it the step
            result = {**result, TRAINING_ITERATION: int(result["step"])}
        super().log_trial_result(iteration, trial, result)
