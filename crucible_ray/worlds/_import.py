"""``import_world``: a world folder from a team's own files (docs/formats.md, "Importing your data").

Each input is JSONL, CSV, Parquet, or a folder written by Hugging Face ``datasets``' ``save_to_disk``
(needs the ``datasets`` package). Column names are mapped with ``columns`` (``{"anchor": "question"}``).
A pool or eval set is given in the project's bundle layout (``negatives`` as a list of
``{"text", "tier"}`` or of strings), in the sentence-transformers layout (``anchor, positive,
negative`` or ``negative_1..n``), whose negatives are tier 3, or as plain pairs, whose negatives are
then mined from the corpus (the ``negatives`` nearest corpus texts under ``negatives_model``, tier 3).
An anchor may have several positives (a list column, or repeated rows as in qrels): each becomes a
bundle or candidate of its own, and the anchor's other positives are never its negatives. Ids of any
type become strings; a bundle or candidate without one gets a stable id from its anchor and positive.

Everything is validated before anything is written, with the file, row and field of the first
problem; the world is written into a temporary folder beside ``out`` and renamed into place, so a
failed import leaves nothing under ``out``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from crucible_ray._rng import stable_fraction
from crucible_ray.data import Bundle, Candidate, CorpusDoc, atomic_folder, check_new_folder, file_sha256
from crucible_ray.errors import ConfigError, DataError
from crucible_ray.worlds._negatives import NegativeMiner, norm_text
from crucible_ray.worlds._sources import id_text, source_rows
from crucible_ray.worlds._world import WorldContent, write_world

#: The pool whose share the guardrails protect, and the retention set, in an imported world.
LEGACY, FROZEN_EVAL, EXPANSION = "legacy", "frozen_eval", "expansion"
_TARGETS = ("id", "text", "anchor", "positive", "negatives", "negative", "bundle_id", "candidate_id", "positive_id")


def import_world(
    out: str | Path,
    *,
    corpus: str | Path,
    legacy: str | Path,
    frozen_eval: str | Path | None = None,
    frozen_fraction: float | None = None,
    candidates: str | Path | None = None,
    expansion: str | Path | None = None,
    pools: Mapping[str, str | Path] | None = None,
    eval_sets: Mapping[str, str | Path] | None = None,
    columns: Mapping[str, str] | None = None,
    seed: int = 0,
    name: str = "imported",
    negatives: int = 5,
    negatives_model: str | dict[str, Any] = "hashed-ngram",
) -> Path:
    """Write a world folder at ``out`` from your files; returns ``out``.

    Args:
        corpus: ``id, text`` rows (what ``mine`` retrieves negatives from).
        legacy: the known hard cases, a pool (bundles or sentence-transformers rows with negatives).
        frozen_eval: the retention eval set; or ``frozen_fraction`` holds that seeded share of the
            legacy bundles as the frozen eval (they stay in the legacy pool: retention measures how
            well the known cases are kept).
        candidates: ``anchor, positive`` (optional id) rows for ``mine`` to validate.
        expansion: an optional expansion pool; ``pools`` and ``eval_sets`` add more, by name.
        columns: target column -> your column (``{"anchor": "question", "positive": "answer"}``).
        seed: the seed of the frozen-eval draw.
        negatives, negatives_model: for plain pairs (no negatives given), how many negatives to mine
            from the corpus per bundle, and the encoder spec that ranks the corpus (its nearest texts
            that are not a positive or the anchor become tier-3 negatives).

    Raises:
        ConfigError: conflicting options, a bad name, ``out`` not empty.
        DataError: a missing or empty file, a mapped column that is not there, a bad row
            (file, row and field named), duplicate corpus ids, an eval set sharing anchors with a pool.
    """
    out = Path(out)
    check_new_folder(out)
    if (frozen_eval is None) == (frozen_fraction is None):
        raise ConfigError("give either a frozen eval file (--frozen-eval) or --frozen-fraction, not both or neither")
    if frozen_fraction is not None and not 0 < frozen_fraction < 1:
        raise ConfigError(f"--frozen-fraction must be between 0 and 1, but got {frozen_fraction}")
    mapping = _columns(columns or {})
    pool_files: dict[str, Path] = {LEGACY: Path(legacy)}
    if expansion is not None:
        pool_files[EXPANSION] = Path(expansion)
    eval_files: dict[str, Path] = {}
    for kind, named in (("pool", pools or {}), ("eval set", eval_sets or {})):
        for stem, path in named.items():
            _check_name(stem, kind, taken={*pool_files, *eval_files, FROZEN_EVAL, "corpus", "candidates"})
            (pool_files if kind == "pool" else eval_files)[stem] = Path(path)

    if negatives < 1:
        raise ConfigError(f"--negatives must be at least 1, but got {negatives}")
    docs = _corpus(Path(corpus), mapping)
    miner = NegativeMiner(docs, negatives_model, negatives)
    read: dict[Any, Any] = {}  # each file's rows, read once for this pass and the import below
    sources = [*pool_files.values(), *eval_files.values(), *(Path(p) for p in (frozen_eval, candidates) if p)]
    for path in sources:  # an anchor's positives in any file are never its negatives in another
        kind = "candidates" if candidates is not None and path == Path(candidates) else "bundles"
        for _, row in _pairs(path, mapping, kind, read):
            if isinstance(row.get("anchor"), str) and isinstance(row.get("positive"), str):
                miner.known.setdefault(row["anchor"], set()).add(norm_text(row["positive"]))
    bundles = {stem: _bundles(path, stem, mapping, miner, read) for stem, path in pool_files.items()}
    if frozen_eval is not None:
        bundles[FROZEN_EVAL] = _bundles(Path(frozen_eval), FROZEN_EVAL, mapping, miner, read)
    else:
        held = [
            b
            for b in bundles[LEGACY]
            if stable_fraction(seed, "frozen-eval", b.bundle_id) < float(frozen_fraction or 0)
        ]
        if not held:
            raise DataError(f"{legacy}: --frozen-fraction {frozen_fraction} holds none of its bundles; raise it")
        bundles[FROZEN_EVAL] = [b.model_copy(update={"pool": FROZEN_EVAL}) for b in held]
    trained = {b.anchor: stem for stem in pool_files for b in bundles[stem]}
    for stem, path in eval_files.items():
        located = _located_bundles(path, stem, mapping, miner, read)
        for where, b in located:
            if b.anchor in trained:
                raise DataError(
                    f"{where}: field 'anchor': {b.anchor[:60]!r} is also in the {trained[b.anchor]!r} "
                    f"pool; an eval set of held-out cases must not share anchors with a training pool"
                )
        bundles[stem] = [b for _, b in located]
    content = WorldContent(
        bundles=bundles,
        candidates={"candidates": _candidates(Path(candidates), mapping, read)} if candidates is not None else {},
        corpus=docs,
    )
    inputs = {"corpus": corpus, LEGACY: legacy, FROZEN_EVAL: frozen_eval, "candidates": candidates}
    inputs.update({stem: p for stem, p in pool_files.items() if stem != LEGACY})
    inputs.update(eval_files)
    source = {
        "kind": "import",
        "files": {k: {"path": str(p), "sha256": _sha256(Path(p))} for k, p in inputs.items() if p is not None},
        "columns": dict(mapping),
    }
    config: dict[str, Any] = {"seed": seed, "frozen_fraction": frozen_fraction, "pools": list(pool_files)}
    if miner.used:
        config["mined_negatives"] = {"per_bundle": negatives, "model": miner.spec, "bundles": miner.used}
    with atomic_folder(out) as tmp:  # a failed import leaves nothing under out
        write_world(
            tmp,
            content,
            world=name,
            config=config,
            source=source,
            pools=list(pool_files),
            eval_sets={FROZEN_EVAL, *eval_files},
        )
    return out


def _columns(columns: Mapping[str, str]) -> dict[str, str]:
    unknown = sorted(set(columns) - set(_TARGETS))
    if unknown:
        raise ConfigError(f"--column {unknown[0]}=...: unknown target column; the targets are {', '.join(_TARGETS)}")
    return dict(columns)


def _check_name(stem: str, kind: str, taken: set[str]) -> None:
    if not stem or not stem.replace("_", "").replace("-", "").isalnum():
        raise ConfigError(f"{kind} name {stem!r}: use letters, digits, '_' and '-' only")
    if stem.lower() in {t.lower() for t in taken}:
        raise ConfigError(f"{kind} name {stem!r} is already used in this world")


def _sha256(path: Path) -> str:
    if path.is_dir():
        h = hashlib.sha256()
        for f in sorted(path.rglob("*")):
            if f.is_file():
                h.update(f.relative_to(path).as_posix().encode())
                h.update(file_sha256(f).encode())
        return h.hexdigest()
    return file_sha256(path)


def _row_id(where: str, row: dict[str, Any], field: str, seen: dict[str, str]) -> str:
    """The row's ``field`` (or ``id``) as a string, else a stable id from its anchor and positive;
    a repeated one is refused with both locations."""
    raw = row.get(field, row.get("id"))
    if raw in (None, ""):
        raw = hashlib.blake2b(f"{row.get('anchor')}\x00{row.get('positive')}".encode(), digest_size=8).hexdigest()
    key = id_text(raw)
    if key in seen:
        raise DataError(f"{where}: field '{field}': duplicate id {key!r} (first at {seen[key]})")
    seen[key] = where
    return key


def _validated(where: str, model: type[Any], row: dict[str, Any]) -> Any:
    try:
        return model.model_validate(row)
    except ValidationError as e:
        first = e.errors(include_url=False)[0]
        field = ".".join(str(x) for x in first["loc"]) or "row"
        raise DataError(f"{where}: field '{field}': {first['msg']}") from None


def _tier(raw: Any) -> Any:
    """A tier cell as an int where it spells one (``3``, ``"3"``, ``3.0``); anything else as it is, for
    validation to name."""
    if isinstance(raw, str) and raw.strip():
        try:
            raw = float(raw)
        except ValueError:
            return raw
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)
    return raw


def _negatives(where: str, row: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The row's negatives as ``{"text", "tier"}`` items, or ``None`` for a plain pair (none given:
    no column, an empty cell, null or an empty list)."""
    if "negatives" in row:
        negs = row["negatives"]
        if negs is None or (isinstance(negs, str) and not negs.strip()) or negs == []:
            return None
        if isinstance(negs, str):  # a CSV cell holding JSON
            try:
                negs = json.loads(negs)
            except json.JSONDecodeError:
                raise DataError(f"{where}: field 'negatives': not a JSON list") from None
        if not isinstance(negs, list):
            raise DataError(f"{where}: field 'negatives': must be a list, but got {type(negs).__name__}")
        if not negs:  # "[]" in a CSV cell
            return None
        return [n if isinstance(n, dict) else {"text": n, "tier": 3} for n in negs]
    numbered = sorted((k for k in row if k.startswith("negative_") and k[9:].isdigit()), key=lambda k: int(k[9:]))
    columns = (["negative"] if "negative" in row else []) + numbered
    out = []
    for col in columns:
        if row[col] in (None, ""):
            continue
        tier = _tier(row.get(f"{col}_tier"))  # negative_2_tier: that negative's tier; 3 (a killer) when absent
        out.append({"text": row[col], "tier": 3 if tier in (None, "") else tier})
    return out or None


