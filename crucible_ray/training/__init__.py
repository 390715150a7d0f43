"""Contrastive training, the pure part: config, curriculum sampler, InfoNCE, schedule, one worker's loop.

Nothing here imports Ray; :func:`crucible_ray.train` runs :func:`train_worker` on Ray Train.
"""

from typing import TYPE_CHECKING

from crucible_ray._shell import shell_entry_points
from crucible_ray.encoders import CachedFeatureEncoder, FeatureTable, feature_table, is_frozen_backbone
from crucible_ray.training._config import DEFAULT_LR, TrainConfig
from crucible_ray.training._logbook import TB_DIR
from crucible_ray.training._loop import RECOVERY_FORMAT, TrainData, WorkerContext, batch_loss, train_worker
from crucible_ray.training._loss import info_nce
from crucible_ray.training._prepare import PreparedRun, prepare_training
from crucible_ray.training._sampler import CurriculumSampler, TrainBatch
from crucible_ray.training._schedule import lr_at

__all__ = [
    "train",
    "DEFAULT_LR",
    "RECOVERY_FORMAT",
    "TB_DIR",
    "CachedFeatureEncoder",
    "CurriculumSampler",
    "FeatureTable",
    "PreparedRun",
    "TrainBatch",
    "TrainConfig",
    "TrainData",
    "WorkerContext",
    "batch_loss",
    "feature_table",
    "info_nce",
    "is_frozen_backbone",
    "lr_at",
    "prepare_training",
    "train_worker",
]

# The entry points that run on Ray (``train``) live in the Ray shell (crucible_ray.distributed); they are
# importable from this domain too, imported on first use so that importing this package never loads the
# shell (docs/architecture.md).
if TYPE_CHECKING:
    from crucible_ray.distributed import train

__getattr__ = shell_entry_points(__name__, ("train",))
