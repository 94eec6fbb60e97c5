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

`load_model` gives a `Model`: the layers in file order (a read-only mapping, name ->
Layer) and the file they came from, a .tflite with its parse (files.tflite) or an .npz /
.npy with every array it held, so that `Model.write` writes it back in its own format
with new weights: a .tflite as it was but for those weights' bytes, an .npz with every
array it held. An output's format follows its extension (.tflite or .npz; an .npy, or a
.tflite from a model that is not one, is refused before anything is written).
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path

import numpy as np

from prune8 import errors
from prune8_host.errors import ModelError, UsageError
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
from .output import check_suffix
from .records import LayerRecord, layer_record


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


def check_calib(path, key: str, w: np.ndarray, calib: np.ndarray) -> np.ndarray:
    """Calibration samples (array `key` of file `path`) for a layer of weights `w`: int8,
    (samples, cols), 1..MAX_CALIB_SAMPLES samples."""
    _check_int8(path, f"calibration {key!r}", calib)
    if w.ndim != 2 or calib.ndim != 2 or calib.shape[1] != w.shape[1] \
            or not 1 <= calib.shape[0] <= MAX_CALIB_SAMPLES:
        raise ModelError(f"{path}: calibration {key!r} has shape {calib.shape}: need "
                         f"(samples, {w.shape[-1]}) with 1..{MAX_CALIB_SAMPLES} samples")
    return calib


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


class Model(Mapping):
    """A model's layers in file order (name -> Layer) and where they came from (module
    docstring). `path` and `kind` ("tflite", "npz" or "npy") name the file, None for a
    model made in memory; `tflite_model` is a .tflite's parse (files.tflite.TfliteModel:
    its bytes, where each layer lives), `arrays` every array of an .npz / .npy as read."""

    def __init__(self, layers: Mapping[str, Layer], path=None, kind: str | None = None,
                 tflite_model: tflite.TfliteModel | None = None,
                 arrays: dict[str, np.ndarray] | None = None):
        self._layers = dict(layers)
        self.path, self.kind = path, kind
        self.tflite_model, self.arrays = tflite_model, arrays
        self._records: dict[str, LayerRecord] = {}

    def __getitem__(self, name: str) -> Layer:
        return self._layers[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._layers)

    def __len__(self) -> int:
        return len(self._layers)

    def __repr__(self) -> str:
        return f"Model({self.path or 'in memory'}: {', '.join(self)})"

    def record(self, name: str) -> LayerRecord:
        """Layer `name` as push sends it and the board stores it, with its CRC
        (files.records), made once: a push, the check that a board holds this model and
        verify share it."""
        if name not in self._records:
            self._records[name] = layer_record(self[name])
        return self._records[name]

    def depthwise_layers(self) -> list[str]:
        """The layers that are a .tflite's DEPTHWISE_CONV_2D (each row reads its own input
        channel, so they have activations but no Wanda samples)."""
        if self.tflite_model is None:
            return []
        return [n for n in self if self.tflite_model.placements[n].op == "DEPTHWISE_CONV_2D"]

    def _like(self, layers: dict[str, Layer]) -> Model:
        return Model(layers, self.path, self.kind, self.tflite_model, self.arrays)

    def select(self, names: list[str] | None) -> Model:
        """The model with only the named layers, in that order (all when no names)."""
        if not names:
            return self
        missing = [n for n in names if n not in self]
        if missing:
            raise ModelError(f"{self.path}: no layer {missing[0]!r} (layers: "
                             f"{', '.join(self)})")
        return self._like({n: self[n] for n in names})

    def with_weights(self, weights: Mapping[str, np.ndarray]) -> Model:
        """The model with these layers' weights (int8, as many as the layer has) in place
        of their own; everything else as it was."""
        layers = dict(self._layers)
        for name, w in weights.items():
            if name not in layers:
                raise ModelError(f"{self.path}: no layer {name!r} (layers: {', '.join(self)})")
            old = layers[name].weights
            w = np.asarray(w)
            if w.dtype != np.int8 or w.size != old.size:
                raise ModelError(f"{self.path}: layer {name!r} has {old.size} int8 weights; "
                                 f"got {w.size} {w.dtype.name}")
            layers[name] = replace(layers[name], weights=w.reshape(old.shape))
        return self._like(layers)

    def output_format(self, path) -> str:
        """The format `write` gives `path` ("tflite" or "npz"): its extension's, else the
        model's own; refused (UsageError) when the model cannot be written so."""
        own = "npz" if self.tflite_model is None else "tflite"
        fmt = {".tflite": "tflite", ".npz": "npz"}.get(Path(path).suffix.lower(), own)
        if fmt == "tflite" and self.tflite_model is None:
            what = f"{self.path} is an .{self.kind} model" if self.path else \
                "this model was not read from one"
            raise UsageError(f"{path}: only a .tflite model is written as a .tflite, and "
                             f"{what}: name the output .npz")
        check_suffix(path, "." + fmt)  # refuses a name that says .npy
        return fmt

    def write(self, path, weights: Mapping[str, np.ndarray] | None = None) -> None:
        """Write the model (with `weights` in place of those layers' own) to `path`, in the
        format `output_format` gives it: a .tflite as it was but for its layers' weight
        bytes (files.tflite.write_pruned); an .npz of every array the model's .npz / .npy
        held, or of its layers (save_model) for a model from a .tflite or made in memory."""
        if weights:
            return self.with_weights(weights).write(path)
        fmt = self.output_format(path)
        if fmt == "tflite":
            tflite.write_pruned(self.tflite_model,
                                {n: layer.weights for n, layer in self.items()}, path)
        elif self.arrays is not None:
            arrays = dict(self.arrays)
            for name, layer in self.items():
                w = layer.weights.reshape(arrays[name].shape)
                arrays.update(layer_arrays(replace(layer, weights=w)))
            save_npz(path, arrays)
        else:
            save_model(path, self)


