"""Contrastive training, the pure part: config, curriculum sampler, InfoNCE, schedule, one worker's loop.

Nothing here imports Ray; :func:`crucible_ray.train` runs :func:`train_worker` on Ray Train.
"""

from crucible_ray.training._config import DEFAULT_LR, TrainConfig
from crucible_ray.training._features import CachedFeatureEncoder, FeatureTable, feature_table, is_frozen_backbone
from crucible_ray.training._logbook import TB_DIR
from crucible_ray.training._loop import RECOVERY_FORMAT, TrainData, WorkerContext, batch_loss, train_worker
from crucible_ray.training._loss import info_nce
from crucible_ray.training._prepare import PreparedRun, prepare_training
from crucible_ray.training._sampler import CurriculumSampler, TrainBatch
from crucible_ray.training._schedule import lr_at

__all__ = [
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
