"""Data model and file I/O: bundles, candidates and corpus documents in JSONL or Parquet."""

from crucible_ray.data._atomic import (
    atomic_folder,
    atomic_path,
    atomic_write,
    check_new_folder,
    remove_interrupted_writes,
    remove_stale_temporaries,
)
from crucible_ray.data._hashing import file_sha256
from crucible_ray.data._io import (
    file_format,
    iter_rows,
    path_inside,
    read_bundles,
    read_candidates,
    read_corpus,
    read_json_object,
    read_rows,
    write_bundles,
    write_candidates,
    write_corpus,
    write_json,
    write_rows,
)
from crucible_ray.data._paths import check_manifest_kind, check_outputs, check_writable_dir, resolved
from crucible_ray.data._schema import ARROW_SCHEMA, TIER_NAMES, Bundle, Candidate, CorpusDoc, Negative

__all__ = [
    "ARROW_SCHEMA",
    "TIER_NAMES",
    "Bundle",
    "Candidate",
    "CorpusDoc",
    "Negative",
    "atomic_folder",
    "atomic_path",
    "check_new_folder",
    "atomic_write",
    "check_manifest_kind",
    "check_outputs",
    "check_writable_dir",
    "resolved",
    "file_format",
    "file_sha256",
    "iter_rows",
    "read_bundles",
    "read_candidates",
    "read_corpus",
    "read_rows",
    "remove_interrupted_writes",
    "remove_stale_temporaries",
    "write_bundles",
    "write_candidates",
    "write_corpus",
    "path_inside",
    "read_json_object",
    "write_json",
    "write_rows",
]
