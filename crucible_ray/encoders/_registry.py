"""The registry of encoder kinds: a params model and a module factory per kind."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from torch import nn

from crucible_ray.encoders._base import Encoder
from crucible_ray.encoders._spec import parse_spec
from crucible_ray.errors import EncoderError


@dataclass(frozen=True)
class EncoderKind:
    """One registered kind: ``params`` validates the spec, ``factory`` builds the module."""

    name: str
    params: type[BaseModel]
    factory: Callable[[Any], nn.Module]
    description: str
    state_shapes: Callable[[Any], dict[str, tuple[int, ...]] | None] | None = None


_KINDS: dict[str, EncoderKind] = {}
_ALIASES: dict[str, tuple[str, dict[str, Any]]] = {}
_BUILTIN: set[str] = set()  # the kinds crucible-ray registers itself (every process has them)


def register_encoder(
    name: str,
    params: type[BaseModel],
    factory: Callable[[Any], nn.Module],
    description: str = "",
    *,
    state_shapes: Callable[[Any], dict[str, tuple[int, ...]] | None] | None = None,
) -> None:
    """Register an encoder kind so that specs ``{"kind": name, ...}`` build it.

    ``params`` is a pydantic model (use ``extra="forbid"``, and bound every size); ``factory(params)``
    returns an ``nn.Module`` implementing :class:`~crucible_ray.encoders.EncoderModule`. Module
    construction must be a pure function of the params (seed included) so that an untrained encoder is
    reproducible. ``state_shapes(params)``, when given, returns the name and shape of every tensor of
    ``trainable_state`` (``-1``: any size) without building anything: a checkpoint's tensors are checked
    against it before its encoder is built, so a small file cannot ask for a huge module.
    """
    _KINDS[name] = EncoderKind(name, params, factory, description, state_shapes)


def register_alias(alias: str, kind: str, **defaults: Any) -> None:
    """Make ``alias`` a short name for ``kind`` with some parameters preset."""
    _ALIASES[alias] = (kind, defaults)


def encoder_kinds() -> dict[str, EncoderKind]:
    """The registered kinds by name."""
    return dict(_KINDS)


def mark_builtin() -> None:
    """Record the kinds registered so far as crucible-ray's own (called once, at import)."""
    _BUILTIN.update(_KINDS)


def plugin_kinds(spec: str | dict[str, Any]) -> tuple[EncoderKind, ...]:
    """The user-registered kind ``spec`` needs (empty for a built-in kind): what a Ray actor or Train
    worker must :func:`adopt_kinds` before it can build the encoder, since a kind registered in the
    driver does not exist in other processes. The kind travels pickled by Ray: by value when it is
    defined in the driver script, by reference (its module must be importable there) otherwise.
    """
    kind = parse_spec(spec)["kind"]
    kind = _ALIASES.get(kind, (kind, {}))[0]
    return (_KINDS[kind],) if kind in _KINDS and kind not in _BUILTIN else ()


def adopt_kinds(kinds: tuple[EncoderKind, ...] | list[EncoderKind]) -> None:
    """Register kinds shipped from the driver (:func:`plugin_kinds`) in this process: the driver's
    version wins over one a reused worker process kept from an earlier job (built-in kinds stay)."""
    for kind in kinds:
        if kind.name not in _BUILTIN:
            _KINDS[kind.name] = kind


def normalize_spec(spec: str | dict[str, Any]) -> dict[str, Any]:
    """Validate a spec and return its canonical dict: the kind plus every parameter, defaults filled."""
    raw = parse_spec(spec)
    kind = raw.pop("kind")
    if kind in _ALIASES:
        kind, defaults = _ALIASES[kind]
        raw = {**defaults, **raw}
    if kind not in _KINDS:
        known = sorted([*_KINDS, *_ALIASES])
        raise EncoderError(f"unknown encoder kind {kind!r}; known kinds: {', '.join(known)}.")
    try:
        params = _KINDS[kind].params.model_validate(raw)
    except ValidationError as e:
        first = e.errors(include_url=False)[0]
        field = ".".join(str(p) for p in first["loc"]) or "spec"
        msg = str(first["msg"]).removeprefix("Value error, ")
        raise EncoderError(f"encoder {kind!r}: parameter '{field}': {msg}.") from None
    return {"kind": kind, **params.model_dump(mode="json")}


def expected_state_shapes(spec: str | dict[str, Any]) -> dict[str, tuple[int, ...]] | None:
    """The tensors (name: shape, ``-1`` for any size) an encoder of ``spec`` stores, or None if unknown.

    Nothing is built: this is what a checkpoint's tensors are checked against before allocating.
    """
    canonical = normalize_spec(spec)
    kind = _KINDS[canonical["kind"]]
    if kind.state_shapes is None:
        return None
    return kind.state_shapes(kind.params.model_validate({k: v for k, v in canonical.items() if k != "kind"}))


def build_encoder(spec: str | dict[str, Any], *, device: str | None = None) -> Encoder:
    """Build an untrained encoder from a spec; deterministic (its seed is part of the spec).

    Args:
        spec: ``"hashed-ngram"``, ``"hashed-ngram:dim=256,seed=0"``, ``"minilm:mode=frozen-head"``,
            a JSON string, or a dict with a ``kind`` key.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; default: CUDA when available, else CPU.

    Raises:
        EncoderError: unknown kind, bad parameter, or a missing optional dependency.
    """
    canonical = normalize_spec(spec)
    kind = _KINDS[canonical["kind"]]
    params = kind.params.model_validate({k: v for k, v in canonical.items() if k != "kind"})
    encoder = Encoder(canonical, kind.factory(params))
    return encoder.to(resolve_device(device))


def resolve_device(device: str | None) -> str:
    """``device`` itself, or ``"cuda"`` when a GPU is visible and ``"cpu"`` otherwise."""
    if device:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
