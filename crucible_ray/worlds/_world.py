"""A world on disk: its pools, eval sets, candidates, corpus, and the manifest that lists them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crucible_ray.config import DEFAULT_POOLS
from crucible_ray.data import (
    Bundle,
    Candidate,
    CorpusDoc,
    file_format,
    file_sha256,
    path_inside,
    write_bundles,
    write_candidates,
    write_corpus,
)
from crucible_ray.errors import DataError
from crucible_ray.provenance import MANIFEST, build_manifest, write_manifest

WORLD_SCHEMA_VERSION = 1

# File roles of a world, by stem. Pools are training bundles; eval sets are scored, never trained on.
POOL_FILES = ("legacy", "expansion", "organic")
#: The label-based generalization reference: bundles from families never mined or trained on (WordNet).
REFERENCE_SET = "organic_reference"
EVAL_FILES = ("frozen_eval", "organic_holdout", REFERENCE_SET)
CANDIDATE_FILES = ("expansion_candidates", "organic_candidates")
CORPUS_FILE = "corpus"
#: The ``origin`` a world manifest records for a pool or eval set a mining run wrote (a later run may replace it).
MINED_ORIGIN = "mined"


@dataclass(frozen=True)
class WorldContent:
    """What a world builder produces before it is written."""

    bundles: dict[str, list[Bundle]]  # pools and eval sets, by file stem
    candidates: dict[str, list[Candidate]]
    corpus: list[CorpusDoc]


def write_world(
    out: str | Path,
    content: WorldContent,
    *,
    world: str,
    config: dict[str, Any],
    source: dict[str, Any],
    fmt: str = "jsonl",
    pools: list[str] | None = None,
    eval_sets: set[str] | None = None,
) -> Path:
    """Write every file atomically, then the manifest (last, so a complete manifest means a complete world).

    ``pools`` (their order is the ratio order) and ``eval_sets`` name the roles of the bundle files;
    by default the standard names decide (``legacy``, ``expansion``, ``organic``; ``frozen_eval``...).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ext = {"jsonl": ".jsonl", "parquet": ".parquet"}[fmt]
    files: dict[str, dict[str, Any]] = {}

    def record(stem: str, path: Path, rows: int, role: str) -> None:
        files[stem] = {"path": path.name, "rows": rows, "role": role, "sha256": file_sha256(path)}

    for stem, bundles in content.bundles.items():
        path = out / f"{stem}{ext}"
        role = "eval" if stem in (EVAL_FILES if eval_sets is None else eval_sets) else "pool"
        record(stem, path, write_bundles(path, bundles), role)
    for stem, candidates in content.candidates.items():
        path = out / f"{stem}{ext}"
        record(stem, path, write_candidates(path, candidates), "candidates")
    corpus_path = out / f"{CORPUS_FILE}{ext}"
    record(CORPUS_FILE, corpus_path, write_corpus(corpus_path, content.corpus), "corpus")
    manifest = build_manifest(
        "world",
        schema_version=WORLD_SCHEMA_VERSION,
        world=world,
        config=config,
        seed=config.get("seed"),
        source=source,
        files=files,
        pools=[s for s in (POOL_FILES if pools is None else pools) if s in files],
    )
    write_manifest(out, manifest)
    return out


_HASHES: dict[tuple[str, int, int, int], str] = {}


