"""Large passes of the twin split across threads (NumPy releases the GIL in its loops).

Every part writes only its own slice of the result, so the answer is the same for any
number of threads and any order (docs/spec.md §3.5); small inputs stay on the calling
thread.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

MAX_THREADS = 4       # threads a pass is split across (the caller's and 3 more): more
                      # buys nothing on a memory-bound pass
THREAD_MIN = 1 << 20  # weights from which a pass is split


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _workers() -> ThreadPoolExecutor:
    """One pool for the process, started on first use: starting threads per pass would
    cost a good part of what splitting saves."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max(1, MAX_THREADS - 1), thread_name_prefix="prune8-twin")
        return _pool


def split(fn, units: int, weights: int) -> list:
    """fn(u0, u1) over consecutive ranges of 0..units, one range per thread when the
    pass covers at least THREAD_MIN weights; returns the results in range order.
    The calling thread runs the first range itself. fn must not call split: the
    pool's threads would wait on each other."""
    parts = min(MAX_THREADS, os.cpu_count() or 1, units)
    if parts <= 1 or weights < THREAD_MIN or threading.current_thread().name.startswith(
            "prune8-twin"):
        return [fn(0, units)]
    per = -(-units // parts)
    ranges = [(u, min(units, u + per)) for u in range(0, units, per)]
    pool = _workers()
    rest = [pool.submit(fn, *r) for r in ranges[1:]]
    first = fn(*ranges[0])
    return [first] + [f.result() for f in rest]
