"""Progress bars for slow work on a board (transfers, deploys), on stderr.

A bar is drawn only when stderr is a terminal (a log or a pipe gets no \\r updates),
and a finished bar is erased (leave=False), so what is printed next starts on a clean
line.
"""

from __future__ import annotations

import contextlib
import sys

from tqdm import tqdm


@contextlib.contextmanager
def progress_bar(total: int, desc: str, quiet: bool):
    """A byte progress bar that appears only for transfers lasting over a second."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    bar = tqdm(total=total, desc=desc, unit="B", unit_scale=True, delay=1.0, leave=False)
    try:
        yield bar.update
    finally:
        bar.close()
