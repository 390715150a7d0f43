"""Sweep search spaces: a grid over ratio x seed x params, or an Optuna multi-objective search.

A YAML file (``search_spaces/*.yaml``) or CLI flags build a :class:`SweepSpace`; every trial it can
produce is validated as a :class:`~crucible_ray.training.TrainConfig` on load, so a bad value fails
before Ray starts, with the file and field named.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, PlainValidator, ValidationError, field_validator

from crucible_ray.config import DEFAULT_POOLS, Ratio
from crucible_ray.errors import ConfigError, DataError
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


class Grid(BaseModel):
    """Grid axes: every ratio x every seed x every combination of param values."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ratio: list[str] = Field(min_length=1)
    seed: list[int] = Field(min_length=1)
    params: dict[str, list[Scalar]] = Field(default_factory=dict)


class FloatRange(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    low: float
    high: float
    log: bool = False


class OptunaSpec(BaseModel):
    """An Optuna multi-objective search (maximising retention and generalization).

    ``legacy`` bounds the legacy share (integer percent); the rest of 100 is split between the other
    pools by the sampler. ``params`` are float ranges over training fields. One seed per trial.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    trials: int = Field(ge=1)
    legacy: tuple[int, int] = (50, 100)
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

    def model_post_init(self, _: Any) -> None:
        if (self.grid is None) == (self.optuna is None):
            raise ValueError("a search space has exactly one of 'grid' or 'optuna'")
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

    def trials(self) -> list[dict[str, Any]]:
        """Every grid trial as ``{"ratio", "seed", "params"}`` (empty for an Optuna space)."""
        if self.grid is None:
            return []
        names = sorted(self.grid.params)
        out = []
        for ratio, seed, *values in itertools.product(
            self.grid.ratio, self.grid.seed, *(self.grid.params[n] for n in names)
        ):
            out.append({"ratio": ratio, "seed": seed, "params": dict(zip(names, values, strict=True))})
        return out

    def train_config(self, ratio: str, seed: int, params: dict[str, Any]) -> TrainConfig:
        """The training config of one trial."""
        return TrainConfig.from_options(
            pools=self.pools, ratio=ratio, seed=seed, steps=self.steps, **self.train, **params
        )

    def check(self) -> None:
        """Build every trial's config (grid), or the bounds' corners (Optuna): a bad value fails here."""
        if self.grid is not None:
            for t in self.trials():
                self.train_config(t["ratio"], t["seed"], t["params"])
        else:
            assert self.optuna is not None
            rest = len(self.pools) - 1
            for legacy in self.optuna.legacy:
                parts = [legacy, 100 - legacy] + [0] * (rest - 1) if rest else [legacy]
                corner = {k: r.low for k, r in self.optuna.params.items()}
                self.train_config("_".join(map(str, parts)), self.seed, corner)

    def describe(self) -> str:
        if self.grid is not None:
            n = len(self.trials())
            return f"{self.name}: grid of {n} trials x {len(self.steps)} milestones {list(self.steps)}"
        assert self.optuna is not None
        return f"{self.name}: Optuna search, {self.optuna.trials} trials x {len(self.steps)} milestones"


def trial_key(ratio: str, seed: int, params: dict[str, Any]) -> str:
    """A stable, readable id of one trial, e.g. ``r75_15_10-s42-3f2a9c1d``."""
    h = hashlib.sha256(json.dumps({"r": ratio, "s": seed, "p": params}, sort_keys=True).encode()).hexdigest()[:8]
    return f"r{ratio}-s{seed}-{h}"


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
    ratio_list = [r.strip() for r in ratios.split(",")] if isinstance(ratios, str) else list(ratios)
    seed_list = parse_ints(seeds, "seeds")
    step_list = parse_ints(steps, "steps")
    for r in ratio_list:
        Ratio.parse(r, pools)
    doc: dict[str, Any] = {
        "name": name,
        "pools": pools,
        "steps": step_list,
        "grid": {"ratio": [Ratio.parse(r, pools).canonical for r in ratio_list], "seed": seed_list},
        "train": train or {},
    }
    if baseline:
        doc["baseline"] = {"ratio": baseline}
    return _build(doc, "sweep options")


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
        err = e.errors()[0]
        where = ".".join(str(x) for x in err["loc"]) or "space"
        msg = str(err["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"{source}: field '{where}': {msg}") from None
    try:
        space.check()
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None
    return space


def parse_ints(value: list[int] | str, name: str) -> list[int]:
    """A comma-separated list of integers given as option ``--name`` (a list passes through).

    Raises:
        ConfigError: an item is not an integer (the option and the value are named).
    """
    items = value.split(",") if isinstance(value, str) else list(value)
    try:
        return [int(x) for x in items if not isinstance(x, str) or x.strip()]
    except (TypeError, ValueError):
        raise ConfigError(f"--{name} takes comma-separated integers such as 42,123, but got {value!r}") from None
