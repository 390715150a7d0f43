"""The encoder object every part of crucible-ray uses: a torch module plus its spec."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Sequence
from typing import Any, Literal, Protocol, cast, runtime_checkable

import numpy as np
import torch
from torch import nn

from crucible_ray.encoders._streams import CPU_STREAM_BATCH, encode_sorted

Role = Literal["query", "document"]
"""What a text is to the model: an anchor (``query``) or a positive, negative or corpus text (``document``)."""


@runtime_checkable
class EncoderModule(Protocol):
    """What an encoder kind implements (as an ``nn.Module``).

    ``featurize`` turns texts into model inputs (tokenisation, hashing, or frozen-backbone embeddings;
    no gradient flows through it); ``forward`` maps features to unnormalised embeddings (n, d).
    ``trainable_state`` is what a checkpoint stores (for a frozen backbone, only the head).
    A kind may also set ``prompts`` (``{"query": ..., "document": ...}``), the text put before each
    role's texts (sentence-transformers models declare them); none by default; and
    ``stream_encoding = True`` when :meth:`Encoder.encode` on a CPU should run its batches in
    single-threaded streams (crucible_ray/encoders/_streams.py); off by default.
    """

    dim: int

    def featurize(self, texts: Sequence[str], device: torch.device) -> Any: ...

    def forward(self, features: Any) -> torch.Tensor: ...

    def trainable_state(self) -> dict[str, torch.Tensor]: ...

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None: ...

    def fingerprint_extra(self) -> str: ...


class Encoder:
    """A text encoder: ``encode(texts) -> float32 (n, d)`` with L2-normalised rows.

    Build one with :func:`crucible_ray.build_encoder` (untrained, deterministic from its spec) or
    :func:`crucible_ray.load_encoder` (from a checkpoint).

    Example:
        >>> enc = build_encoder("hashed-ngram:dim=64,seed=0")  # doctest: +SKIP
        >>> enc.encode(["a small dog", "a puppy"]).shape  # doctest: +SKIP
        (2, 64)
    """

    def __init__(self, spec: dict[str, Any], module: nn.Module) -> None:
        self.spec = dict(spec)
        self.module = module
        self._impl = cast(EncoderModule, module)  # the kind's own methods, typed
        self._fingerprint: str | None = None
        # encode() switches the module to eval mode and back: calls from several threads take turns, so
        # none runs in another's train mode nor leaves the module in the wrong one (each call already
        # uses every torch thread).
        self._encoding = threading.RLock()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_encoding"]  # a lock does not pickle; each copy gets its own
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._encoding = threading.RLock()

    @property
    def dim(self) -> int:
        """Embedding dimension."""
        return int(self._impl.dim)

    @property
    def device(self) -> torch.device:
        """The device the module's parameters live on (CPU when it has none)."""
        for p in self.module.parameters():
            return p.device
        return torch.device("cpu")

    def to(self, device: str | torch.device) -> Encoder:
        """Move the module to ``device`` (e.g. ``"cuda"``); returns self."""
        self.module.to(device)
        self._fingerprint = None
        return self

    @property
    def prompts(self) -> dict[str, str]:
        """The prompt put before the texts of each role (empty: none); see :meth:`prompted`."""
        return dict(getattr(self.module, "prompts", None) or {})

    @property
    def query_prompt_differs(self) -> bool:
        """True when an anchor is encoded differently from the same text as a document."""
        p = self.prompts
        return p.get("query", "") != p.get("document", "")

    def prompted(self, texts: Sequence[str], role: Role | None) -> list[str]:
        """``texts`` as the model sees them in ``role`` (its prompt first); ``None``: as given."""
        prompt = self.prompts.get(role, "") if role else ""
        return [prompt + t for t in texts] if prompt else list(texts)

    def embed(self, texts: Sequence[str], *, role: Role | None = "document") -> torch.Tensor:
        """L2-normalised embeddings as a tensor on the module's device, with gradients (for training).

        ``role`` picks the prompt (``None``: the texts are already prompted, see :meth:`prompted`).
        """
        features = self._impl.featurize(self.prompted(texts, role), self.device)
        out = self._impl.forward(features)  # (n, d)
        return nn.functional.normalize(out, dim=-1)

    @torch.inference_mode()  # no autograd bookkeeping at all (as sentence-transformers encodes): numpy out
    def encode(self, texts: Sequence[str], *, batch_size: int = 256, role: Role | None = "document") -> np.ndarray:
        """Encode ``texts`` in eval mode; returns float32 (n, d), rows L2-normalised, in input order.

        ``role``: ``"query"`` for anchors, ``"document"`` (default) for everything else; it picks the
        model's prompt. Texts are batched longest first, so a padded (transformer) batch holds texts of
        similar length; the result does not depend on that order beyond float rounding. A streaming
        encoder on a CPU takes at most ``CPU_STREAM_BATCH`` (32) texts per batch (:meth:`batch_for`).
        Calls on one encoder from several threads run one after the other.
        """
        with self._encoding:
            was_training = self.module.training
            self.module.eval()
            try:
                return encode_sorted(
                    self.prompted(texts, role),
                    lambda batch: self.embed(batch, role=None).float().cpu().numpy(),
                    batch_size=self.batch_for(batch_size),
                    dim=self.dim,
                    streams=self.encode_streams(),
                )
            finally:
                self.module.train(was_training)

    def encode_streams(self) -> int:
        """How many single-threaded streams :meth:`encode` runs batches in: on a CPU, one per torch
        thread of the caller for a kind that asks for it (``stream_encoding``); else 1."""
        return torch.get_num_threads() if self._streams_on_cpu() else 1

    def batch_for(self, batch_size: int) -> int:
        """The batch an encode of ``batch_size`` texts per batch uses: at most ``CPU_STREAM_BATCH`` for
        a streaming kind on a CPU (every core holds a batch at once), else ``batch_size``. It does not
        depend on the core count, so the vectors are the same bits on every machine."""
        return min(batch_size, CPU_STREAM_BATCH) if self._streams_on_cpu() else batch_size

    def _streams_on_cpu(self) -> bool:
        return self.device.type == "cpu" and bool(getattr(self.module, "stream_encoding", False))

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """The tensors a checkpoint stores, detached and on the CPU."""
        return {k: v.detach().cpu().clone() for k, v in self._impl.trainable_state().items()}

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        """Load tensors saved by :meth:`trainable_state`."""
        self._impl.load_trainable_state(state)
        self._fingerprint = None

    def weights_changed(self) -> None:
        """Forget the cached fingerprint (call after an optimizer changed the weights in place)."""
        self._fingerprint = None

    def fingerprint(self) -> str:
        """A sha256 over the spec, the trainable tensors and any frozen weights' identity."""
        if self._fingerprint is None:
            h = hashlib.sha256(json.dumps(self.spec, sort_keys=True).encode())
            h.update(self._impl.fingerprint_extra().encode())
            for name, tensor in sorted(self.trainable_state().items()):
                h.update(name.encode())
                h.update(tensor.contiguous().numpy().tobytes())
            self._fingerprint = h.hexdigest()
        return self._fingerprint

    def __repr__(self) -> str:
        return f"Encoder(spec={self.spec!r}, dim={self.dim})"
