"""Threshold selection (SPEC.md, "Threshold and mask"): the twin of prune8.select."""

from __future__ import annotations

import numpy as np

from .scores import CHUNK


def threshold(scores: np.ndarray, pos: int) -> int:
    """The value at position `pos` of the scores sorted ascending.

    np.partition is an O(n) introselect; on int16 scores it beats a histogram here.
    """
    s = scores.reshape(-1)
    return int(np.partition(s, pos)[pos])


def tie_cut(s: np.ndarray, t: int, count: int) -> int:
    """Index just past the `count`-th entry equal to t (ascending index order)."""
    seen = 0
    for i in range(0, s.size, CHUNK):
        eq = s[i:i + CHUNK] == t
        m = int(np.count_nonzero(eq))
        if seen + m >= count:
            return i + int(np.flatnonzero(eq)[count - seen - 1]) + 1
        seen += m
    raise AssertionError("fewer ties than counted")  # unreachable: ties <= count(s == t)
