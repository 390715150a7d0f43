"""Atomic file writes: a temporary name in the target folder, then one rename."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from crucible_ray.errors import ConfigError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp creates 0600 files and mkdtemp 0700 folders; outputs get the usual modes minus the umask,
# like open() and mkdir() would give.
_FILE_MODE = 0o666 & ~_umask()
_DIR_MODE = 0o777 & ~_umask()


def check_new_folder(path: str | Path, option: str = "--out") -> None:
    """Refuse a destination folder that exists and is not empty (nothing of the user's is replaced)."""
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise ConfigError(f"{option} {path} already exists and is not an empty folder; choose a new folder")


@contextlib.contextmanager
def atomic_folder(out: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``out`` (absent or empty); on success it becomes ``out``, readable
    like any folder the user makes (0777 minus the umask), else it is removed."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        yield tmp
        os.chmod(tmp, _DIR_MODE)
        if out.exists():
            out.rmdir()  # empty: check_new_folder
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on success rename it over ``path``.

    An exception (or an interrupt) inside the block removes the temporary file, so a partial file
    never appears under the final name.

    Example:
        >>> with atomic_write("out.json") as f:  # doctest: +SKIP
        ...     f.write("{}")
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    binary = "b" in mode
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, _FILE_MODE)
    try:
        with os.fdopen(fd, mode, encoding=None if binary else encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` for writers that take a file name (e.g. pyarrow)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, _FILE_MODE)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def remove_stale_temporaries(path: str | Path) -> int:
    """Remove the temporary files an interrupted atomic write of ``path`` left beside it (a process
    killed between writing and renaming); returns how many. Run it before writing ``path`` anew."""
    path = Path(path)
    return remove_interrupted_writes(path.parent, [glob.escape(path.name)])


def remove_interrupted_writes(folder: str | Path, names: Iterable[str]) -> int:
    """Like :func:`remove_stale_temporaries` for every output in ``folder`` whose name matches one of
    the glob patterns ``names`` (e.g. ``"checkpoint_*.pt"``); returns how many were removed.

    Example:
        >>> remove_interrupted_writes("runs/a", ["checkpoint_*.pt", "scoreboard_*.json"])  # doctest: +SKIP
        0
    """
    removed = 0
    for name in names:
        for tmp in Path(folder).glob(f".{name}.*.tmp"):
            if tmp.is_file() and not tmp.is_symlink():
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
                    removed += 1
    return removed
