"""The host reference for a whole layer: score it and mask it with the twin.

This is what the board is checked against: `layer_mask` gives, for a layer and a
method, the mask the board must produce bit for bit (SPEC.md).
"""

from __future__ import annotations

import numpy as np

from prune8_host import twin
from prune8_host.masks import UNITS, LayerMask
from prune8_host.model import ACT_SUFFIX, Layer, ModelError

METHODS = tuple(UNITS)


def layer_dims(layer: Layer, method: str) -> tuple[int, int]:
    if layer.shape is None:
        if method == "magnitude" or (method == "gradient" and layer.activations is not None
                                     and layer.activations.size == layer.n):
            return 1, layer.n
        raise ModelError(f"layer {layer.name!r} is 1-D: give --rows and --cols for {method}")
    return layer.shape


def layer_scores(layer: Layer, method: str, profile=None) -> np.ndarray:
    """Flat scores of a layer: int16 per weight, or int32 per row / column."""
    rows, cols = layer_dims(layer, method)
    w = layer.flat
    if method == "magnitude":
        s = twin.magnitude_scores(w, profile=profile)
    elif method == "gradient":
        if layer.activations is None:
            raise ModelError(f"layer {layer.name!r} has no activations for the gradient "
                             f"proxy: add {layer.name + ACT_SUFFIX!r} or pass --activations")
        a = layer.activations.reshape(-1)
        s = twin.gradient_scores(w, a, None if a.size == w.size else cols, profile=profile)
    elif method == "mincut":
        s = twin.mincut_scores(w, rows, cols, profile=profile)
    elif method == "rows":
        s = twin.row_scores(w, rows, cols, profile=profile)
    elif method == "cols":
        s = twin.col_scores(w, rows, cols, profile=profile)
    else:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    return s.reshape(-1)


def layer_mask(layer: Layer, method: str, *, sparsity_bp: int, tie: str = "exact",
               min_keep: int = 1, min_score: int = 0, profile=None) -> LayerMask:
    scores = layer_scores(layer, method, profile)
    words = twin.prune_mask(scores, sparsity_bp=sparsity_bp, tie=tie, min_keep=min_keep,
                            min_score=min_score, profile=profile)
    rows, cols = layer_dims(layer, method)
    return LayerMask(name=layer.name, words=words, n=int(scores.size), unit=UNITS[method],
                     method=method, tie=tie, sparsity_bp=sparsity_bp, min_keep=min_keep,
                     min_score=min_score, rows=rows, cols=cols)


def weight_keep(mask: LayerMask) -> np.ndarray:
    """Per-weight keep flags (rows x cols) of any mask: row/column masks expand."""
    keep = mask.keep()
    if mask.unit == "row":
        return np.repeat(keep, mask.cols).reshape(mask.rows, mask.cols)
    if mask.unit == "col":
        return np.tile(keep, mask.rows).reshape(mask.rows, mask.cols)
    return keep.reshape(mask.rows, mask.cols)


def apply_layer_mask(weights: np.ndarray, mask: LayerMask) -> np.ndarray:
    """A pruned copy of a layer's weights (any mask unit)."""
    if weights.size != mask.rows * mask.cols:
        raise ModelError(f"layer {mask.name!r} has {weights.size} weights but its mask was "
                         f"made for {mask.rows} x {mask.cols}")
    if mask.unit == "weight":
        return twin.apply_mask(weights, mask.words)
    out = weights.copy()
    out.reshape(-1)[~weight_keep(mask).reshape(-1)] = 0
    return out
