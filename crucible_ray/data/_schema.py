"""Row models of every data file: bundles (training pools and eval sets), candidates, corpus."""

from __future__ import annotations

from typing import Annotated, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Text = Annotated[str, StringConstraints(min_length=1)]
Id = Annotated[str, StringConstraints(min_length=1)]
Tier = Literal[1, 2, 3]

TIER_NAMES: dict[int, str] = {1: "easy", 2: "medium", 3: "killer"}


class Negative(BaseModel):
    """A negative text with its tier: 1 easy (random), 2 medium (same neighbourhood), 3 killer."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    text: Text
    tier: Tier


class Bundle(BaseModel):
    """A training or eval example: an anchor, its positive, tiered negatives, and the pool it belongs to.

    ``pass_count`` is set on organic bundles (how many negative lineups the candidate survived).
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    bundle_id: Id
    anchor: Text
    positive: Text
    negatives: list[Negative] = Field(min_length=1)
    pool: Id
    pass_count: int | None = None


class Candidate(BaseModel):
    """Miner input. Without ``negatives`` the miner retrieves them from a corpus.

    Extra columns are ignored: candidate files often come from other tools.
    """

    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)

    candidate_id: Id
    anchor: Text
    positive: Text
    negatives: list[Text] | None = None
    positive_id: Id | None = None  # the positive's corpus id, if it is in the corpus (never mined as a negative)
    other_positives: list[Text] | None = None  # more positives of the same anchor: never negatives either


class CorpusDoc(BaseModel):
    """A retrievable text for the miner's negative search. Extra columns are ignored."""

    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)

    id: Id
    text: Text


RowModel = type[Bundle] | type[Candidate] | type[CorpusDoc]

ID_FIELD: dict[type[BaseModel], str] = {Bundle: "bundle_id", Candidate: "candidate_id", CorpusDoc: "id"}

ARROW_SCHEMA: dict[type[BaseModel], pa.Schema] = {
    Bundle: pa.schema(
        [
            ("bundle_id", pa.string()),
            ("anchor", pa.string()),
            ("positive", pa.string()),
            ("negatives", pa.list_(pa.struct([("text", pa.string()), ("tier", pa.int64())]))),
            ("pool", pa.string()),
            ("pass_count", pa.int64()),
        ]
    ),
    Candidate: pa.schema(
        [
            ("candidate_id", pa.string()),
            ("anchor", pa.string()),
            ("positive", pa.string()),
            ("negatives", pa.list_(pa.string())),
            ("positive_id", pa.string()),
            ("other_positives", pa.list_(pa.string())),
        ]
    ),
    CorpusDoc: pa.schema([("id", pa.string()), ("text", pa.string())]),
}