_KIND_TARGETS = {
    "bundles": {"anchor", "positive", "negatives", "negative", "bundle_id", "id"},
    "candidates": {"anchor", "positive", "candidate_id", "id", "negatives", "positive_id"},
    "corpus": {"id", "text"},
}


_REQUIRED = frozenset({"anchor", "positive"})


def _for(kind: str, columns: Mapping[str, str]) -> dict[str, str]:
    """The part of the column mapping that applies to one kind of file."""
    return {t: s for t, s in columns.items() if t in _KIND_TARGETS[kind]}


def bundle_st_rows(bundles: list[Bundle], *, ids: bool = True, tiers: bool = True) -> list[dict[str, Any]]:
    """Bundles as sentence-transformers rows ``anchor, positive, negative_1..n``, with the bundle's
    ``id`` and each negative's ``negative_<i>_tier`` unless turned off: what :func:`import_world`
    reads back into the same bundles (so the same training batches for the same seed).
    """
    rows = []
    for b in bundles:
        row: dict[str, Any] = {"id": b.bundle_id} if ids else {}
        row.update(anchor=b.anchor, positive=b.positive)
        if b.pass_count is not None:
            row["pass_count"] = b.pass_count
        for i, n in enumerate(b.negatives, 1):
            row[f"negative_{i}"] = n.text
            if tiers:
                row[f"negative_{i}_tier"] = n.tier
        rows.append(row)
    return rows


