"""A driver thread that logs each scoreboard the workers write (worker logs do not reach the terminal)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

from crucible_ray._logging import get_logger
from crucible_ray.errors import CrucibleError
from crucible_ray.scoreboard import Scoreboard

log = get_logger(__name__)


class ProgressWatcher:
    """Polls ``root`` for new ``pattern`` files (scoreboards) and logs retention and generalization.

    With ``pattern="*/scoreboard_step_*.json"`` (a sweep's trials), each line names the trial folder.
    ``on_board`` is also called with each new scoreboard (a run's live MLflow metrics); after an error
    there it is logged once and not called again (the run logs what is left when it ends).
    """

    def __init__(
        self,
        root: Path,
        total: int,
        pattern: str = "scoreboard_step_*.json",
        on_board: Callable[[Scoreboard], None] | None = None,
    ) -> None:
        self.root, self.total, self.pattern = root, total, pattern
        self.on_board = on_board
        self._hook_failed = False
        self.seen: set[Path] = set(root.glob(pattern))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop polling. With a hook, wait for a call in flight to end (the caller then logs what is left
        and must not race it)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=None if self.on_board is not None else 2)

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            for p in sorted(self.root.glob(self.pattern), key=os.path.getmtime):
                if p in self.seen:
                    continue
                self.seen.add(p)
                try:
                    b = Scoreboard.read(p)
                except (CrucibleError, OSError):
                    continue
                where = f"{p.parent.name}: " if p.parent != self.root else ""
                log.info(
                    "%sstep %s/%d: retention %s, generalization %s",
                    where,
                    b.step,
                    self.total,
                    _fmt(b.retention),
                    _fmt(b.generalization),
                )
                if self.on_board is not None and not self._hook_failed:
                    self._call_hook(b)

    def _call_hook(self, board: Scoreboard) -> None:
        assert self.on_board is not None
        try:
            self.on_board(board)
        except Exception as e:  # a tracker that is down must not stop the run's own logging
            if not self._hook_failed:
                log.warning("could not log step %s to the tracker: %s", board.step, e)
            self._hook_failed = True


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"
