"""Sweep search spaces: a grid over ratio x seed x params, or an Optuna multi-objective search.

A YAML file (``search_spaces/*.yaml``) or CLI flags build a :class:`SweepSpace`; every trial it can
produce is validated as a :class:`~crucible_ray.training.TrainConfig` on load, so a bad value fails
before Ray starts, with the file and field named.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from crucible_ray.config import DEFAULT_POOLS, LEGACY_POOL, Ratio, parse_ints, parse_list
from crucible_ray.errors import ConfigError, DataError, config_error
from crucible_ray.sweeps._trial import Trial
from crucible_ray.training import TrainConfig

# Fields a space sets through its own axes, never through params/train.
_OWN_FIELDS = {"pools", "ratio", "seed", "steps"}
# Fields every trial shares (set under `train`, never an axis): one feature cache, one resource plan.
_FIXED_FIELDS = {"encoder", "workers", "use_gpu"}


def _scalar(value: Any) -> str | int | float | bool | None:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise ValueError(f"must be a number, a string, true/false or null, but got a {_kind(value)}")


def _train_value(value: Any) -> str | int | float | bool | dict[str, str | int | float | bool | None] | None:
    """A training option: a scalar, or (an encoder spec) a flat mapping of names to scalars."""
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise ValueError("a mapping here has string keys only")
        try:
            return {k: _scalar(v) for k, v in value.items()}
        except ValueError:
            raise ValueError("a mapping here (an encoder spec) holds numbers, strings, true/false or null") from None
    return _scalar(value)


def _kind(value: Any) -> str:
    return "mapping" if isinstance(value, dict) else "list" if isinstance(value, list) else type(value).__name__


# Every value of a space has a fixed type: a number, a string, a boolean or null (a training option may
# also be an encoder spec mapping). Nested structure is refused where a value belongs.
Scalar = Annotated[str | int | float | bool | None, PlainValidator(_scalar)]
# (typed Any for callers, who read options such as `workers` back; the validator fixes what is accepted)
TrainValue = Annotated[Any, PlainValidator(_train_value)]


def _ratio_item(value: Any) -> Ratio:
    """A grid ratio: :class:`SweepSpace` parses them against its pools; a ``Grid`` alone uses the default pools."""
    if isinstance(value, Ratio):
        return value
    try:
        return Ratio.parse(value)
    except ConfigError as e:
        raise ValueError(str(e)) from None


# A Ratio in Python, its canonical string (``85_10_5``) in model_dump, JSON and the manifest.
RatioItem = Annotated[Ratio, PlainValidator(_ratio_item), PlainSerializer(str, return_type=str)]


class Grid(BaseModel):
    """Grid axes: every ratio x every seed x every combination of param values."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ratio: list[RatioItem] = Field(min_length=1)
    seed: list[int] = Field(min_length=1)
    params: dict[str, list[Scalar]] = Field(default_factory=dict)