def with_inputs(model: Model, path, selected: list[str] | None = None) -> Model:
    """`model` with the scorers' inputs of file `path` attached: NAME or NAME.act (the
    gradient proxy's activations) and NAME.calib (Wanda's samples), as `prune8 calibrate`
    writes them; a .npy is the activations of the one layer `selected` (or the model) has.
    An array that names no layer of the model is refused."""
    arrays = load_arrays(path)
    names = list(model)
    if Path(path).suffix == ".npy":
        chosen = selected or names
        if len(chosen) != 1:
            raise ModelError(f"{path}: a .npy holds one layer's activations, but "
                             f"{model.path} has {len(chosen)} layers: use an .npz")
        arrays = {chosen[0]: next(iter(arrays.values()))}
    strays = [k for k in arrays if k not in names and k.removesuffix(ACT_SUFFIX) not in names
              and k.removesuffix(CALIB_SUFFIX) not in names]
    if strays:
        raise ModelError(f"{path}: array {strays[0]!r} matches no layer of {model.path} "
                         f"(layers: {', '.join(names)}): name each array after its layer")
    layers = {}
    for name, layer in model.items():
        act, calib = _scorer_inputs(path, arrays, name, layer.weights,
                                    (name, name + ACT_SUFFIX))
        if act is not None:
            layer = replace(layer, activations=act)
        if calib is not None:
            layer = replace(layer, calib=calib)
        layers[name] = layer
    return model._like(layers)


def _scorer_inputs(path, arrays: dict, name: str, w: np.ndarray, act_keys: tuple):
    """(activations, calibration samples) of layer `name` (weights `w`) in `arrays`, read
    from file `path`, each checked, or None: the activations under the first of
    `act_keys` present, the samples under NAME.calib."""
    key = next((k for k in act_keys if k in arrays), None)
    act = arrays[key] if key else None
    if act is not None:
        check_activations(path, key, w, act)
    calib = arrays.get(name + CALIB_SUFFIX)
    if calib is not None:
        check_calib(path, name + CALIB_SUFFIX, w, calib)
    return act, calib


def load_model(path: str | Path, rows: int | None = None, cols: int | None = None,
               layers: list[str] | None = None) -> Model:
    """A model file's layers, in file order, as a Model; `rows`/`cols` reshape flat (.npy)
    layers, `layers` keeps only those named. A .tflite file (a TFLite flatbuffer) gives its
    prunable layers (files.tflite)."""
    if tflite.is_tflite(path):
        if rows is not None or cols is not None:
            raise ModelError(f"{path}: --rows/--cols are for flat .npy layers; a .tflite "
                             f"layer has its shape")
        tm = tflite.read(path)
        for layer in tm.layers.values():  # the inference parameters TFLM's scales give
            _check_quant(path, layer)
        return Model(tm.layers, path, "tflite", tflite_model=tm).select(layers)
    arrays = load_arrays(path)
    kind = "npz" if zipfile.is_zipfile(path) else "npy"
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
        act, calib = _scorer_inputs(path, arrays, name, w, (name + ACT_SUFFIX,))
        q = {k[len(name) + 1:]: arrays[k] for k in arrays if quant.get(k) == name}
        model[name] = Layer(name, w, act, calib=calib, quant=q)
        _check_quant(path, model[name])
    orphans = [k for k in arrays if k.endswith((ACT_SUFFIX, CALIB_SUFFIX))
               and k.rsplit(".", 1)[0] not in model]
    if orphans:
        raise ModelError(f"{path}: {orphans[0]!r} belongs to no layer")
    if not model:
        raise ModelError(f"{path}: no layers (int8 arrays) in the file")
    return Model(model, path, kind, arrays=arrays).select(layers)


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


def save_model(path: str | Path, model: Mapping[str, Layer]) -> None:
    """Write layers as a model .npz (each with its NAME.act, NAME.calib, NAME.FIELD)."""
    arrays = {}
    for layer in model.values():
        arrays.update(layer_arrays(layer))
    save_npz(path, arrays)
