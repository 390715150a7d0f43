"""click parameter types that validate on parse (bad values exit 2 with one line)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from pydantic import BaseModel

from crucible_ray.config import Ratio
from crucible_ray.errors import CrucibleError


class RatioParam(click.ParamType):
    """A pool ratio such as ``75_15_10`` (default pools) or ``legacy=70,support=30`` (pools by name)."""

    name = "ratio"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Ratio | str:
        """A named ratio as a :class:`Ratio`; a positional one checked and kept as text: its pools are the
        world's (``70_30`` on a world of pools ``legacy, support``), known only once the world is read."""
        if isinstance(value, Ratio):
            return value
        try:
            if Ratio.is_named(value):  # legacy=70,support=30: the pools are the names, in that order
                return Ratio.from_named(str(value))
            parts = str(value).replace(",", "_").split("_")
            Ratio.parse(str(value), tuple(f"pool{i}" for i in range(len(parts))))  # integers summing to 100
            return str(value)
        except CrucibleError as e:
            self.fail(str(e), param, ctx)


class KeyValueParam(click.ParamType):
    """``KEY=VALUE``; the value is read as int, float or bool when it looks like one."""

    name = "key=value"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[str, Any]:
        if isinstance(value, tuple):
            return value
        key, eq, raw = str(value).partition("=")
        if not eq or not key.strip():
            self.fail(f"expected KEY=VALUE, got {value!r}", param, ctx)
        from crucible_ray.encoders import parse_scalar

        return key.strip().replace("-", "_"), parse_scalar(raw.strip())


class EvalSetParam(click.ParamType):
    """An eval set file, optionally named: ``PATH`` or ``NAME=PATH``."""

    name = "[name=]path"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[str | None, Path]:
        if isinstance(value, tuple):
            return value
        text = str(value)
        name, eq, path = text.partition("=")
        if eq and name and "/" not in name:
            return name, Path(path)
        return None, Path(text)


RATIO = RatioParam()
KEY_VALUE = KeyValueParam()
EVAL_SET = EvalSetParam()


def model_help(description: str | None) -> str:
    """A field's description as option help: a capital first letter and a full stop."""
    text = description or ""
    return text[:1].upper() + text[1:] + "."


def model_option(name: str, model: type[BaseModel]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A click option for field ``name`` of ``model``: ``--lineup-size`` for ``lineup_size``, with the
    field's type, default and description (a bool field is a flag), so the CLI cannot drift from the
    config model that validates it."""
    field = model.model_fields[name]
    flag = f"--{name.replace('_', '-')}"
    if field.annotation is bool:
        return click.option(flag, name, is_flag=True, default=field.default, help=model_help(field.description))
    args = (field.annotation, *getattr(field.annotation, "__args__", ()))
    choices = getattr(field.annotation, "__args__", ()) if getattr(field.annotation, "__origin__", None) else ()
    kind: Any
    if all(isinstance(c, str) for c in choices) and choices:  # a Literal of names
        kind = click.Choice(list(choices))
    elif float in args:
        kind = float
    elif int in args:
        kind = int
    else:
        kind = str
    return click.option(
        flag,
        name,
        type=kind,
        default=field.default,
        show_default=field.default is not None,
        help=model_help(field.description),
    )


def mlflow_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--mlflow-uri`` and ``--mlflow-experiment`` (docs/tracking.md)."""
    f = click.option(
        "--mlflow-experiment",
        default=None,
        help="The MLflow experiment (default crucible-ray); created when it is new.",
    )(f)
    return click.option(
        "--mlflow-uri",
        default=None,
        metavar="URI",
        help="Also log to MLflow at this tracking URI, e.g. sqlite:///mlflow.db or http://127.0.0.1:5000 "
        "(needs the mlflow extra).",
    )(f)


def wandb_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--wandb-project`` (docs/tracking.md)."""
    return click.option(
        "--wandb-project",
        default=None,
        help="Also log each trial to Weights & Biases in this project, one run per trial under "
        "<output-dir>/wandb/ (WANDB_MODE=offline keeps them there; needs the wandb extra).",
    )(f)
