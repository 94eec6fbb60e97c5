"""Score statistics for reports (docs/spec.md §2.10; host only: the board has no
counterpart)."""

from __future__ import annotations

import numpy as np

from prune8 import errors

from .check import is_int


def score_stats(scores) -> dict:
    """min, max, mean, median and (population) standard deviation of scores."""
    s = np.asarray(scores).reshape(-1)
    if not np.issubdtype(s.dtype, np.integer):
        raise errors.dtype_scores(s.dtype.name)
    if s.size == 0:
        raise errors.empty("scores")
    f = s.astype(np.float64)
    return {"n": int(s.size), "min": int(s.min()), "max": int(s.max()),
            "mean": float(f.mean()), "median": float(np.median(f)), "std": float(f.std())}


def top_k(scores, k) -> np.ndarray:
    """Indices of the k highest scores, highest first; equal scores by lower index."""
    s = np.asarray(scores).reshape(-1)
    if not is_int(k) or not 0 <= k <= s.size:
        raise ValueError(f"k must be an integer in 0..{s.size}; got {k!r}")
    return np.argsort(-s.astype(np.int64), kind="stable")[:int(k)]
