"""A layer as push sends it and as the board stores it (docs/protocol.md).

`layer_bytes` is what travels after a layer's LAYER frame, `stored_bytes` what the board
keeps of it in model.bin (calibration samples become Wanda's sums of squares there), and
`layer_crc` the CRC-32 the board records, so the host can tell that the board holds
this very layer without reading it back.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

from prune8 import errors
from prune8.protocol import BIAS, LAYER_FMT, SUM
from prune8_host.twin.layer import Layer
from prune8_host.twin.scores import wanda_sumsq

QUANT_KEYS = ("bias", "mult", "shift", "relu", "in_zp", "out_zp")


def quant_params(layer: Layer) -> tuple | None:
    """(multiplier, shift, in_zp, out_zp, relu, bias bytes) of a quantized layer, else None."""
    if not all(k in layer.quant for k in QUANT_KEYS):
        return None
    q = {k: np.asarray(layer.quant[k]) for k in QUANT_KEYS}
    return (int(q["mult"]), int(q["shift"]), int(q["in_zp"]), int(q["out_zp"]),
            int(q["relu"]), q["bias"].astype(np.dtype(BIAS)).tobytes())


def layer_header(layer: Layer) -> bytes:
    """The payload of the layer's LAYER frame: name, shape, sizes, inference parameters."""
    name = layer.name.encode()
    rows, cols = layer.weights.shape
    act = 0 if layer.activations is None else layer.activations.size
    calib = 0 if layer.calib is None else layer.calib.shape[0]
    q = quant_params(layer)
    return bytes([len(name)]) + name + struct.pack(
        LAYER_FMT, rows, cols, act, calib, 1 if q else 0, *(q[:5] if q else (0, 0, 0, 0, 0)))


def layer_bytes(layer: Layer) -> bytes:
    """What a layer sends: weights, activations, calibration samples, biases."""
    act = layer.activations.tobytes() if layer.activations is not None else b""
    calib = layer.calib.tobytes() if layer.calib is not None else b""
    q = quant_params(layer)
    return layer.weights.tobytes() + act + calib + (q[5] if q else b"")


def stored_bytes(layer: Layer) -> bytes:
    """What the board stores for a layer: weights, activations, instead of the
    calibration samples the per-column sums of squares it accumulated from them, and
    the biases of a quantized layer."""
    act = layer.activations.tobytes() if layer.activations is not None else b""
    sums = b""
    if layer.calib is not None:
        sums = wanda_sumsq(layer.calib).astype(np.dtype(SUM)).tobytes()
    q = quant_params(layer)
    return layer.weights.tobytes() + act + sums + (q[5] if q else b"")


def layer_crc(layer: Layer) -> int:
    """The CRC-32 the board records for a layer (so the host can tell it is the same)."""
    return zlib.crc32(stored_bytes(layer))


def check_fits(layer: Layer, max_weights: int, max_units: int) -> None:
    """The board's own capacity checks, made before any byte is sent."""
    rows, cols = layer.weights.shape
    if layer.n > max_weights:
        raise errors.capacity_weights(layer.n, max_weights)
    if rows > max_units:
        raise errors.capacity_units("rows", rows, max_units)
    if cols > max_units:
        raise errors.capacity_units("cols", cols, max_units)
