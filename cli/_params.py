"""click parameter types that validate on parse (bad values exit 2 with one line)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from crucible_ray.config import Ratio
from crucible_ray.errors import CrucibleError


class RatioParam(click.ParamType):
    """A pool ratio such as ``75_15_10``."""

    name = "ratio"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Ratio:
        if isinstance(value, Ratio):
            return value
        try:
            return Ratio.parse(str(value))
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
