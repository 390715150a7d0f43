"""A trained checkpoint as a sentence-transformers model folder, the form a team serves.

``SentenceTransformer(folder).encode(texts)`` gives the embeddings ``load_encoder(checkpoint).encode``
gives (docs/training.md, "Getting a model out"):

- ``frozen-head``: the backbone's own modules, then a ``Dense`` layer holding the trained head
  (identity activation), then ``Normalize``;
- ``full``: the trained transformer's modules, with ``Normalize`` appended when the model does not
  already end with one (crucible-ray's embeddings are always L2-normalised).

The folder is written beside its destination and renamed into place when complete; weights are
safetensors. ``hashed-ngram`` has no sentence-transformers form and is refused.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import torch

from crucible_ray.data import atomic_folder, check_new_folder
from crucible_ray.encoders._checkpoint import load_encoder, read_checkpoint
from crucible_ray.errors import EncoderError

#: Written into the model folder: what trained it, for the model card and for tools.
EXPORT_INFO = "crucible_ray.json"


def export_sentence_transformer(
    checkpoint: str | Path, out: str | Path, *, scoreboard: str | Path | None = None
) -> Path:
    """Write ``checkpoint`` as a sentence-transformers model folder at ``out`` (which must not exist, or be
    an empty folder).

    Args:
        checkpoint: a ``.pt`` checkpoint of a ``sentence-transformer`` encoder (either mode).
        out: the model folder to create.
        scoreboard: the scores to put in the model card (default: ``scoreboard_step_<step>.json`` beside
            the checkpoint, when there is one).

    Raises:
        EncoderError: not a checkpoint, or a kind that cannot be exported (``hashed-ngram``).
        ConfigError: ``out`` exists and is not an empty folder.

    Example:
        >>> export_sentence_transformer("runs/a/checkpoint_final.pt", "models/a")  # doctest: +SKIP
        >>> SentenceTransformer("models/a").encode(["a small dog"])  # doctest: +SKIP
    """
    checkpoint, out = Path(checkpoint), Path(out)
    check_new_folder(out)
    payload = read_checkpoint(checkpoint)
    kind = payload["encoder_spec"].get("kind")
    if kind != "sentence-transformer":
        raise EncoderError(
            f"{checkpoint}: a {kind!r} checkpoint cannot be exported as a sentence-transformers model "
            "(only sentence-transformer encoders, full or frozen-head, have that form)"
        )
    encoder = load_encoder(checkpoint, device="cpu")
    model = _as_sentence_transformer(encoder.module)
    board = _scoreboard(checkpoint, payload, scoreboard)
    info = {
        "checkpoint": str(checkpoint),
        "encoder_spec": payload["encoder_spec"],
        "encoder_fingerprint": payload.get("encoder_fingerprint"),
        "step": payload.get("step"),
        "train_config": payload.get("train_config", {}),
        "scoreboard": board,
    }
    with atomic_folder(out) as tmp:  # written beside out, renamed into place when complete
        model.save(str(tmp), safe_serialization=True, create_model_card=False)
        (tmp / EXPORT_INFO).write_text(json.dumps(info, indent=2, sort_keys=True, default=str) + "\n")
        (tmp / "README.md").write_text(_model_card(info))
    return out


def _as_sentence_transformer(module: Any) -> Any:
    """The encoder's module as one ``SentenceTransformer`` whose output is the encoder's embedding."""
    from sentence_transformers import SentenceTransformer

    try:
        from sentence_transformers.sentence_transformer.modules import Dense, Normalize
    except ImportError:  # sentence-transformers before 6
        from sentence_transformers.models import Dense, Normalize  # type: ignore[no-redef]

    backbone = module.backbone
    parts = list(backbone)
    if module.head is not None:
        head = module.head
        dense = Dense(
            in_features=head.in_features,
            out_features=head.out_features,
            bias=True,
            activation_function=torch.nn.Identity(),
            init_weight=head.weight.detach().clone(),
            init_bias=head.bias.detach().clone(),
        )
        parts += [dense, Normalize()]
    elif not isinstance(parts[-1], Normalize):
        parts.append(Normalize())
    # The prompts it was trained and scored with (the spec may have overridden the card's), by role.
    prompts = {**(getattr(backbone, "prompts", None) or {})}
    prompts.update({role: module.prompts.get(role, "") for role in ("query", "document")})
    model = SentenceTransformer(modules=parts, device="cpu", prompts=prompts)
    model.max_seq_length = backbone.max_seq_length  # the length it was trained and scored with
    return model


def _scoreboard(checkpoint: Path, payload: dict[str, Any], given: str | Path | None) -> dict[str, Any] | None:
    path = Path(given) if given is not None else checkpoint.with_name(f"scoreboard_step_{payload.get('step')}.json")
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _model_card(info: dict[str, Any]) -> str:
    cfg = info.get("train_config") or {}
    spec = info.get("encoder_spec") or {}
    board = info.get("scoreboard") or {}
    esc = html.escape  # the card is Markdown, which renders HTML: user text is escaped

    def fmt(v: Any) -> str:
        return f"{v:.4f}" if isinstance(v, float) else esc(str(v))

    lines = [
        "---",
        "library_name: sentence-transformers",
        "tags: [sentence-transformers, crucible-ray]",
        "---",
        "",
        "# A crucible-ray model",
        "",
        f"Trained by crucible-ray from `{esc(str(spec.get('model', '?')))}` ({esc(str(spec.get('mode', '?')))}).",
        "",
        "| | |",
        "|---|---|",
        f"| pool ratio | {fmt(cfg.get('ratio', '?'))} over {fmt(', '.join(map(str, cfg.get('pools', []))))} |",
        f"| steps | {fmt(info.get('step'))} |",
        f"| seed | {fmt(cfg.get('seed', '?'))} |",
        f"| retention ({fmt(board.get('retention_set', 'frozen_eval'))}, tier 3) | {fmt(board.get('retention'))} |",
        f"| generalization ({fmt(board.get('generalization_set', '?'))}, tier 3) | "
        f"{fmt(board.get('generalization'))} |",
        "",
        "```python",
        "from sentence_transformers import SentenceTransformer",
        "model = SentenceTransformer('path/to/this/folder')",
        "```",
        "",
        f"Everything crucible-ray knows about the run is in `{EXPORT_INFO}`.",
        "",
    ]
    return "\n".join(lines)
