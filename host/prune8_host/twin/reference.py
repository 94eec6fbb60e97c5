"""The reference for a whole layer: score it and mask it, as the board does.

This is what the board is checked against: `layer_mask` gives, for a layer and a
method, the mask the board must produce bit for bit (docs/spec.md §2-§4; gradual
pruning §7.2; the masked model a board runs, `masked_model`: §4.3); `mask_for` the same
for a layer and its PruneOptions (twin.layer).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from prune8 import errors
from prune8.formats import LAYER_SCOPES
from prune8_host.errors import ModelError

from . import check, scorers
from .layer import Layer, LayerMask, PruneOptions
from .mask import apply_mask, mask_from_keep, mask_to_keep, prune_mask, prune_mask_channels
from .patterns import nm_mask
from .schedule import MAX_STEPS, sparsity_at
from .scorers import (
    ACT_COLS,
    ACTIVATIONS,
    BLOCK,
    COLS,
    COUNT,
    MULTS,
    ROWS,
    SEED,
    SUMSQ,
    WEIGHTS,
    Scorer,
    unit_count,
)
from .scores import scale_multipliers, wanda_sumsq


def layer_dims(layer: Layer, method: str) -> tuple[int, int]:
    """A layer's rows and columns: a 1-D layer is one row, for a scorer that needs no
    shape (no rows or cols, and activations, if it takes them, one per weight)."""
    if layer.shape is not None:
        return layer.shape
    scorer = scorers.find(method)
    shape = {ROWS, COLS, ACT_COLS} & set(scorer.needs)
    if layer.activations is not None and layer.activations.size == layer.n:
        shape.discard(ACT_COLS)
    if shape:
        raise scorer.missing(ROWS, layer.name)
    return 1, layer.n


def layer_scores(layer: Layer, method: str, profile=None, *, seed: int = 0,
                 block: tuple[int, int] | None = None, weights=None) -> np.ndarray:
    """Flat scores of a layer: int16 per weight, or int32 per row / column / block.

    `weights` overrides the layer's weights (same shape): gradual pruning scores the
    weights as pruned so far.
    """
    scorer = scorers.find(method)
    rows, cols = layer_dims(layer, method)
    w = (layer.weights if weights is None else weights).reshape(-1)
    inputs = {}
    for need in scorer.needs:  # in order: a missing input is refused before the next
        inputs[need] = _layer_input(need, scorer, layer, w, rows, cols, seed, block)
    return scorer.score(inputs, profile).reshape(-1)


def _layer_input(need: str, scorer: Scorer, layer: Layer, w: np.ndarray, rows: int,
                 cols: int, seed: int, block: tuple[int, int] | None):
    """What a layer gives its scorer's kernel for one of its needs (scorers.py)."""
    if need == WEIGHTS:
        return w
    if need == COUNT:
        return w.size
    if need == SEED:
        return seed
    if need == ROWS:
        return rows
    if need == COLS:
        return cols
    if need in (ACTIVATIONS, ACT_COLS):
        if layer.activations is None:
            raise scorer.missing(ACTIVATIONS, layer.name)
        a = layer.activations.reshape(-1)
        if need == ACTIVATIONS:
            return a
        return None if a.size == w.size else cols
    if need == SUMSQ:
        if layer.calib is None:
            raise scorer.missing(SUMSQ, layer.name, cols)
        return wanda_sumsq(layer.calib)
    if need == MULTS:
        return layer_scale_multipliers(layer, rows)
    if need == BLOCK:
        if block is None:
            raise scorer.missing(BLOCK, layer.name)
        return block
    raise AssertionError(f"no layer input for {need!r}")  # a need scorers.py added alone


def layer_scale_multipliers(layer: Layer, rows: int) -> np.ndarray:
    """The scale-aware score's multipliers of a layer: from its weight scales (w_scale,
    one or one per row), or 32768 for every row when it has none (one scale)."""
    if "w_scale" not in layer.quant:
        return np.full(rows, errors.MAX_SCALE, np.int64)
    return scale_multipliers(layer.quant["w_scale"], rows)


