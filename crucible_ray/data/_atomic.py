"""Atomic file writes: a temporary name in the target folder, then one rename."""

from __future__ import annotations

import contextlib
import glob
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any


def _default_mode() -> int:
    # mkstemp creates 0600 files; outputs get the usual 0666 minus the umask, like open() would give.
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


_FILE_MODE = _default_mode()


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
