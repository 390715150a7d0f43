"""The miner's configuration: one validated object, the same for the CLI, the API and the Ray layer."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from crucible_ray.errors import ConfigError, config_error


class MinerConfig(BaseModel):
    """How a candidate is validated (docs/mining.md: multi-lineup validation).

    A candidate's ``N`` negatives come from its own ``negatives`` or, without them, from the corpus
    (the ``neighbors`` nearest inside the rank window ``[rank_min, rank_max)``). ``lineups`` lineups of
    ``lineup_size`` distinct negatives are drawn from them; a lineup kills when its best negative scores
    at least ``s(a, p) - danger_margin``; a candidate is accepted when ``pass_count >= min_passes``.

    Example:
        >>> MinerConfig(lineups=10, lineup_size=4, min_passes=3).min_passes
        3
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    lineups: int = Field(10, ge=1, le=1024, description="K: independent negative lineups per candidate")
    lineup_size: int = Field(4, ge=1, description="m: distinct negatives per lineup")
    min_passes: int = Field(3, ge=1, description="P: killing lineups needed to accept")
    neighbors: int = Field(16, ge=1, le=4096, description="N: negatives retrieved from the corpus")
    rank_min: int = Field(0, ge=0, description="skip this many nearest corpus texts (rank window start)")
    rank_max: int | None = Field(None, ge=1, description="ignore corpus texts ranked at or beyond this")
    danger_margin: float = Field(0.05, ge=-2.0, le=2.0, description="delta: a lineup kills when max >= s(a,p)-delta")
    max_danger: float | None = Field(
        None, ge=-2.0, le=2.0, description="drop negatives with s(a,n)-s(a,p) above this (likely false negatives)"
    )
    seed: int = Field(0, ge=0, description="keys every lineup draw with (seed, candidate_id, k)")
    holdout_fraction: float = Field(0.2, ge=0.0, le=1.0, description="accepted candidates kept out of training")
    keep_near_misses: int = Field(4, ge=0, le=64, description="non-killing negatives kept per row (tier 2)")

    @model_validator(mode="after")
    def _consistent(self) -> MinerConfig:
        if self.min_passes > self.lineups:
            raise ValueError(
                f"min_passes must be <= lineups, but got min_passes={self.min_passes}, lineups={self.lineups}; "
                "lower --min-passes or raise --lineups"
            )
        if self.rank_max is not None and self.rank_max <= self.rank_min:
            raise ValueError(f"rank_max must be > rank_min, but got rank_min={self.rank_min}, rank_max={self.rank_max}")
        return self

    @property
    def window(self) -> int:
        """How many corpus negatives retrieval can yield: ``neighbors`` clipped to the rank window."""
        if self.rank_max is None:
            return self.neighbors
        return min(self.neighbors, self.rank_max - self.rank_min)

    def check_corpus_mining(self) -> None:
        """Refuse a configuration under which no corpus-mined candidate could ever be validated."""
        if self.lineup_size > self.window:
            raise ConfigError(
                f"lineup_size must be <= the negatives retrieved per candidate, but got lineup_size="
                f"{self.lineup_size} with neighbors={self.neighbors}"
                + (f" in rank window [{self.rank_min}, {self.rank_max})" if self.rank_max is not None else "")
                + "; every candidate would be 'insufficient'. Raise --neighbors or lower --lineup-size"
            )

    @classmethod
    def from_options(cls, **options: Any) -> MinerConfig:
        """Build from keyword options, turning validation errors into one-line :class:`ConfigError`."""
        from pydantic import ValidationError

        try:
            return cls(**options)
        except ValidationError as e:
            raise config_error(e, "miner option") from None
