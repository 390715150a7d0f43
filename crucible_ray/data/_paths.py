"""Output paths that cannot destroy inputs: checked before any work starts.

Every command names what it reads (files, and folders such as a world) and what it writes. Before it
does anything, :func:`check_outputs` refuses an output that is (or resolves to, through symbolic
links) one of its inputs, a folder it reads, or another of its outputs, and an output folder that
cannot be written. The error is one line naming both paths and what to do (exit code 2 on the CLI).
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from crucible_ray.errors import ConfigError, DataError

PathLike = str | os.PathLike[str]


def resolved(path: PathLike) -> Path:
    """``path`` made absolute with every symbolic link resolved (also for a path that does not exist yet)."""
    return Path(os.path.realpath(os.fspath(path)))


def check_outputs(
    *,
    outputs: Mapping[str, PathLike | None],
    inputs: Mapping[str, PathLike | None] | None = None,
    folders: Mapping[str, PathLike | None] | None = None,
    output_dirs: Mapping[str, PathLike | None] | None = None,
) -> None:
    """Refuse outputs that would overwrite what the command reads; check that they can be written.

    Args:
        outputs: files the command writes, by the option that names them (``"--output"``).
        inputs: files it reads, by option.
        folders: folders it reads (a world, a results folder): an output folder may not *be* one.
        output_dirs: folders it writes into (``--output-dir``): may not be an input folder, nor hold
            an input file directly where the command writes its own files.

    Raises:
        ConfigError: an output is an input, a folder it reads, or another output.
        DataError: an output's folder cannot be created or written (read-only, not a folder).
    """
    ins = _named(inputs)
    dirs_in = _named(folders)
    outs = _named(outputs)
    out_dirs = _named(output_dirs)
    seen: dict[Path, str] = {}
    for name, (raw, path) in outs.items():
        for in_name, (in_raw, in_path) in ins.items():
            if path == in_path:
                raise ConfigError(
                    f"{name} {raw} is the input {in_name} {in_raw}: writing it would destroy the input; "
                    "choose another output path"
                )
        for in_name, (in_raw, folder) in dirs_in.items():
            if path == folder:
                raise ConfigError(f"{name} {raw} is the folder {in_name} {in_raw}; choose an output path outside it")
        if path in seen:
            raise ConfigError(f"{name} and {seen[path]} are the same file ({raw}); give them different paths")
        seen[path] = name
    for name, (raw, folder) in out_dirs.items():
        for in_name, (in_raw, in_folder) in dirs_in.items():
            if folder == in_folder:
                raise ConfigError(
                    f"{name} {raw} is the folder {in_name} reads ({in_raw}): its files would be overwritten; "
                    f"choose another {name}"
                )
        for in_name, (in_raw, in_path) in ins.items():
            if folder == in_path:
                raise ConfigError(f"{name} {raw} is the input file {in_name} {in_raw}; choose a folder")
    for name, (raw, path) in outs.items():
        check_writable_dir(path.parent, what=f"{name} {raw}")
    for name, (raw, folder) in out_dirs.items():
        check_writable_dir(folder, what=f"{name} {raw}")


def _named(paths: Mapping[str, PathLike | None] | None) -> dict[str, tuple[str, Path]]:
    """Option name -> (the path as given, resolved); ``None`` entries dropped."""
    return {k: (os.fspath(v), resolved(v)) for k, v in (paths or {}).items() if v is not None}


def check_manifest_kind(folder: PathLike, kind: str, *, option: str) -> None:
    """Refuse an output folder whose ``manifest.json`` belongs to something else (a world, a sweep...):
    writing this command's manifest there would overwrite it.

    Raises:
        ConfigError: the folder holds a manifest whose ``kind`` is not ``kind``.
    """
    import json

    manifest = Path(folder) / "manifest.json"
    if not manifest.is_file():
        return
    try:
        doc = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        doc = None
    found = doc.get("kind") if isinstance(doc, dict) else None
    if found != kind:
        what = f"of a {found}" if isinstance(found, str) else "that crucible-ray did not write"
        raise ConfigError(
            f"{option} {folder} holds a manifest.json {what}; writing a {kind} there would overwrite it: "
            f"choose an empty folder or one of an earlier {kind}"
        )


def check_writable_dir(folder: PathLike, *, what: str) -> None:
    """Refuse a folder that is a file, cannot be created, or cannot be written; creates nothing.

    The nearest existing ancestor decides: it must be a writable folder (so the rest can be created).
    """
    folder = Path(folder)
    probe = folder
    while not probe.exists():
        if probe.is_symlink():  # a dangling link: creating through it would land elsewhere or fail
            raise DataError(f"{probe}: a symbolic link to nowhere; cannot write {what}")
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise DataError(f"{probe}: not a folder; cannot write {what} (choose a path whose folders are folders)")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".crucible-write-test.", dir=probe)
    except OSError as e:
        reason = "read-only file system" if e.errno == errno.EROFS else (e.strerror or str(e))
        raise DataError(f"{probe}: cannot write {what}: {reason}; choose a writable location") from None
    os.close(fd)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
