"""Progress bars for slow work on a board (transfers, deploys), on stderr."""

from __future__ import annotations

import contextlib

from tqdm import tqdm


@contextlib.contextmanager
def progress_bar(total: int, desc: str, quiet: bool):
    """A byte progress bar that appears only for transfers lasting over a second."""
    if quiet:
        yield None
        return
    bar = tqdm(total=total, desc=desc, unit="B", unit_scale=True, delay=1.0, leave=False)
    try:
        yield bar.update
    finally:
        bar.close()
