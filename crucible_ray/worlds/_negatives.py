"""Negatives for plain (anchor, positive) pairs: the corpus texts nearest each anchor under an encoder."""

from __future__ import annotations

from typing import Any

from crucible_ray._logging import get_logger
from crucible_ray.data import CorpusDoc
from crucible_ray.errors import DataError

log = get_logger(__name__)


def norm_text(text: Any) -> str:
    return " ".join(str(text).lower().split())


class NegativeMiner:
    """Negatives for plain pairs: the corpus texts nearest each anchor under an encoder, positives and
    the anchor itself left out. The corpus is embedded once, on first use."""

    def __init__(self, docs: list[CorpusDoc], spec: str | dict[str, Any], per_bundle: int) -> None:
        self.docs, self.spec, self.per_bundle, self.used = docs, spec, per_bundle, 0
        self.known: dict[str, set[str]] = {}  # anchor -> its positives (normalised) in every input file
        self._encoder: Any = None
        self._corpus: Any = None

    def positives_of(self, anchor: Any) -> set[str]:
        """Every positive of ``anchor`` in the import's files (normalised), never one of its negatives."""
        return self.known.get(anchor, set()) if isinstance(anchor, str) else set()

    def mine(self, anchors: list[str], positives: list[list[str]], *, where: str) -> list[list[str]]:
        import torch

        from crucible_ray.encoders import build_encoder, normalize_spec

        if self._encoder is None:
            self.spec = normalize_spec(self.spec)
            log.info("mining negatives for plain pairs from %d corpus texts (%s)", len(self.docs), self.spec["kind"])
            self._encoder = build_encoder(self.spec, device="cpu")
            self._corpus = torch.from_numpy(self._encoder.encode([d.text for d in self.docs]))
        norms = [norm_text(d.text) for d in self.docs]
        queries = torch.from_numpy(self._encoder.encode(anchors, role="query"))
        most = max(len(p) + len(self.positives_of(a)) for a, p in zip(anchors, positives, strict=True))
        k = min(len(self.docs), self.per_bundle + most + 1)
        out: list[list[str]] = []
        for i in range(0, len(anchors), 1024):
            top = (queries[i : i + 1024] @ self._corpus.T).topk(k, dim=1).indices.tolist()
            for row, idx in enumerate(top):
                banned = {norm_text(anchors[i + row]), *(norm_text(p) for p in positives[i + row])}
                banned |= self.positives_of(anchors[i + row])
                negs = list(dict.fromkeys(self.docs[j].text for j in idx if norms[j] not in banned))
                out.append(negs[: self.per_bundle])
        if not all(out):
            raise DataError(f"{where}: the corpus has no text to use as a negative for some anchors")
        self.used += len(out)
        return out
