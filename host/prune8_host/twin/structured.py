"""Structured pruning of whole rows or columns by L1 norm (docs/spec.md §4.4): the twin
of Pruner.prune_rows and Pruner.prune_cols (prune8.pruner)."""

from __future__ import annotations

import numpy as np

from prune8.bp import prune_count

from . import check
from .bp import resolve_bp
from .mask import kept, mask_from_keep
from .scores import col_scores, row_scores


def _prune_units(axis, w, rows, cols, sparsity, sparsity_bp, tie, min_keep, method, profile):
    check.options(tie, method)
    bp = resolve_bp(sparsity, sparsity_bp)
    flat, rows, cols = check.layer(w, rows, cols, profile)
    units = rows if axis == 0 else cols
    min_keep = check.min_keep(min_keep, units)
    scores = (row_scores if axis == 0 else col_scores)(flat, rows, cols)
    keep = kept(scores, prune_count(units, bp, min_keep), tie, 0)
    out = np.array(w, copy=True)
    view = out.reshape(rows, cols)
    if axis == 0:
        view[~keep, :] = 0
    else:
        view[:, ~keep] = 0
    return mask_from_keep(keep), out


def prune_rows(w, rows, cols, sparsity=None, *, sparsity_bp=None, tie="exact", min_keep=1,
               method="auto", profile=None):
    """Structured pruning of whole rows (output neurons) by L1 norm.

    Returns (keep_words over rows, pruned copy of w).
    """
    return _prune_units(0, w, rows, cols, sparsity, sparsity_bp, tie, min_keep, method, profile)


def prune_cols(w, rows, cols, sparsity=None, *, sparsity_bp=None, tie="exact", min_keep=1,
               method="auto", profile=None):
    """Structured pruning of whole columns (inputs) by L1 norm.

    Returns (keep_words over columns, pruned copy of w).
    """
    return _prune_units(1, w, rows, cols, sparsity, sparsity_bp, tie, min_keep, method, profile)
