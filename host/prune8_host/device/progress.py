"""Progress bars for slow work on a board, on stderr: the one place prune8 draws them.

Every bar is a tqdm byte counter, and it is drawn only when the caller is not quiet and
the stream is a terminal (a log or a pipe gets no \\r updates). Two shapes:

- `progress_bar(total, desc, quiet)`: one transfer (push, pull, deploy...). The bar
  appears only when the transfer lasts over a second, and is erased when done
  (leave=False), so what is printed next starts on a clean line.
- `TaskProgress(quiet)`: a `(task, done, total)` callback for a job that a library
  reports in steps (esptool: "write"). Each task gets a bar that stays on screen once
  complete; `write()` prints a message above the bar without garbling it.
"""

from __future__ import annotations

import contextlib
import sys

from tqdm import tqdm


def _on_terminal(f) -> bool:
    return bool(getattr(f, "isatty", lambda: False)())


def _bar(total: int, desc: str, file, *, delay: float, leave: bool) -> tqdm:
    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, file=file,
                dynamic_ncols=True, delay=delay, leave=leave)


@contextlib.contextmanager
def progress_bar(total: int, desc: str, quiet: bool):
    """Yields a function counting bytes done, or None when no bar is drawn."""
    if quiet or not _on_terminal(sys.stderr):
        yield None
        return
    bar = _bar(total, desc, sys.stderr, delay=1.0, leave=False)
    try:
        yield bar.update
    finally:
        bar.close()


class TaskProgress:
    """A (task, done, total) callback drawing one bar per task on `file` (stderr).

    quiet: nothing at all is printed, messages included. Call close() when the job ends.
    """

    def __init__(self, quiet: bool = False, file=None):
        self.quiet = quiet
        self.file = file if file is not None else sys.stderr
        self._shown = not quiet and _on_terminal(self.file)
        self._bar: tqdm | None = None
        self._key: tuple[str, int] | None = None

    def __call__(self, task: str, done: int, total: int) -> None:
        if not self._shown:
            return
        # A new task comes with a new total and counts from 0: start a new bar.
        if self._bar is None or self._key != (task, total) or done < self._bar.n:
            self.close()
            self._bar = _bar(total, task, self.file, delay=0.0, leave=True)
            self._key = (task, total)
        self._bar.update(done - self._bar.n)
        if done >= total:
            self.close()

    def write(self, text: str) -> None:
        """Print a line (unless quiet), above the bar when one is drawn."""
        if not self.quiet:
            tqdm.write(text, file=self.file)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
            self._key = None
