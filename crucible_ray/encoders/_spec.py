"""Encoder specs: ``{"kind": ..., params}`` as a dict, a JSON string, or ``kind:key=value,...``."""

from __future__ import annotations

import json
from typing import Any

from crucible_ray.errors import EncoderError


def parse_scalar(text: str) -> Any:
    """A command-line value as the scalar it spells: true/false, none/null, an int, a float, else the text.

    Example:
        >>> parse_scalar("64"), parse_scalar("1e-4"), parse_scalar("True"), parse_scalar("cosine")
        (64, 0.0001, True, 'cosine')
    """
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_spec(spec: str | dict[str, Any]) -> dict[str, Any]:
    """Turn any accepted spec form into a plain dict with a ``kind`` key (not yet validated).

    Example:
        >>> parse_spec("hashed-ngram:dim=256,seed=0")
        {'kind': 'hashed-ngram', 'dim': 256, 'seed': 0}
        >>> parse_spec('{"kind": "minilm", "mode": "frozen-head"}')
        {'kind': 'minilm', 'mode': 'frozen-head'}
    """
    if isinstance(spec, dict):
        out = dict(spec)
    elif isinstance(spec, str):
        text = spec.strip()
        if text.startswith("{"):
            try:
                out = json.loads(text)
            except json.JSONDecodeError as e:
                raise EncoderError(f"encoder spec is not valid JSON: {e.msg} (column {e.colno})") from None
            if not isinstance(out, dict):
                raise EncoderError(f"a JSON encoder spec must be an object, but got {text!r}.")
        else:
            kind, _, rest = text.partition(":")
            out = {"kind": kind.strip()}
            for item in filter(None, (p.strip() for p in rest.split(","))):
                key, eq, value = item.partition("=")
                if not eq or not key.strip():
                    raise EncoderError(
                        f"encoder spec parameters are key=value pairs separated by commas, "
                        f"but got {item!r} in {spec!r} (e.g. hashed-ngram:dim=256,seed=0)."
                    )
                out[key.strip()] = parse_scalar(value.strip())
    else:
        raise EncoderError(f"an encoder spec is a string or a dict, but got {type(spec).__name__}.")
    if not isinstance(out.get("kind"), str) or not out["kind"]:
        raise EncoderError(f"an encoder spec needs a 'kind', but got {spec!r}.")
    return out


def spec_to_string(spec: dict[str, Any]) -> str:
    """The compact ``kind:key=value`` form of a spec (parameters sorted)."""
    params = ",".join(f"{k}={spec[k]}" for k in sorted(spec) if k != "kind")
    return spec["kind"] + (f":{params}" if params else "")
