"""The training configuration: one validated, frozen object; bad values fail before any work starts."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from crucible_ray.config import DEFAULT_POOLS, Ratio, parse_ints
from crucible_ray.encoders import DEFAULT_ENCODER, normalize_spec
from crucible_ray.errors import ConfigError, EncoderError, config_error
from crucible_ray.scoreboard import DEFAULT_DANGER_MARGIN, GENERALIZATION_SET, RETENTION_SET


def _ratio_value(value: Any, info: ValidationInfo) -> Ratio:
    """Parse a ratio against the config's pools (``pools`` is validated before ``ratio``)."""
    try:
        return Ratio.parse(value, info.data.get("pools", DEFAULT_POOLS))
    except ConfigError as e:
        raise ValueError(str(e)) from None


# A Ratio in Python, its canonical string (``75_15_10``) in model_dump and JSON (manifests, checkpoints).
RatioValue = Annotated[Ratio, PlainValidator(_ratio_value), PlainSerializer(str, return_type=str)]

# Learning rates that work for each encoder kind when none is given (see docs/training.md): a
# frozen backbone trains only its linear head, which converges at 1e-3 where 1e-4 had not by 2,000 steps.
DEFAULT_LR = {"hashed-ngram": 5e-3, "sentence-transformer": 1e-4, "sentence-transformer:frozen-head": 1e-3}


class TrainConfig(BaseModel):
    """Everything that decides a training run's result (the seed included).

    ``steps`` are milestones: one run trains to the largest and evaluates at each of them (and every
    ``eval_every`` steps), writing ``checkpoint_step_<n>.pt`` and ``scoreboard_step_<n>.json``.

    ``ratio`` is a :class:`~crucible_ray.config.Ratio` over ``pools`` (a string, mapping or sequence is
    parsed on construction; a ``Ratio`` given without ``pools`` brings its own); :meth:`model_dump` and
    JSON hold its canonical string.

    Example:
        >>> cfg = TrainConfig(ratio="75_15_10", steps=[100, 200], seed=1)
        >>> cfg.ratio.weights
        {'legacy': 75, 'expansion': 15, 'organic': 10}
        >>> cfg.model_dump()["ratio"]
        '75_15_10'
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    pools: tuple[str, ...] = DEFAULT_POOLS
    ratio: RatioValue = Field(Ratio.parse("75_15_10"), validate_default=True)
    steps: tuple[int, ...] = (1000,)
    seed: int = Field(42, description="seed of the run: which bundles and negatives each batch draws, and dropout")
    encoder: dict[str, Any] = Field(default_factory=lambda: normalize_spec(DEFAULT_ENCODER))
    batch_size: int = Field(64, ge=2, description="bundles per training batch, split between the pools by the ratio")
    negatives_per_bundle: int = Field(4, ge=0, description="negatives of each bundle in the loss, tier 3 first")
    temperature: float = Field(0.05, gt=0, description="InfoNCE temperature")
    lr: float | None = Field(None, gt=0, description="peak learning rate (default: by encoder kind)")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay")
    warmup_steps: int | None = Field(
        None,
        ge=0,
        description="linear warm-up steps (default: 5% of the first milestone at a constant rate, else of the last)",
    )
    schedule: Literal["cosine", "linear", "constant"] = Field(
        None,  # type: ignore[arg-type]  # filled in by _default_schedule
        description="learning-rate schedule after warm-up (default: constant with several milestones, else cosine)",
    )
    grad_clip: float = Field(1.0, ge=0, description="max gradient norm; 0 turns clipping off")
    eval_every: int = Field(0, ge=0, description="also evaluate (and checkpoint) every N steps; 0: milestones only")
    quality_weighting: bool = Field(False, description="draw organic bundles in proportion to their pass_count")
    workers: int = Field(1, ge=1, description="Ray Train workers (data-parallel)")
    use_gpu: bool = False
    danger_margin: float = DEFAULT_DANGER_MARGIN
    retention_set: str = Field(RETENTION_SET, description="the eval set retention is measured on")
    generalization_set: str = Field(GENERALIZATION_SET, description="the eval set generalization is measured on")

    @model_validator(mode="before")
    @classmethod
    def _default_schedule(cls, data: Any) -> Any:
        """Several milestones train at a constant rate, so each is the model a run to that step gives
        (a schedule decaying to the last milestone would leave the earlier ones at a high rate;
        docs/training.md, "Milestones"); one milestone decays to it (cosine)."""
        if isinstance(data, dict) and data.get("schedule") is None:
            try:
                steps = cls._steps(data.get("steps", (1000,)))
                several = len(tuple(steps)) > 1
            except (ValueError, TypeError):
                several = False  # the steps validator reports it
            return {**data, "schedule": "constant" if several else "cosine"}
        return data

    @model_validator(mode="before")
    @classmethod
    def _pools_of_ratio(cls, data: Any) -> Any:
        if isinstance(data, dict) and "pools" not in data:
            ratio = data.get("ratio")
            if Ratio.is_named(ratio):  # legacy=70,support=30 names its own pools
                try:
                    ratio = Ratio.from_named(str(ratio))
                except ConfigError:
                    return data  # the ratio validator reports it
            if isinstance(ratio, Ratio):
                return {**data, "ratio": ratio, "pools": ratio.pools}
        return data

    @field_validator("steps", mode="after")
    @classmethod
    def _steps_order(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v:
            raise ValueError("steps needs at least one milestone")
        if any(s < 1 for s in v):
            raise ValueError(f"steps must be >= 1, but got {list(v)}")
        if any(b <= a for a, b in zip(v, v[1:], strict=False)):
            raise ValueError(f"steps must be strictly increasing, but got {list(v)}")
        return v

    @field_validator("steps", mode="before")
    @classmethod
    def _steps(cls, v: Any) -> Any:
        if isinstance(v, int):
            return (v,)
        if isinstance(v, str):
            try:
                return tuple(parse_ints(v, "steps"))
            except ConfigError:
                raise ValueError("must be integers joined by ',' such as 5000,10000") from None
        return v

    @field_validator("encoder", mode="before")
    @classmethod
    def _encoder(cls, v: Any) -> dict[str, Any]:
        try:
            return normalize_spec(v)
        except EncoderError as e:
            raise ValueError(str(e)) from None

    @classmethod
    def from_options(cls, **options: Any) -> TrainConfig:
        """Build from keyword options; any problem becomes one :class:`ConfigError` line."""
        try:
            return cls(**options)
        except ValidationError as e:
            raise config_error(e, "training option") from None

    @property
    def max_step(self) -> int:
        return self.steps[-1]

    @property
    def learning_rate(self) -> float:
        if self.lr is not None:
            return self.lr
        kind = str(self.encoder.get("kind"))
        mode = self.encoder.get("mode")
        return DEFAULT_LR.get(f"{kind}:{mode}", DEFAULT_LR.get(kind, 1e-3))

    @property
    def warmup(self) -> int:
        """Warm-up steps: with a constant rate 5% of the first milestone (every milestone is then the
        model a run to that step gives), with a decaying one 5% of the last."""
        if self.warmup_steps is not None:
            return self.warmup_steps
        return max(0, (self.steps[0] if self.schedule == "constant" else self.max_step) // 20)

    def eval_steps(self) -> list[int]:
        """Every step at which the run evaluates and checkpoints: the milestones and multiples of ``eval_every``."""
        points = set(self.steps)
        if self.eval_every:
            points.update(range(self.eval_every, self.max_step + 1, self.eval_every))
        return sorted(points)
