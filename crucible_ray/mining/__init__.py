"""The organic miner: multi-lineup validation of candidate hard cases (pure numpy/torch, no Ray).

A candidate is accepted only if it stays dangerous in at least ``min_passes`` of ``lineups``
independent lineups of its negatives, so a lucky draw of one hard negative is not enough.
The Ray Data pipeline around this lives in :mod:`crucible_ray.distributed`.

A run of :func:`crucible_ray.mine` is three named steps (docs/mining.md "The Python API"):
:func:`plan_mining` (check everything, take the resume key), ``execute_mining`` (the Ray Data run,
in :mod:`crucible_ray.distributed`) and :func:`finalise_mining` (outputs, manifest, world). How a run
executes is one :class:`MiningExecution`; :func:`mine_local` runs the same kernel in one process.
"""

from typing import TYPE_CHECKING

from crucible_ray._shell import shell_entry_points
from crucible_ray.mining._batch import RESULT_SCHEMA, CandidateBatch, embed_texts, mine_batch
from crucible_ray.mining._config import MinerConfig
from crucible_ray.mining._corpus import (
    CorpusIndex,
    await_embeddings,
    dedupe_corpus,
    embed_corpus_to_file,
    failure_note,
    open_embeddings,
)
from crucible_ray.mining._execution import (
    CORPUS_CHUNK,
    CPU_ENCODE_BATCH,
    GPU_ENCODE_BATCH,
    MINE_BATCH,
    MiningExecution,
)
from crucible_ray.mining._expand import GENERATORS, CandidateGenerator, resolve_generator, world_candidates
from crucible_ray.mining._finalise import ExecutionRecord, MiningResult, finalise_mining
from crucible_ray.mining._inputs import CandidateScan, check_feasible, scan_candidates, skip_done
from crucible_ray.mining._kernel import (
    SCORING,
    LineupVerdict,
    judge_lineups,
    product_tolerance,
    retrieve,
    rowwise_scores,
    settle_near_thresholds,
)
from crucible_ray.mining._lineups import (
    DRAW_SCHEME,
    candidate_key,
    draw_lineup_scalar,
    draw_lineups,
    lineup_randoms,
)
from crucible_ray.mining._local import mine_local
from crucible_ray.mining._model import ModelSource
from crucible_ray.mining._outputs import in_holdout, row_to_bundle
from crucible_ray.mining._plan import (
    MiningInputs,
    MiningOutputs,
    MiningPlan,
    manifest_path_for,
    plan_mining,
    resume_key,
)
from crucible_ray.mining._text import normalize_text, text_code
from crucible_ray.mining._workdir import WorkDir
from crucible_ray.mining._world import check_world_targets, register_in_world

__all__ = [
    "expand",
    "mine",
    "CORPUS_CHUNK",
    "CPU_ENCODE_BATCH",
    "DRAW_SCHEME",
    "GENERATORS",
    "GPU_ENCODE_BATCH",
    "MINE_BATCH",
    "RESULT_SCHEMA",
    "SCORING",
    "CandidateBatch",
    "CandidateGenerator",
    "CandidateScan",
    "CorpusIndex",
    "ExecutionRecord",
    "LineupVerdict",
    "MinerConfig",
    "MiningExecution",
    "MiningInputs",
    "MiningOutputs",
    "MiningPlan",
    "MiningResult",
    "ModelSource",
    "WorkDir",
    "await_embeddings",
    "candidate_key",
    "check_feasible",
    "check_world_targets",
    "dedupe_corpus",
    "draw_lineup_scalar",
    "draw_lineups",
    "embed_corpus_to_file",
    "embed_texts",
    "failure_note",
    "finalise_mining",
    "in_holdout",
    "row_to_bundle",
    "judge_lineups",
    "lineup_randoms",
    "manifest_path_for",
    "mine_batch",
    "mine_local",
    "normalize_text",
    "open_embeddings",
    "plan_mining",
    "product_tolerance",
    "register_in_world",
    "resolve_generator",
    "resume_key",
    "retrieve",
    "rowwise_scores",
    "scan_candidates",
    "settle_near_thresholds",
    "skip_done",
    "text_code",
    "world_candidates",
]

# The entry points that run on Ray (``expand``, ``mine``) live in the Ray shell (crucible_ray.distributed); they are
# importable from this domain too, imported on first use so that importing this package never loads the
# shell (docs/architecture.md).
if TYPE_CHECKING:
    from crucible_ray.distributed import expand, mine

__getattr__ = shell_entry_points(__name__, ("expand", "mine"))