def _expand(keep: np.ndarray, unit: str, rows: int, cols: int,
            block: tuple[int, int] | None) -> np.ndarray:
    """Per-weight keep flags (rows x cols) from keep flags over the mask's units."""
    if unit == "row":
        return np.repeat(keep, cols).reshape(rows, cols)
    if unit == "col":
        return np.tile(keep, rows).reshape(rows, cols)
    if unit == "block":
        br, bc = block
        grid = keep.reshape(rows // br, cols // bc)
        return np.repeat(np.repeat(grid, br, axis=0), bc, axis=1)
    return keep.reshape(rows, cols)


def layer_mask(layer: Layer, method: str, *, sparsity_bp: int = 0, tie: str = "exact",
               min_keep: int = 1, min_score: int = 0, seed: int = 0,
               block: tuple[int, int] | None = None, nm: tuple[int, int] | None = None,
               steps: int = 0, scope: str = "layer", profile=None) -> LayerMask:
    """The mask the board must produce for this layer and these options, bit for bit.

    nm: N:M pattern over a per-weight scorer (sparsity, min_keep, min_score unused).
    steps: walk the cubic schedule to sparsity_bp, AND-ing each step's mask into the
    result and zeroing what it prunes before scoring the next step.
    scope: "layer" (one k for the whole layer) or "channel" (the same k in every row,
    prune_mask_channels; a per-weight scorer only).
    """
    # the board's order of checks (prune8.prune_model.prune_result): method, steps, scope
    unit = scorers.find(method).unit
    if not check.is_int(steps) or not 0 <= steps <= MAX_STEPS:
        raise errors.steps_value(steps, MAX_STEPS)
    if not isinstance(scope, str) or scope not in LAYER_SCOPES:
        raise errors.option("scope", scope, LAYER_SCOPES)
    rows, cols = layer_dims(layer, method)
    kwargs = dict(seed=seed, block=block)
    if nm is not None:
        s = layer_scores(layer, method, profile, **kwargs)
        if unit != "weight":  # the board's Pruner.nm_mask: n and m, then per-weight scores
            check.nm(*nm)
            raise errors.no_weight_scores()
        words = nm_mask(s, rows, cols, *nm)
    elif steps:
        w = layer.weights.reshape(rows, cols).copy()
        keep = None
        for t in range(1, steps + 1):
            bp = sparsity_at(t, steps, sparsity_bp)
            s = layer_scores(layer, method, profile, weights=w, **kwargs)
            k = mask_to_keep(_mask(s, rows, cols, scope, sparsity_bp=bp, tie=tie,
                                   min_keep=min_keep, min_score=min_score, profile=profile),
                             s.size)
            keep = k if keep is None else keep & k
            w[~_expand(keep, unit, rows, cols, block)] = 0
        words = mask_from_keep(keep)
    else:
        s = layer_scores(layer, method, profile, **kwargs)
        words = _mask(s, rows, cols, scope, sparsity_bp=sparsity_bp, tie=tie,
                      min_keep=min_keep, min_score=min_score, profile=profile)
    n = unit_count(unit, rows, cols, block)
    return LayerMask(name=layer.name, words=words, n=n, rows=rows, cols=cols,
                     options=PruneOptions(method, sparsity_bp=sparsity_bp, tie=tie,
                                          min_keep=min_keep, min_score=min_score, seed=seed,
                                          block=block, nm=nm, steps=steps, scope=scope))


def mask_for(layer: Layer, options: PruneOptions, profile=None) -> LayerMask:
    """layer_mask with its options as one object: the mask the board must produce."""
    return layer_mask(layer, options.method, profile=profile, **options.mask_kwargs())


def _mask(scores, rows, cols, scope, **kwargs) -> np.ndarray:
    if scope == "channel":
        return prune_mask_channels(scores, rows, cols, **kwargs)
    return prune_mask(scores, **kwargs)


def weight_keep(mask: LayerMask) -> np.ndarray:
    """Per-weight keep flags (rows x cols) of any mask: row/column/block masks expand."""
    return _expand(mask.keep(), mask.unit, mask.rows, mask.cols, mask.options.block)


def pruned_counts(weights: np.ndarray, mask: LayerMask) -> tuple[int, int]:
    """(weights the mask prunes, how many of those are already zero in `weights`): a mask
    counts what it prunes, zeroing counts only what changes, and a report says both."""
    if weights.size != mask.rows * mask.cols:
        raise ModelError(f"layer {mask.name!r} has {weights.size} weights but its mask was "
                         f"made for {mask.rows} x {mask.cols}")
    pruned = ~weight_keep(mask).reshape(-1)
    return int(pruned.sum()), int(np.count_nonzero(pruned & (weights.reshape(-1) == 0)))


def pruned_line(counts: list[tuple[int, int]], total: int) -> str:
    """'N of TOTAL weights pruned by the masks, Z of them already zero in the model'."""
    pruned, zero = sum(c[0] for c in counts), sum(c[1] for c in counts)
    return (f"{pruned} of {total} weights pruned by the masks, {zero} of them already zero "
            f"in the model ({pruned - zero} newly zeroed)")


def apply_layer_mask(weights: np.ndarray, mask: LayerMask) -> np.ndarray:
    """A pruned copy of a layer's weights (any mask unit)."""
    if weights.size != mask.rows * mask.cols:
        raise ModelError(f"layer {mask.name!r} has {weights.size} weights but its mask was "
                         f"made for {mask.rows} x {mask.cols}")
    if mask.unit == "weight":
        return apply_mask(weights, mask.words)
    out = weights.copy()
    out.reshape(-1)[~weight_keep(mask).reshape(-1)] = 0
    return out


def masked_model(model: dict[str, Layer], masks) -> dict[str, Layer]:
    """The model as the board runs it with its masks: pruned weights zeroed and, for a row
    mask of a quantized layer, the pruned rows' biases zeroed too, so a pruned neuron
    outputs its zero point and feeds nothing to the next layer."""
    out = dict(model)
    for mask in masks:
        layer = model[mask.name]
        quant = dict(layer.quant)
        if mask.unit == "row" and "bias" in quant:
            quant["bias"] = np.where(mask.keep(), quant["bias"], 0).astype(np.int32)
        out[mask.name] = replace(layer, weights=apply_layer_mask(layer.weights, mask),
                                 quant=quant)
    return out
