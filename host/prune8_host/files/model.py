"""Model files (docs/spec.md §9.1): an .npz of named int8 layers (2-D, rows = output
neurons).

Activations for the gradient proxy are optional, stored under NAME + ".act" beside
layer NAME: int8, one per input column (cols,) or one per weight (rows, cols).
Calibration samples for Wanda are optional too, under NAME + ".calib": int8, one row of
`cols` inputs per sample (samples, cols).
A quantized model (prune8_host.twin.dense) also keeps its integer inference parameters beside
each layer, under NAME.FIELD for FIELD in QUANT_FIELDS (e.g. "fc1.bias", "fc1.mult").
Pruning ignores them; load_model exposes them as Layer.quant and save_model writes them
back. A key counts as such a parameter only when NAME is a layer of the same file, so a
file written before they existed reads exactly as it did.
A single .npy file is one layer named after the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from prune8 import errors
from prune8_host.errors import ModelError
from prune8_host.twin import dense
from prune8_host.twin.layer import (
    ACT_SUFFIX,
    CALIB_SUFFIX,
    MAX_CALIB_SAMPLES,
    QUANT_FIELDS,
    Layer,
    name_problem,
)

from . import tflite
from .npzio import load_arrays, save_npz


def _check_int8(path, what: str, a: np.ndarray) -> None:
    if a.dtype != np.int8:
        hint = ": quantize to int8 first" if a.dtype.kind in "fc" else ""
        raise ModelError(f"{path}: {what} is {a.dtype.name}, not int8{hint}")


def check_activations(path, key: str, w: np.ndarray, act: np.ndarray) -> None:
    """Activations (array `key` of file `path`) for a layer of weights `w`: int8, one per
    weight or one per column."""
    _check_int8(path, f"activations {key!r}", act)
    if not (act.shape == w.shape or (w.ndim == 2 and act.shape == (w.shape[1],))):
        raise ModelError(f"{path}: activations {key!r} have shape {act.shape}: need "
                         f"{w.shape} (one per weight)"
                         + (f" or ({w.shape[1]},) (one per column)" if w.ndim == 2 else ""))


def _check_quant(path, layer: Layer) -> None:
    """A quantized layer (every int8 inference parameter given) has each in the kernel's
    range; a layer with only some of them is not quantized, and keeps them as data."""
    if any(f not in layer.quant for f in dense.REQUIRED):
        return
    try:
        dense.qlayer(layer)
    except ModelError as e:
        raise ModelError(f"{path}: {e}") from None
    except errors.Prune8Error as e:  # a parameter out of the kernel's range
        raise ModelError(f"{path}: layer {layer.name!r}: {e}") from None


def load_model(path: str | Path, rows: int | None = None, cols: int | None = None,
               layers: list[str] | None = None) -> dict[str, Layer]:
    """Layers of a model file, in file order; `rows`/`cols` reshape flat (.npy) layers.
    A .tflite file (a TFLite flatbuffer) gives its prunable layers (files.tflite)."""
    if tflite.is_tflite(path):
        if rows is not None or cols is not None:
            raise ModelError(f"{path}: --rows/--cols are for flat .npy layers; a .tflite "
                             f"layer has its shape")
        return _select(path, tflite.load_tflite(path), layers)
    arrays = load_arrays(path)
    quant = _quant_keys(arrays)
    model: dict[str, Layer] = {}
    for name, w in arrays.items():
        if name.endswith((ACT_SUFFIX, CALIB_SUFFIX)) or name in quant:
            continue  # belongs to a layer: activations, calibration, quantization data
        problem = name_problem(name)
        if problem:
            raise ModelError(f"{path}: layer {name[:60]!r}: {problem}")
        _check_int8(path, f"layer {name!r}", w)
        if rows is not None or cols is not None:
            if rows is None or cols is None or rows * cols != w.size or rows < 1 or cols < 1:
                raise ModelError(f"{path}: layer {name!r} has {w.size} weights; --rows {rows} "
                                 f"--cols {cols} must both be given and multiply to {w.size}")
            w = w.reshape(rows, cols)
        if w.ndim not in (1, 2) or w.size == 0:
            raise ModelError(f"{path}: layer {name!r} has shape {w.shape}: need a non-empty "
                             f"2-D (rows, cols) array, or 1-D with --rows/--cols")
        act = arrays.get(name + ACT_SUFFIX)
        if act is not None:
            check_activations(path, name + ACT_SUFFIX, w, act)
        calib = arrays.get(name + CALIB_SUFFIX)
        if calib is not None:
            _check_int8(path, f"calibration {name + CALIB_SUFFIX!r}", calib)
            if w.ndim != 2 or calib.ndim != 2 or calib.shape[1] != w.shape[1] \
                    or not 1 <= calib.shape[0] <= MAX_CALIB_SAMPLES:
                raise ModelError(f"{path}: calibration {name + CALIB_SUFFIX!r} has shape "
                                 f"{calib.shape}: need (samples, {w.shape[-1]}) with 1.."
                                 f"{MAX_CALIB_SAMPLES} samples")
        q = {k[len(name) + 1:]: arrays[k] for k in arrays if quant.get(k) == name}
        model[name] = Layer(name, w, act, calib=calib, quant=q)
        _check_quant(path, model[name])
    orphans = [k for k in arrays if k.endswith((ACT_SUFFIX, CALIB_SUFFIX))
               and k.rsplit(".", 1)[0] not in model]
    if orphans:
        raise ModelError(f"{path}: {orphans[0]!r} belongs to no layer")
    if not model:
        raise ModelError(f"{path}: no layers (int8 arrays) in the file")
    return _select(path, model, layers)


def _select(path, model: dict[str, Layer], layers: list[str] | None) -> dict[str, Layer]:
    if layers:
        missing = [n for n in layers if n not in model]
        if missing:
            raise ModelError(f"{path}: no layer {missing[0]!r} (layers: {', '.join(model)})")
        model = {n: model[n] for n in layers}
    return model


def _quant_keys(arrays: dict[str, np.ndarray]) -> dict[str, str]:
    """{key: layer name} for every NAME.FIELD key whose NAME is another key of the file."""
    out = {}
    for key in arrays:
        name, dot, fld = key.rpartition(".")
        if dot and fld in QUANT_FIELDS and name in arrays and not name.endswith(ACT_SUFFIX):
            out[key] = name
    return out


def layer_arrays(layer: Layer) -> dict[str, np.ndarray]:
    """The arrays a layer stores: NAME, then NAME.act, NAME.calib and NAME.FIELD."""
    arrays = {layer.name: layer.weights}
    if layer.activations is not None:
        arrays[layer.name + ACT_SUFFIX] = layer.activations
    if layer.calib is not None:
        arrays[layer.name + CALIB_SUFFIX] = layer.calib
    for fld, a in layer.quant.items():
        arrays[f"{layer.name}.{fld}"] = a
    return arrays


def save_model(path: str | Path, model: dict[str, Layer]) -> None:
    arrays = {}
    for layer in model.values():
        arrays.update(layer_arrays(layer))
    save_npz(path, arrays)
