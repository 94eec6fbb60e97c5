"""Channel groups scored and masked as one (docs/channels.md): the twin's reference.

A group (prune8_host.files.graph) is a set of channels that must be removed together
from several layers. What a group channel owns in each layer is a `Member`: role "rows"
(the layer's row index[ch] makes the channel; -1: none) or "cols" (the layer's columns
index[ch, :] read it; -1 pads). The channel's score is the sum, over the group's members,
of a per-weight scorer's scores of the weights the channel owns or is read by, capped
at MAX_SMALL (a small int on the board): scale-aware L1 ("scaled") by default, any
per-weight scorer on request. The k lowest channels of a group are pruned by the same
rules as a layer's units (k = prune_count(channels, sparsity_bp, min(min_keep,
channels)); ties by the tie rule), so every group keeps at least `min_keep` channels (all
of a smaller group). min_score is not a group option. The board computes the same
(prune8.channels), and refuses bad options with the same errors in the same order
(`group_options`).

The mask of a group is a row mask over each layer whose rows make its channels: zeroing
those rows (prune8 apply) gives the channel-zeroed model a shrink is exact against.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from prune8 import errors
from prune8.bp import prune_count
from prune8_host.errors import ModelError

from . import check, scorers
from .bp import resolve_bp
from .layer import GROUP_SCOPE, Layer, LayerMask, PruneOptions
from .mask import kept, mask_from_keep
from .reference import layer_scores

__all__ = ["Member", "group_options", "group_scores", "group_keep", "group_masks"]


@dataclass(frozen=True)
class Member:
    layer: str
    role: str                 # "rows" or "cols"
    index: np.ndarray         # rows: (channels,); cols: (channels, k), -1 pads


def _weight_scorer(method: str):
    names = tuple(s.name for s in scorers.TABLE if s.unit == "weight")
    if not isinstance(method, str) or method not in names:
        raise errors.option("method", method, names)
    return scorers.find(method)


def group_options(options: PruneOptions) -> PruneOptions:
    """The options of a group mask (scope "group"), checked in the board's order
    (prune8.channels.check_options): a per-weight method, the tie rule, the sparsity,
    min_keep (any count: a group keeps all of its channels when it has fewer), the seed."""
    _weight_scorer(options.method)
    check.options(options.tie, "auto")
    resolve_bp(None, options.sparsity_bp)
    check.min_keep(options.min_keep, errors.MAX_SMALL)
    if not check.is_int(options.seed) or not 0 <= options.seed <= errors.MAX_SMALL:
        raise errors.seed_value(options.seed)
    return PruneOptions(options.method, sparsity_bp=options.sparsity_bp, tie=options.tie,
                        min_keep=options.min_keep, seed=options.seed, scope=GROUP_SCOPE)


def group_scores(layers: Mapping[str, Layer], channels: int, members, method: str = "scaled",
                 profile=None, seed: int = 0) -> np.ndarray:
    """One int64 score per group channel (module docstring), 0..MAX_SMALL; `seed`: the
    random scorer's, which starts again at every layer."""
    _weight_scorer(method)
    total = np.zeros(channels, np.int64)
    for m in members:
        layer = layers[m.layer]
        s = layer_scores(layer, method, profile, seed=seed).astype(np.int64).reshape(
            layer.weights.shape)
        if m.role == "rows":
            own = m.index >= 0
            total[own] += s[m.index[own]].sum(axis=1)
        else:
            per_col = s.sum(axis=0)
            padded = np.append(per_col, 0)  # index -1 reads the 0 at the end
            total += padded[m.index].sum(axis=1)
    return np.minimum(total, errors.MAX_SMALL)


def group_keep(scores: np.ndarray, options: PruneOptions) -> np.ndarray:
    """Keep flags over a group's channels: the k lowest pruned (module docstring)."""
    n = int(scores.size)
    check.options(options.tie, "auto")
    min_keep = min(check.min_keep(options.min_keep, errors.MAX_SMALL), n)
    return kept(scores, prune_count(n, options.sparsity_bp, min_keep), options.tie, 0)


def group_masks(layers: Mapping[str, Layer], groups, options: PruneOptions,
                profile=None) -> tuple[dict[str, LayerMask], list[np.ndarray]]:
    """({layer: row mask} for every layer whose rows make a pruned group's channels, [keep
    flags per group]); `groups` are (channels, members) pairs of prunable groups."""
    opts = group_options(options)
    masks: dict[str, LayerMask] = {}
    keeps = []
    for channels, members in groups:
        keep = group_keep(group_scores(layers, channels, members, opts.method, profile,
                                       opts.seed), opts)
        keeps.append(keep)
        for m in members:
            if m.role != "rows":
                continue
            rows, cols = layers[m.layer].weights.shape
            if m.layer in masks:
                raise ModelError(f"layer {m.layer!r} makes the channels of two groups")
            row_keep = np.ones(rows, bool)
            own = m.index >= 0
            row_keep[m.index[own]] = keep[own]
            masks[m.layer] = LayerMask(m.layer, mask_from_keep(row_keep), rows, rows, cols,
                                       opts)
    return masks, keeps
