"""crucible-ray: mining, curriculum training and Pareto sweeps for contrastive models, on Ray.

The Python API for driver scripts:

    >>> import crucible_ray as cr
    >>> world = cr.build_world("wordnet", "worlds/wordnet")  # doctest: +SKIP
    >>> board = cr.evaluate("hashed-ngram:seed=0", [world / "frozen_eval.jsonl"])  # doctest: +SKIP
    >>> board.retention  # doctest: +SKIP
    0.335

Everything here is importable without starting Ray; each name is imported on first use.
"""

from __future__ import annotations

__version__ = "0.1.0"

import os
from typing import TYPE_CHECKING

from crucible_ray._shell import lazy_names

# OpenMP threads (torch's) that wait at a barrier sleep instead of spinning, unless the user chose
# otherwise. A crucible-ray process shares its cores with Ray's processes, actors and often a second
# torch process; spinning threads burned their cores' time without progress (docs/mining.md,
# "Running it on Ray"). It takes effect where torch is imported after this package: in the CLI and
# in every Ray worker that loads crucible-ray's actors or trials.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

if TYPE_CHECKING:
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

# Where each public name lives. They are imported on first use: a Ray worker that needs the miner
# does not pay for the analysis stack (scipy, pandas), and ``import crucible_ray`` stays fast.
_HOMES: dict[str, str] = {
    "Bundle": "crucible_ray.data",
    "Candidate": "crucible_ray.data",
    "ConfigError": "crucible_ray.errors",
    "CorpusDoc": "crucible_ray.data",
    "CrucibleError": "crucible_ray.errors",
    "DEFAULT_ENCODER": "crucible_ray.encoders",
    "DEFAULT_POOLS": "crucible_ray.config",
    "DataError": "crucible_ray.errors",
    "Encoder": "crucible_ray.encoders",
    "EncoderError": "crucible_ray.errors",
    "GuardrailConfig": "crucible_ray.guardrails",
    "GuardrailReport": "crucible_ray.guardrails",
    "GuardrailViolation": "crucible_ray.errors",
    "MinerConfig": "crucible_ray.mining",
    "MiningError": "crucible_ray.errors",
    "MiningExecution": "crucible_ray.mining",
    "MiningResult": "crucible_ray.distributed",
    "Negative": "crucible_ray.data",
    "ParetoResult": "crucible_ray.analysis",
    "Ratio": "crucible_ray.config",
    "Scoreboard": "crucible_ray.scoreboard",
    "SweepResult": "crucible_ray.sweeps",
    "SweepSpace": "crucible_ray.sweeps",
    "TrainConfig": "crucible_ray.training",
    "TrainResult": "crucible_ray.distributed",
    "TrainingError": "crucible_ray.errors",
    "World": "crucible_ray.worlds",
    "build_encoder": "crucible_ray.encoders",
    "build_world": "crucible_ray.worlds",
    "check_guardrails": "crucible_ray.guardrails",
    "evaluate": "crucible_ray.evaluation",
    "expand": "crucible_ray.distributed",
    "export_sentence_transformer": "crucible_ray.encoders",
    "import_world": "crucible_ray.worlds",
    "load_encoder": "crucible_ray.encoders",
    "load_space": "crucible_ray.sweeps",
    "mine": "crucible_ray.distributed",
    "mine_local": "crucible_ray.mining",
    "pareto": "crucible_ray.analysis",
    "read_bundles": "crucible_ray.data",
    "read_candidates": "crucible_ray.data",
    "read_corpus": "crucible_ray.data",
    "register_encoder": "crucible_ray.encoders",
    "report": "crucible_ray.reporting",
    "save_checkpoint": "crucible_ray.encoders",
    "sweep": "crucible_ray.distributed",
    "train": "crucible_ray.distributed",
    "write_bundles": "crucible_ray.data",
    "write_candidates": "crucible_ray.data",
    "write_corpus": "crucible_ray.data",
}


__getattr__, __dir__ = lazy_names(__name__, _HOMES)

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
