"""Physically smaller models: remove pruned neurons instead of storing their zeros.

A row mask over layer L (unit "row": rows = output neurons) marks neurons to remove.
`shrink` deletes those rows from L (its weights, per-weight activations, and every
per-row quantization field such as L.bias) and the matching input columns from the next
layer L+1 (its weights, per-column or per-weight activations NAME.act, and calibration
columns NAME.calib). What is left is an ordinary dense model, smaller.

`zero_rows` is the masked model it stands for: the same rows of L zeroed together with
their biases, and L+1's matching columns zeroed (make eval's structured pruning,
`prune8_eval.evaluate.apply_keep`, makes exactly this model). Under TFLM's int8 arithmetic
(`prune8_host.twin.dense`) both give the same int8 outputs for every input, for two reasons,
each enough on its own (the rules: docs/spec.md §10; why: docs/spec-decisions.md,
"Shrinking"):
- a zeroed row with a zeroed bias has accumulator 0, which requantizes to 0 whatever
  the multiplier and shift, so the neuron outputs exactly L's output zero point, with or
  without a fused ReLU; L+1's input zero point is that same zero point, so the neuron
  adds (zp - zp) * w = 0 to every accumulator of L+1;
- L+1's zeroed column multiplies whatever the neuron outputs by 0.
So dropping the column leaves every accumulator of L+1, hence every output after it, as
it was; L's kept rows read only their own weights and bias. Zeroing L's rows alone
(`prune8 apply` with a row mask, or the board's prune_rows) is another model: the
neuron then outputs the constant clamp(requantize(bias) + zp), and L+1 reads it.

The last layer is never shrunk: its rows are the model's outputs (the classes).
Pure NumPy; the inputs are not modified.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

import numpy as np

from prune8_host.errors import ModelError

from .layer import Layer, LayerMask
from .reference import masked_model

__all__ = ["row_keeps", "zero_rows", "shrink"]


def _as_dict(masks: Iterable[LayerMask] | Mapping[str, LayerMask]) -> dict[str, LayerMask]:
    items = list(masks.values()) if isinstance(masks, Mapping) else list(masks)
    out: dict[str, LayerMask] = {}
    for m in items:
        if not isinstance(m, LayerMask):
            raise TypeError(f"masks must be LayerMask objects (prune8_host.masks); got "
                            f"{type(m).__name__}")
        if m.name in out:
            raise ModelError(f"two masks for layer {m.name!r}")
        out[m.name] = m
    return out


def row_keeps(model: Mapping[str, Layer], masks) -> dict[str, np.ndarray]:
    """{layer: keep flags over its rows} from row masks, checked against the model:
    every mask is a row mask of a layer of the model, made for its shape, not of the
    last layer, keeping at least one row, and the next layer reads those rows."""
    masks = _as_dict(masks)
    if not masks:
        raise ModelError("no masks: shrink needs a row mask for each layer to shrink")
    names = list(model)
    keeps: dict[str, np.ndarray] = {}
    for name, m in masks.items():
        if name not in model:
            raise ModelError(f"mask for layer {name!r}, which the model does not have "
                             f"(layers: {', '.join(names)})")
        if m.unit != "row":
            raise ModelError(f"layer {name!r}: its mask is per {m.unit} (method {m.method}); "
                             f"shrink removes whole neurons and needs row masks "
                             f"(prune8 mask --method rows)")
        w = model[name].weights
        if w.ndim != 2 or (m.rows, m.cols) != w.shape or m.n != w.shape[0]:
            raise ModelError(f"layer {name!r} has shape {w.shape}, but its mask was made for "
                             f"{m.rows} x {m.cols}")
        i = names.index(name)
        if i == len(names) - 1:
            raise ModelError(f"layer {name!r} is the last layer: its rows are the model's "
                             f"outputs (classes), which shrink does not remove")
        keep = m.keep()
        if not keep.any():
            raise ModelError(f"layer {name!r}: the mask prunes all {m.n} rows; a layer "
                             f"needs at least one")
        nxt = model[names[i + 1]].weights
        if nxt.ndim != 2 or nxt.shape[1] != w.shape[0]:
            raise ModelError(f"layer {names[i + 1]!r} has shape {nxt.shape}: it does not "
                             f"read the {w.shape[0]} outputs of {name!r}, so they cannot "
                             f"be removed")
        keeps[name] = keep
    return keeps


def zero_rows(model: Mapping[str, Layer], masks) -> dict[str, Layer]:
    """The masked model `shrink` is exact against: each masked layer's pruned rows and
    their biases zeroed, and the next layer's matching columns zeroed. Either half alone
    already gives the shrunk model's outputs (module docstring); both together also keep
    every pruned connection at 0 for masked training, as make eval does."""
    keeps = row_keeps(model, masks)
    out = masked_model(model, list(_as_dict(masks).values()))  # rows and their biases
    names = list(model)
    for prev, name in zip(names, names[1:]):
        if prev in keeps:
            w = out[name].weights.copy()
            w[:, ~keeps[prev]] = 0
            out[name] = replace(out[name], weights=w)
    return out


def _shrink_quant(layer: Layer, rows: np.ndarray) -> dict[str, np.ndarray]:
    """Per-tensor fields as they are; per-row fields (shape (rows,)) lose pruned rows."""
    out = {}
    for fld, a in layer.quant.items():
        a = np.asarray(a)
        if a.shape == (layer.weights.shape[0],):
            out[fld] = a[rows]
        elif a.size == 1:
            out[fld] = a
        else:
            raise ModelError(f"{layer.name}.{fld} has shape {a.shape}: shrink knows "
                             f"per-tensor values and per-row ({layer.weights.shape[0]},) "
                             f"arrays")
    return out


def shrink(model: Mapping[str, Layer], masks) -> dict[str, Layer]:
    """A smaller dense model: for each row mask (LayerMask, unit "row"; a list or a
    {name: mask} mapping), the layer's pruned rows and the next layer's matching input
    columns are removed (module docstring). Layers without a mask keep their rows."""
    keeps = row_keeps(model, masks)
    names = list(model)
    out = {}
    for i, name in enumerate(names):
        layer = model[name]
        rows_in = names[i - 1] if i else None
        if name not in keeps and rows_in not in keeps:
            out[name] = layer
            continue
        r, c = layer.weights.shape
        rows = keeps.get(name, np.ones(r, bool))
        cols = keeps.get(rows_in, np.ones(c, bool))
        act = layer.activations
        if act is not None:
            act = act[cols] if act.shape == (c,) else act[rows][:, cols]
        calib = layer.calib[:, cols] if layer.calib is not None else None
        out[name] = replace(layer, weights=layer.weights[rows][:, cols].copy(),
                            activations=act, calib=calib,
                            quant=_shrink_quant(layer, rows) if name in keeps
                            else dict(layer.quant))
    return out
