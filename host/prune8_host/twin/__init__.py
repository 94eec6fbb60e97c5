"""The NumPy twin of the prune8 firmware: the bit-exact host reference.

Every function implements a rule of docs/spec.md (each module cites its sections) with
vectorized NumPy; loops run over chunks of a million weights, never over weights.
Errors are the firmware's own classes and messages (`prune8.errors`), raised in the
same order as on the board (docs/spec.md §6.2):

    option names -> sparsity -> inputs (dtype, empty, shape, activations,
    capacity) -> min_keep -> min_score

The modules pair with the firmware's by name: scores, select, mask, patterns,
schedule, dense (int8 inference), bp, check; structured is the twin of the Pruner's
structured pruning (prune_rows, prune_cols). Over whole layers: layer (the in-memory
types), scorers (the scorer table: each scorer's needs, kernel, unit and errors) and
reference (a layer scored and masked as the board does it). stats, shrink and bits (the
host's one popcount) are host-only. This package re-exports the public names it has
always had, so `from prune8_host.twin import prune_mask` keeps working.

Scores come back in the shape of `w` (`np.int16`; row/column L1 as `np.int32`);
masks are `np.uint32` words, bit i % 32 of word i // 32, 1 = keep (docs/spec.md §4.1).
"""

from __future__ import annotations

from prune8 import errors
from prune8.check import SELECTIONS
from prune8.formats import TIES

from .bp import resolve_bp, to_bp
from .mask import (
    apply_mask,
    magnitude_mask,
    mask_from_keep,
    mask_stats,
    mask_to_keep,
    prune_mask,
    prune_mask_channels,
)
from .patterns import nm_mask
from .schedule import MAX_STEPS, sparsity_at
from .scores import (
    MAX_SCORE,
    block_scores,
    col_scores,
    gradient_scores,
    l2_scores,
    magnitude_scores,
    max_blocks,
    mincut_scores,
    random_scores,
    row_scores,
    scale_multipliers,
    scaled_scores,
    wanda_scores,
    wanda_sumsq,
)
from .select import threshold
from .stats import score_stats, top_k
from .structured import prune_cols, prune_rows

METHODS = SELECTIONS  # the name this tuple had before SELECTIONS; kept for user code

__all__ = [
    "TIES", "METHODS", "SELECTIONS", "MAX_SCORE", "MAX_STEPS", "errors",
    "to_bp", "resolve_bp", "magnitude_scores", "gradient_scores", "mincut_scores", "row_scores",
    "col_scores", "prune_mask", "magnitude_mask", "apply_mask", "prune_rows", "prune_cols", "mask_stats",
    "mask_from_keep", "mask_to_keep", "threshold",
    "l2_scores", "random_scores", "wanda_sumsq", "wanda_scores", "block_scores", "nm_mask",
    "sparsity_at", "score_stats", "top_k", "max_blocks",
    "scaled_scores", "scale_multipliers", "prune_mask_channels",
]
