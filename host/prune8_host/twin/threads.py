"""Large passes of the twin split across threads (NumPy releases the GIL in its loops).

Every part writes only its own slice of the result, so the answer is the same for any
number of threads and any order; small inputs stay on the calling thread.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

MAX_THREADS = 4       # more buys nothing on a memory-bound pass
THREAD_MIN = 1 << 20  # weights from which a pass is split


def split(fn, units: int, weights: int) -> list:
    """fn(u0, u1) over consecutive ranges of 0..units, one range per thread when the
    pass covers at least THREAD_MIN weights; returns the results in range order."""
    parts = min(MAX_THREADS, os.cpu_count() or 1, units)
    if parts <= 1 or weights < THREAD_MIN:
        return [fn(0, units)]
    per = -(-units // parts)
    ranges = [(u, min(units, u + per)) for u in range(0, units, per)]
    with ThreadPoolExecutor(len(ranges)) as pool:
        return list(pool.map(lambda r: fn(*r), ranges))
