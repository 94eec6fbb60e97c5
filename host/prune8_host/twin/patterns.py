"""N:M patterns (docs/spec.md §3.7): the twin of prune8.patterns."""

from __future__ import annotations

import numpy as np

from prune8 import errors

from . import check
from .mask import mask_from_keep


def nm_mask(scores, rows, cols, n, m) -> np.ndarray:
    """N:M mask words: in each group of m along a row keep the n highest (ties: lower index)."""
    check.nm(n, m)
    s = np.asarray(scores).reshape(-1)
    if not np.issubdtype(s.dtype, np.integer):
        raise errors.dtype_scores(s.dtype.name)
    if s.size == 0:
        raise errors.empty("scores")
    rows, cols = check.shape(s.size, rows, cols)
    if cols % m:
        raise errors.nm_cols(cols, int(m))
    groups = s.astype(np.int64).reshape(-1, int(m))
    # rank within each group: stable sort on -score keeps the lower index first on ties
    order = np.argsort(-groups, axis=1, kind="stable")
    keep = np.zeros_like(groups, dtype=bool)
    np.put_along_axis(keep, order[:, :int(n)], True, axis=1)
    return mask_from_keep(keep.reshape(-1))
