"""Sparsity in basis points (docs/spec.md §1.2): the twin of prune8.bp. The prune count
k (§1.4) is prune8.bp.prune_count itself."""

from __future__ import annotations

import numpy as np

from prune8 import errors

from .check import is_int


def to_bp(s) -> int:
    """Float (or 0/1) sparsity -> basis points, docs/spec.md §1.2.

    A `np.float32` is converted in float32 arithmetic, exactly as on the ESP32.
    """
    if isinstance(s, (bool, np.bool_)) or not isinstance(s, (int, float, np.integer, np.floating)):
        raise errors.sparsity_type(s)
    if is_int(s):
        if s < 0 or s > 1:
            raise errors.sparsity_range(s)
        return int(s) * errors.MAX_BP
    if s != s or s < 0 or s > 1:
        raise errors.sparsity_range(s)
    x = s * 10000  # stays float32 for np.float32 (NEP 50: the int is weak)
    bp = int(x + 0.5)
    if abs(x - bp) > 0.01:
        raise errors.sparsity_not_whole_bp(s)
    return bp


def resolve_bp(sparsity, sparsity_bp) -> int:
    if sparsity is None and sparsity_bp is None:
        raise errors.sparsity_missing()
    if sparsity is not None and sparsity_bp is not None:
        raise errors.sparsity_both()
    if sparsity_bp is not None:
        if not is_int(sparsity_bp) or not 0 <= sparsity_bp <= errors.MAX_BP:
            raise errors.sparsity_bp_value(sparsity_bp)
        return int(sparsity_bp)
    return to_bp(sparsity)