class FloatRange(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    low: float
    high: float
    log: bool = False


class OptunaSpec(BaseModel):
    """An Optuna multi-objective search (maximising retention and generalization).

    ``legacy`` bounds the share (integer percent) of the pool named ``legacy_pool``; the rest of 100 is
    split between the other pools by the sampler. ``params`` are float ranges over training fields.
    One seed per trial. See docs/sweeps.md, "Search spaces".
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    trials: int = Field(ge=1)
    legacy: tuple[int, int] = (50, 100)
    legacy_pool: str = LEGACY_POOL
    params: dict[str, FloatRange] = Field(default_factory=dict)
    sampler_seed: int = 0

    @field_validator("legacy")
    @classmethod
    def _legacy(cls, v: tuple[int, int]) -> tuple[int, int]:
        if not 0 <= v[0] <= v[1] <= 100:
            raise ValueError(f"legacy bounds must satisfy 0 <= low <= high <= 100, but got {list(v)}")
        return v


class SweepSpace(BaseModel):
    """One sweep: its axes, its step milestones, fixed training options and the baseline config."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "sweep"
    pools: tuple[str, ...] = DEFAULT_POOLS
    steps: tuple[int, ...]
    grid: Grid | None = None
    optuna: OptunaSpec | None = None
    seed: int = 42  # the seed of Optuna trials
    train: dict[str, TrainValue] = Field(default_factory=dict)
    baseline: dict[str, Scalar] | None = None  # config columns: ratio, step, grid params

    @field_validator("grid", mode="before")
    @classmethod
    def _grid_ratios(cls, v: Any, info: ValidationInfo) -> Any:
        """Parse the grid's ratios once, against the space's pools (``pools`` is validated first)."""
        pools = info.data.get("pools", DEFAULT_POOLS)
        doc = v.model_dump() if isinstance(v, Grid) else v
        if not isinstance(doc, dict) or not isinstance(doc.get("ratio"), list):
            return v
        try:
            return {**doc, "ratio": [Ratio.parse(r, pools) if isinstance(r, (str, Ratio)) else r for r in doc["ratio"]]}
        except ConfigError as e:
            raise ValueError(str(e)) from None

    def model_post_init(self, _: Any) -> None:
        if (self.grid is None) == (self.optuna is None):
            raise ValueError("a search space has exactly one of 'grid' or 'optuna'")
        if self.optuna is not None and self.optuna.legacy_pool not in self.pools:
            raise ValueError(
                f"optuna.legacy bounds the share of pool {self.optuna.legacy_pool!r}, which is not among the pools "
                f"{list(self.pools)}; set optuna.legacy_pool"
            )
        if self.optuna is not None and len(self.pools) < 2:
            raise ValueError("an Optuna space searches ratios of at least two pools")
        axes = [*(self.grid.params if self.grid else {}), *(self.optuna.params if self.optuna else {})]
        for key in axes:
            if key in _FIXED_FIELDS:
                raise ValueError(f"'{key}' is shared by every trial: set it under 'train', not as an axis")
        for key in (*self.train, *axes):
            if key in _OWN_FIELDS:
                raise ValueError(f"'{key}' is a sweep axis of its own; set it at the top level or under grid")
            if key not in TrainConfig.model_fields:
                raise ValueError(f"'{key}' is not a training option; see `crucible-ray train --help`")

    @property
    def kind(self) -> str:
        return "grid" if self.grid is not None else "optuna"

    def trials(self) -> list[Trial]:
        """Every grid trial (ratio x seed x param combination); empty for an Optuna space."""
        if self.grid is None:
            return []
        names = sorted(self.grid.params)
        out = []
        for ratio, seed in itertools.product(self.grid.ratio, self.grid.seed):
            for values in itertools.product(*(self.grid.params[n] for n in names)):
                out.append(Trial(ratio, seed, dict(zip(names, values, strict=True))))
        return out

    def train_config(self, ratio: Ratio | str, seed: int, params: dict[str, Any]) -> TrainConfig:
        """The training config of one trial."""
        return TrainConfig.from_options(
            pools=self.pools, ratio=ratio, seed=seed, steps=self.steps, **self.train, **params
        )

    def check(self) -> None:
        """Build every trial's config (grid), or the bounds' corners (Optuna): a bad value fails here."""
        if self.grid is not None:
            for t in self.trials():
                self.train_config(t.ratio, t.seed, t.params)
        else:
            assert self.optuna is not None
            corner = {k: r.low for k, r in self.optuna.params.items()}
            for share in self.optuna.legacy:
                self.train_config(self.legacy_corner(share), self.seed, corner)

    def legacy_corner(self, share: int) -> Ratio:
        """The Optuna ratio that gives the legacy pool ``share`` percent and the rest to the last other pool.

        Example:
            >>> space = SweepSpace(steps=[10], optuna={"trials": 1})
            >>> str(space.legacy_corner(60))
            '60_0_40'
        """
        assert self.optuna is not None
        legacy = self.optuna.legacy_pool
        rest = [p for p in self.pools if p != legacy][-1]
        return Ratio.parse({legacy: share, rest: 100 - share}, self.pools)

    def describe(self) -> str:
        if self.grid is not None:
            n = len(self.trials())
            return f"{self.name}: grid of {n} trials x {len(self.steps)} milestones {list(self.steps)}"
        assert self.optuna is not None
        return f"{self.name}: Optuna search, {self.optuna.trials} trials x {len(self.steps)} milestones"


def grid_space(
    ratios: list[str] | str,
    seeds: list[int] | str,
    steps: list[int] | str,
    *,
    pools: tuple[str, ...] = DEFAULT_POOLS,
    train: dict[str, Any] | None = None,
    baseline: str | None = None,
    name: str = "ratio",
) -> SweepSpace:
    """The space of ``crucible-ray sweep ratio``: ratios x seeds, evaluated at every step milestone."""
    ratio_list = parse_list(ratios, "--ratios", lambda r: Ratio.parse(r, pools), "ratios such as 85_10_5,75_15_10")
    seed_list = parse_ints(seeds, "--seeds")
    step_list = parse_ints(steps, "--steps")
    doc: dict[str, Any] = {
        "name": name,
        "pools": pools,
        "steps": step_list,
        "grid": {"ratio": [r.canonical for r in ratio_list], "seed": seed_list},
        "train": train or {},
    }
    if baseline:
        doc["baseline"] = {"ratio": baseline}
    return _build(doc, "sweep options")


def space_with(
    space: SweepSpace | str | Path | None,
    *,
    ratios: str | list[str] | None = None,
    seeds: str | list[int] | None = None,
    steps: str | list[int] | None = None,
    train: dict[str, Any] | None = None,
    pools: Sequence[str] | None = None,
) -> SweepSpace:
    """The space of a sweep call: ``space`` (a :class:`SweepSpace`, a YAML path or a preset name) with
    ``steps`` and the training options ``train`` laid over it; without ``space``, the ratio grid of
    ``ratios`` x ``seeds`` x ``steps`` over ``pools`` (default legacy, expansion, organic; a space file
    names its own). Options given as None are left out.

    Raises:
        ConfigError: neither a space nor a whole grid; a bad list (``--steps 200,x``) or value.
        DataError: an unreadable space file.
    """
    options = {k: v for k, v in (train or {}).items() if v is not None}
    if space is None:
        if ratios is None or seeds is None or steps is None:
            raise ConfigError("a sweep needs a search space, or ratios, seeds and steps for a ratio grid")
        return grid_space(ratios, seeds, steps, train=options, pools=tuple(pools) if pools else DEFAULT_POOLS)
    if pools:
        raise ConfigError("pools are named by the search space file (its 'pools' field), not by --pools")
    sp = space if isinstance(space, SweepSpace) else load_space(space)
    if steps is not None or options:
        doc = sp.model_dump()
        if steps is not None:
            doc["steps"] = parse_ints(steps, "--steps")
        doc["train"] = {**doc["train"], **options}
        sp = SweepSpace(**doc)
        sp.check()
    return sp


def load_space(path: str | Path) -> SweepSpace:
    """Read and validate a YAML search space; a preset name such as ``seed_style`` also works.

    Raises:
        DataError: the file is missing or not YAML. ConfigError: a field is wrong (named in the message).
    """
    p = Path(path)
    if not p.is_file() and p.suffix == "" and not p.parent.name:
        preset = resources.files("crucible_ray.search_spaces") / f"{p.name}.yaml"
        if preset.is_file():
            return _parse(preset.read_text(), f"preset {p.name}")
    if not p.is_file():
        raise DataError(f"{p}: search space file not found (presets: {', '.join(presets())})")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        line = p.read_bytes()[: e.start].count(b"\n") + 1
        raise DataError(f"{p}:{line}: not UTF-8 text: {e.reason}; a search space is a YAML text file") from None
    return _parse(text, str(p))


def presets() -> list[str]:
    """Names of the search spaces shipped in ``search_spaces/``."""
    root = resources.files("crucible_ray.search_spaces")
    return sorted(f.name.removesuffix(".yaml") for f in root.iterdir() if f.name.endswith(".yaml"))


class _AnchorRefused(yaml.YAMLError):
    def __init__(self, mark: Any) -> None:
        super().__init__("YAML anchors and aliases")
        self.problem_mark = mark


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads ``85_10_5`` as the integer 85105; here digits joined by '_' stay strings (ratios).

    Anchors and aliases (``&name``, ``*name``) are refused: a few nested aliases expand into gigabytes
    once the space is written out (the "billion laughs"), and a search space never needs them.
    """

    # (the resolvers are set below, on a copy of SafeLoader's table)

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _AnchorRefused(event.start_mark)
        return super().compose_node(parent, index)


_Loader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:int"]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?0|[-+]?[1-9][0-9]*|0x[0-9a-fA-F]+|0o[0-7]+)$"), list("-+0123456789")
)
# ... and 1e-3 is a float (YAML 1.1 wants a dot in the mantissa).
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9]+[eE][-+]?[0-9]+$"), list("-+0123456789")
)


def _parse(text: str, source: str) -> SweepSpace:
    try:
        doc = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except _AnchorRefused as e:
        raise DataError(
            f"{source}:{e.problem_mark.line + 1}: YAML anchors and aliases (&name, *name) are not allowed in a "
            "search space; write each value out"
        ) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise DataError(f"{source}{where}: not valid YAML ({getattr(e, 'problem', e)})") from None
    except RecursionError:
        raise DataError(f"{source}: YAML nested too deeply; a search space is a few levels deep") from None
    if not isinstance(doc, dict):
        raise DataError(f"{source}: a search space is a YAML mapping (name, steps, grid or optuna, ...)")
    return _build(doc, source)


def _build(doc: dict[str, Any], source: str) -> SweepSpace:
    try:
        space = SweepSpace(**doc)
    except ValidationError as e:
        raise config_error(e, f"{source}: field", whole=source) from None
    try:
        space.check()
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None
    return space
