"""Argument checks of the twin, in the order the board makes them (docs/spec.md §6.2).
Each raises the firmware's own error (`prune8.errors`, docs/spec.md §6.1)."""

from __future__ import annotations

import numpy as np

from prune8 import errors
from prune8.check import SELECTIONS
from prune8.formats import TIES


def is_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def options(tie, method) -> None:
    if not isinstance(tie, str) or tie not in TIES:
        raise errors.option("tie", tie, TIES)
    if not isinstance(method, str) or method not in SELECTIONS:
        raise errors.option("method", method, SELECTIONS)


def int8(x, what: str) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype != np.int8:
        raise errors.dtype(what, a.dtype.name)
    return a


def limits(profile):
    """(max_weights, max_units) from a BoardProfile, a board name, or a pair; None = no limit."""
    if profile is None:
        return None
    if isinstance(profile, str):
        from prune8_host.boards import load_board
        profile = load_board(profile)
    if isinstance(profile, tuple):
        return int(profile[0]), int(profile[1])
    return int(profile.max_weights), int(profile.max_units)


def shape(n: int, rows, cols) -> tuple[int, int]:
    if not (is_int(rows) and is_int(cols)) or rows < 1 or cols < 1:
        raise errors.bad_shape(rows, cols)
    if rows * cols != n:
        raise errors.shape_mismatch(n, int(rows), int(cols))
    return int(rows), int(cols)


def capacity(limits, n: int, rows=None, cols=None) -> None:
    if limits is None:
        return
    max_weights, max_units = limits
    if n > max_weights:
        raise errors.capacity_weights(n, max_weights)
    if rows is not None and rows > max_units:
        raise errors.capacity_units("rows", rows, max_units)
    if cols is not None and cols > max_units:
        raise errors.capacity_units("cols", cols, max_units)


def layer(w, rows, cols, profile) -> tuple[np.ndarray, int, int]:
    """Validate an int8 layer given as (w, rows, cols); returns (flat w, rows, cols)."""
    w = int8(w, "weights")
    if w.size == 0:
        raise errors.empty("weights")
    rows, cols = shape(w.size, rows, cols)
    capacity(limits(profile), w.size, rows, cols)
    return w.reshape(-1), rows, cols


def nm(n, m) -> None:
    """An N:M pattern's n and m (docs/spec.md §3.7)."""
    if not (is_int(n) and is_int(m)) or not 1 <= n <= m <= 32:
        raise errors.nm_values(n, m)


def min_keep(value, n: int) -> int:
    if not is_int(value) or not 0 <= value <= n:
        raise errors.min_keep(value, n)
    return int(value)


def min_score(value) -> int:
    if not is_int(value) or not 0 <= value <= errors.MAX_SMALL:
        raise errors.min_score(value)
    return int(value)