def _cached_sha256(path: Path) -> str:
    """The file's sha256, computed once per (path, inode, size, modification time) in this process."""
    st = path.stat()
    key = (str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        _HASHES[key] = file_sha256(path)
    return _HASHES[key]


@dataclass(frozen=True)
class World:
    """A world folder opened through its manifest.

    Example:
        >>> w = World.open("worlds/wordnet")  # doctest: +SKIP
        >>> w.path("frozen_eval")  # doctest: +SKIP
        PosixPath('worlds/wordnet/frozen_eval.jsonl')
    """

    root: Path
    manifest: dict[str, Any]

    @classmethod
    def open(cls, root: str | Path) -> World:
        """Open the world in folder ``root``, checking its manifest: every listed file must lie inside the
        folder and still have the sha256 the manifest recorded.

        Raises:
            DataError: no folder or manifest, a malformed manifest, a path leading out of the folder,
                or a file that changed since the world was built.
        """
        root = Path(root)
        path = root / MANIFEST
        if not root.is_dir():
            raise DataError(f"{root}: no such data folder (build one with `crucible-ray data build`)")
        if not path.is_file():
            raise DataError(f"{path}: no world manifest (build the folder with `crucible-ray data build`)")
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{e.lineno}: invalid JSON: {e.msg}") from None
        except (UnicodeDecodeError, RecursionError):
            raise DataError(f"{path}: not a world manifest (not UTF-8 JSON, or nested too deeply)") from None
        if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
            raise DataError(f"{path}: field 'files': missing; not a world manifest")
        pools = manifest.get("pools", [])
        if not isinstance(pools, list) or not all(isinstance(p, str) for p in pools):
            raise DataError(f"{path}: field 'pools': must be a list of pool names")
        world = cls(root, manifest)
        for stem in manifest["files"]:
            world.path(stem)  # every listed file inside the folder and, where recorded, unchanged
        return world

    @property
    def name(self) -> str:
        return str(self.manifest.get("world", "?"))

    def has(self, stem: str) -> bool:
        return stem in self.manifest["files"]

    def path(self, stem: str) -> Path:
        """The file of ``stem`` (``legacy``, ``frozen_eval``, ``corpus``...), checked before it is read.

        The manifest's path must name a file inside the world folder (no ``..``, no absolute path, no
        link leading out), and when the manifest records a sha256 the file must still have it.

        Raises:
            DataError: no such stem, a path leading out of the folder, or a file that changed since
                the world was built.
        """
        entry = self.manifest["files"].get(stem)
        if entry is None:
            raise DataError(f"{self.root}: this world has no {stem!r} file (it has {sorted(self.manifest['files'])})")
        where = f"{self.root / MANIFEST}: files.{stem}"
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str) or not entry["path"]:
            raise DataError(f"{where}: field 'path': missing or not a file name")
        name = entry["path"]
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise DataError(
                f"{where}: field 'path': {name!r} leads out of the world folder; a world lists only files inside "
                "its folder (pass a file outside it on the command line instead)"
            )
        p = path_inside(self.root, name)
        if p is None:
            raise DataError(f"{where}: field 'path': {name!r} is a link that leads out of the world folder")
        file_format(p)
        expected = entry.get("sha256")
        if isinstance(expected, str) and p.is_file() and _cached_sha256(p) != expected:
            raise DataError(
                f"{p}: the file changed since the world was built (its sha256 differs from the manifest's "
                f"files.{stem}.sha256); rebuild the world, or restore the file"
            )
        return p

    def register(self, stem: str, path: str | Path, *, role: str, rows: int, origin: str | None = None) -> World:
        """Record a file written into this world (a mined organic pool, a vetted expansion pool).

        ``origin`` says what wrote it (``"mined"``: a mining run, which a later run may replace).
        The manifest is rewritten atomically; returns the updated world.
        """
        path = Path(path)
        if path.resolve().parent != self.root.resolve():
            raise DataError(f"{path}: only files inside the world folder {self.root} can be registered")
        manifest = json.loads(json.dumps(self.manifest))
        entry = {"path": path.name, "rows": rows, "role": role, "sha256": file_sha256(path)}
        if origin is not None:
            entry["origin"] = origin
        manifest["files"][stem] = entry
        if role == "pool":
            pools = list(manifest.get("pools", []))
            if stem not in pools:
                pools.append(stem)
            manifest["pools"] = pools
        write_manifest(self.root, manifest)
        return World(self.root, manifest)

    @classmethod
    def find(cls, folder: str | Path) -> World | None:
        """The world in ``folder``, or ``None`` when the folder holds no world manifest."""
        folder = Path(folder)
        if not (folder / MANIFEST).is_file():
            return None
        world = cls.open(folder)
        return world if world.manifest.get("kind") == "world" else None

    @property
    def eval_sets(self) -> dict[str, Path]:
        """Eval set files of this world, by name: every file whose role is ``eval`` (any name), in manifest
        order, and the standard names (``frozen_eval``, ``organic_holdout``, ``organic_reference``) when a
        hand-written manifest gives them no role."""
        files = self.manifest["files"]
        names = [s for s, e in files.items() if isinstance(e, dict) and e.get("role") == "eval"]
        names += [
            s
            for s in EVAL_FILES
            if s in files and s not in names and not (isinstance(files[s], dict) and files[s].get("role"))
        ]
        return {s: self.path(s) for s in names}

    @property
    def pools(self) -> dict[str, Path]:
        """Training pool files present in this world, by pool name."""
        return {s: self.path(s) for s in self.manifest.get("pools", []) if self.has(s)}

    def ratio_pools(self) -> tuple[str, ...]:
        """The pools a positional ratio (``70_20_10``) is read against: the world's declared order when it
        has pools of its own names; the default ``legacy, expansion, organic`` otherwise (whatever order
        ``mine`` and ``expand`` registered them in)."""
        declared = tuple(str(p) for p in self.manifest.get("pools", []))
        if declared and not set(declared) <= set(DEFAULT_POOLS):
            return declared
        return DEFAULT_POOLS