def _bundles(
    path: Path, stem: str, columns: Mapping[str, str], miner: NegativeMiner, read: dict[Any, Any] | None = None
) -> list[Bundle]:
    return [b for _, b in _located_bundles(path, stem, columns, miner, read)]


def _pairs(
    path: Path | Any, columns: Mapping[str, str], kind: str, cache: dict[Any, Any] | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """The rows of a pool, eval or candidates file, one per (anchor, positive): a list of positives is
    split into rows (ids suffixed ``#k``), and each row gets ``_others``: the other positives of its
    anchor anywhere in the file (qrels-style repeated rows included)."""
    key = (str(path), kind) if isinstance(path, (str, Path)) else None
    if cache is not None and key in cache:
        return cache[key]
    rows = _read_pairs(path, columns, kind)
    if cache is not None and key is not None:
        cache[key] = rows
    return rows


def _read_pairs(path: Path | Any, columns: Mapping[str, str], kind: str) -> list[tuple[str, dict[str, Any]]]:
    rows: list[tuple[str, dict[str, Any]]] = []
    for where, row in source_rows(path, _for(kind, columns), _REQUIRED):
        positive = row.get("positive")
        if isinstance(positive, list):
            if not positive:
                raise DataError(f"{where}: field 'positive': an empty list")
            for k, p in enumerate(positive):
                split = {**row, "positive": p}
                for id_field in ("id", "bundle_id", "candidate_id"):
                    if split.get(id_field) not in (None, ""):
                        split[id_field] = f"{split[id_field]}#{k}"
                rows.append((where, split))
        else:
            rows.append((where, row))
    by_anchor: dict[str, list[str]] = {}
    for _, row in rows:
        if isinstance(row.get("anchor"), str) and isinstance(row.get("positive"), str):
            by_anchor.setdefault(row["anchor"], []).append(row["positive"])
    for _, row in rows:
        mine, anchor = norm_text(row.get("positive")), row.get("anchor")
        theirs = by_anchor.get(anchor, []) if isinstance(anchor, str) else []  # a bad anchor fails validation
        row["_others"] = list(dict.fromkeys(p for p in theirs if norm_text(p) != mine))
    return rows


def _located_bundles(
    path: Path, stem: str, columns: Mapping[str, str], miner: NegativeMiner, read: dict[Any, Any] | None = None
) -> list[tuple[str, Bundle]]:
    """The bundles of a file, each with where it was read (``path:line`` or ``path:row N``)."""
    pending: list[tuple[str, dict[str, Any]]] = []
    seen: dict[str, str] = {}
    plain: list[tuple[dict[str, Any], list[str]]] = []  # (bundle data, every positive of its anchor)
    for where, row in _pairs(path, columns, "bundles", read):
        bid = _row_id(where, row, "bundle_id", seen)
        data = {"bundle_id": bid, "anchor": row.get("anchor"), "positive": row.get("positive"), "pool": stem}
        if row.get("pass_count") not in (None, ""):
            data["pass_count"] = _tier(row["pass_count"])
        given = _negatives(where, row)
        if given is None:
            _validated(where, Bundle, {**data, "negatives": [{"text": "?", "tier": 3}]})  # its own fields first
            plain.append((data, [str(data["positive"]), *row["_others"]]))
        else:
            banned = {norm_text(t) for t in row["_others"]} | miner.positives_of(data["anchor"])
            banned.discard(norm_text(data["positive"]))
            data["negatives"] = [n for n in given if norm_text(n.get("text")) not in banned]
            if not data["negatives"]:
                raise DataError(f"{where}: field 'negatives': every negative is another positive of this anchor")
        pending.append((where, data))
    if plain:
        mined = miner.mine([str(d["anchor"]) for d, _ in plain], [p for _, p in plain], where=str(path))
        for (data, _), negs in zip(plain, mined, strict=True):
            data["negatives"] = [{"text": t, "tier": 3} for t in negs]
    return [(where, _validated(where, Bundle, data)) for where, data in pending]


def _candidates(path: Path | Any, columns: Mapping[str, str], read: dict[Any, Any] | None = None) -> list[Candidate]:
    out: list[Candidate] = []
    seen: dict[str, str] = {}
    for where, row in _pairs(path, columns, "candidates", read):
        cid = _row_id(where, row, "candidate_id", seen)
        data = {"candidate_id": cid, "anchor": row.get("anchor"), "positive": row.get("positive")}
        if row["_others"]:
            data["other_positives"] = row["_others"]
        if row.get("positive_id") not in (None, ""):
            data["positive_id"] = id_text(row["positive_id"])
        if isinstance(row.get("negatives"), list) and row["negatives"]:
            data["negatives"] = row["negatives"]
        out.append(_validated(where, Candidate, data))
    return out


def read_candidate_table(table: Any, columns: Mapping[str, str] | None = None) -> list[Candidate]:
    """Miner candidates from a pandas ``DataFrame`` or a ``datasets.Dataset`` (sentence-transformers
    style): ``anchor`` and ``positive`` columns, else (as ``mine_hard_negatives`` does) the first two
    columns; ``columns`` maps names (``{"anchor": "question"}``). Optional: an id (``candidate_id``,
    ``id`` or ``_id``), ``negatives``, ``positive_id``. A list of positives splits into rows, and an
    anchor's other positives are never its negatives.

    Raises:
        DataError: a bad row (``DataFrame row N``, field named), fewer than two columns, no rows.
    """
    mapping = dict(columns or {})
    names = [str(c) for c in (getattr(table, "column_names", None) or list(getattr(table, "columns", [])))]
    for target, position in (("anchor", 0), ("positive", 1)):
        if target not in names and target not in mapping:
            if len(names) <= position:
                raise DataError(f"a {type(table).__name__} of candidates needs anchor and positive columns: {names}")
            mapping[target] = names[position]
    if "candidate_id" not in names and "id" not in names and "_id" in names:
        mapping.setdefault("candidate_id", "_id")
    return _candidates(table, mapping)


def _corpus(path: Path, columns: Mapping[str, str]) -> list[CorpusDoc]:
    out: list[CorpusDoc] = []
    seen: dict[str, str] = {}
    for where, row in source_rows(path, _for("corpus", columns), frozenset({"text"})):
        raw = row.get("id", row.get("_id"))  # BEIR names it _id
        if raw in (None, ""):
            raise DataError(f"{where}: field 'id': missing (map your id column with --column id=NAME)")
        doc_id = id_text(raw)
        if doc_id in seen:
            raise DataError(f"{where}: field 'id': duplicate id {doc_id!r} (first at {seen[doc_id]})")
        seen[doc_id] = where
        out.append(_validated(where, CorpusDoc, {"id": doc_id, "text": row.get("text")}))
    return out
