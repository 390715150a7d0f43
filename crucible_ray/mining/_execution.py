"""How a mining run executes: the knobs that change speed and placement, never results.

They are grouped in one object, :class:`MiningExecution`, the way Ray groups ``RunConfig`` and
``FailureConfig``: what a run *computes* is :class:`~crucible_ray.mining.MinerConfig` (part of the
resume key, docs/mining.md "Failures and restarts"); how it is *run* is this object (not part of the key).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from crucible_ray.errors import config_error

#: Candidates per actor call. Validation has a fixed cost per call (about 1 ms on a CPU: a hundred
#: small array operations), which 1,024 candidates amortise; retrieval scores anchors 256 at a time
#: on a CPU whatever the batch, so larger batches cost it nothing.
MINE_BATCH = 1024

#: Texts per encoder forward pass: on a CPU, small batches of length-sorted texts encode fastest (less
#: padding); a GPU wants larger ones.
CPU_ENCODE_BATCH = 32
GPU_ENCODE_BATCH = 128

#: Corpus texts per encode call, wherever the corpus is embedded: by the driver on one machine, or by
#: the actor pool on a cluster. An encode call sorts its texts by length before batching them, so the
#: call's texts decide the batches and, through a transformer's padding, the float rounding: with one
#: size for both, the driver and the actor pool give the same vectors, bit for bit, on CPUs with the
#: same kernels (cold embedding cache, no frozen-backbone feature cache; docs/mining.md).
CORPUS_CHUNK = 1024

CorpusStore = Literal["auto", "object", "mmap"]


class MiningExecution(BaseModel):
    """The execution settings of :func:`crucible_ray.mine` (none of them changes the accepted set).

    Example:
        >>> MiningExecution(actors=2, batch_size=512).corpus_store
        'auto'
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    actors: int | None = Field(None, ge=1, description="encoder actors (default: one per GPU, else one per 4 CPUs)")
    batch_size: int = Field(MINE_BATCH, ge=1, description="candidates per actor call")
    use_gpu: bool | None = Field(None, description="use GPUs (default: when the cluster has them)")
    gpus_per_actor: float = Field(
        1.0, gt=0.0, le=8.0, description="GPUs each encoder actor takes; a fraction packs several actors on one GPU"
    )
    address: str | None = Field(
        None, description="Ray cluster address (e.g. auto); default RAY_ADDRESS, else a local Ray"
    )
    corpus_store: CorpusStore = Field("auto", description="how actors share corpus embeddings")
    encode_batch_size: int | None = Field(
        None,
        ge=1,
        description="texts per encoder forward pass (default 32 on CPU, 128 on GPU; at most 32 for a"
        " sentence-transformers model on a CPU)",
    )
    resume: bool = Field(True, description="reuse the finished parts of an interrupted run with the same key")
    part_rows: int = Field(8192, ge=1, description="rows per resumable part file (also written every 30 s)")
    embedding_cache: str | None = Field(
        None,
        description="folder of the embedding cache, 'off' for none "
        "(default: $CRUCIBLE_RAY_EMBEDDING_CACHE, else ~/.cache/crucible-ray/embeddings)",
    )
    embedding_cache_size: str | None = Field(
        None,
        description="size limit of the embedding cache, e.g. 2GB; least recently read entries go first "
        "(default: $CRUCIBLE_RAY_EMBEDDING_CACHE_SIZE, else 8GB)",
    )

    @classmethod
    def from_options(cls, **options: Any) -> MiningExecution:
        """Build from keyword options, turning validation errors into one-line :class:`ConfigError`."""
        from pydantic import ValidationError

        try:
            return cls(**options)
        except ValidationError as e:
            raise config_error(e, "execution option") from None
