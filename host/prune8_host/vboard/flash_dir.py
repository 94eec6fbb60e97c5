"""FlashDir: the host directory that holds a virtual board's flash, one board at a time.

Contract: acquire() returns the directory, creating it: a fresh temporary one when none
was given, which release() deletes again. A given directory is locked while a board
uses it (an exclusive flock on .NAME.lock beside it, so it also keeps boards in other
processes out); when another board holds it, acquire() calls on_busy(directory) and
then waits until that board lets go. release() unlocks; it may be called at any time,
any number of times.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from prune8_host.errors import VirtualBoardError


class FlashDir:
    """The flash directory of one virtual board (None: a temporary one of its own)."""

    def __init__(self, path: str | os.PathLike | None):
        self.owned = path is None
        self.path: Path | None = Path(path) if path is not None else None
        self._lock: int | None = None

    def acquire(self, on_busy: Callable[[Path], None] | None = None) -> Path:
        if self.path is None:
            self.path = Path(tempfile.mkdtemp(prefix="prune8-flash-"))
        self.path.mkdir(parents=True, exist_ok=True)
        if not self.path.is_dir():
            raise VirtualBoardError(f"flash directory {self.path} is not a directory")
        if not self.owned:
            self._lock = self._take_lock(on_busy)
        return self.path

    def _take_lock(self, on_busy: Callable[[Path], None] | None) -> int:
        path = self.path.parent / f".{self.path.name}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if on_busy:
                    on_busy(self.path)
                fcntl.flock(fd, fcntl.LOCK_EX)  # until the other board stops
        except BaseException:
            os.close(fd)
            raise
        return fd

    def release(self) -> None:
        if self.owned and self.path is not None:
            shutil.rmtree(self.path, ignore_errors=True)
        if self._lock is not None:
            os.close(self._lock)  # releases the flock
            self._lock = None
