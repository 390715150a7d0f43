"""crucible-ray: mining, curriculum training and Pareto sweeps for contrastive models, on Ray.

The Python API for driver scripts:

    >>> import crucible_ray as cr
    >>> world = cr.build_world("wordnet", "worlds/wordnet")  # doctest: +SKIP
    >>> board = cr.evaluate("hashed-ngram:seed=0", [world / "frozen_eval.jsonl"])  # doctest: +SKIP
    >>> board.retention  # doctest: +SKIP
    0.335

Everything here is importable without starting Ray.
"""

from __future__ import annotations

__version__ = "0.1.0"

from crucible_ray.analysis import ParetoResult, pareto
from crucible_ray.config import DEFAULT_POOLS, Ratio
from crucible_ray.data import (
    Bundle,
    Candidate,
    CorpusDoc,
    Negative,
    read_bundles,
    read_candidates,
    read_corpus,
    write_bundles,
    write_candidates,
    write_corpus,
)
from crucible_ray.distributed import MiningResult, TrainResult, expand, mine, sweep, train
from crucible_ray.encoders import (
    DEFAULT_ENCODER,
    Encoder,
    build_encoder,
    export_sentence_transformer,
    load_encoder,
    register_encoder,
    save_checkpoint,
)
from crucible_ray.errors import (
    ConfigError,
    CrucibleError,
    DataError,
    EncoderError,
    GuardrailViolation,
    MiningError,
    TrainingError,
)
from crucible_ray.evaluation import evaluate
from crucible_ray.guardrails import GuardrailConfig, GuardrailReport, check_guardrails
from crucible_ray.mining import MinerConfig, MiningExecution, mine_local
from crucible_ray.reporting import report
from crucible_ray.scoreboard import Scoreboard
from crucible_ray.sweeps import SweepResult, SweepSpace, load_space
from crucible_ray.training import TrainConfig
from crucible_ray.worlds import World, build_world, import_world

__all__ = [
    "DEFAULT_ENCODER",
    "DEFAULT_POOLS",
    "Bundle",
    "Candidate",
    "ConfigError",
    "CorpusDoc",
    "CrucibleError",
    "DataError",
    "Encoder",
    "EncoderError",
    "GuardrailConfig",
    "GuardrailReport",
    "GuardrailViolation",
    "MinerConfig",
    "MiningError",
    "MiningExecution",
    "MiningResult",
    "Negative",
    "ParetoResult",
    "Ratio",
    "Scoreboard",
    "SweepResult",
    "SweepSpace",
    "TrainConfig",
    "TrainResult",
    "TrainingError",
    "World",
    "__version__",
    "build_encoder",
    "build_world",
    "import_world",
    "check_guardrails",
    "evaluate",
    "expand",
    "load_encoder",
    "export_sentence_transformer",
    "load_space",
    "mine",
    "mine_local",
    "pareto",
    "read_bundles",
    "read_candidates",
    "read_corpus",
    "register_encoder",
    "report",
    "save_checkpoint",
    "sweep",
    "train",
    "write_bundles",
    "write_candidates",
    "write_corpus",
]
