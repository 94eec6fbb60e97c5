"""A layer as push sends it and as the board stores it (docs/protocol.md).

`layer_bytes` is what travels after a layer's LAYER frame, `stored_bytes` what the board
keeps of it in model.bin (calibration samples become Wanda's sums of squares there), and
`layer_crc` the CRC-32 the board records, so the host can tell that the board holds
this very layer without reading it back.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np

from prune8 import errors
from prune8.protocol import (
    BIAS,
    LAYER_FMT,
    LAYER_RECORD,
    MODEL_MAGIC,
    MULT,
    QUANT_CHANNEL,
    QUANT_NONE,
    QUANT_TENSOR,
    SCALE,
    SHIFT,
    STORE_HEAD,
    SUM,
)
from prune8_host.twin.layer import Layer
from prune8_host.twin.scores import scale_multipliers, wanda_sumsq

QUANT_KEYS = ("bias", "mult", "shift", "relu", "in_zp", "out_zp")


@dataclass(frozen=True)
class QuantParams:
    """A quantized layer's int8 inference parameters as the board takes them."""
    kind: int                  # protocol.QUANT_TENSOR or QUANT_CHANNEL
    multiplier: int            # per tensor (0 when per channel: they are in `channels`)
    shift: int
    in_zp: int
    out_zp: int
    relu: int
    bias: bytes                # rows BIAS
    channels: bytes = b""      # per channel: rows MULT, then rows SHIFT

    @property
    def header(self) -> tuple:
        """LAYER_FMT's / PACKED_RECORD's quantization fields."""
        return self.kind, self.multiplier, self.shift, self.in_zp, self.out_zp, self.relu

    @property
    def tail(self) -> bytes:
        return self.bias + self.channels


def quant_params(layer: Layer) -> QuantParams | None:
    """The inference parameters of a quantized layer, else None."""
    if not all(k in layer.quant for k in QUANT_KEYS):
        return None
    q = {k: np.asarray(layer.quant[k]) for k in QUANT_KEYS}
    bias = q["bias"].astype(np.dtype(BIAS)).tobytes()
    common = dict(in_zp=int(q["in_zp"]), out_zp=int(q["out_zp"]), relu=int(q["relu"]), bias=bias)
    if q["mult"].size == 1 and q["shift"].size == 1:
        return QuantParams(QUANT_TENSOR, int(q["mult"]), int(q["shift"]), **common)
    rows = layer.weights.shape[0]
    mult = np.broadcast_to(q["mult"].reshape(-1), (rows,)).astype(np.dtype(MULT))
    shift = np.broadcast_to(q["shift"].reshape(-1), (rows,)).astype(np.dtype(SHIFT))
    return QuantParams(QUANT_CHANNEL, 0, 0, channels=mult.tobytes() + shift.tobytes(),
                       **common)


def scale_bytes(layer: Layer) -> bytes:
    """The scale-aware score's per-row multipliers (rows SCALE), for a layer with one
    weight scale per row; none for a layer with one scale or none."""
    if "w_scale" not in layer.quant or np.size(layer.quant["w_scale"]) == 1:
        return b""  # one scale: the board's default, 32768 for every row
    rows = layer.weights.shape[0]
    return scale_multipliers(layer.quant["w_scale"], rows).astype(np.dtype(SCALE)).tobytes()


def layer_header(layer: Layer) -> bytes:
    """The payload of the layer's LAYER frame: name, shape, sizes, inference parameters."""
    name = layer.name.encode()
    rows, cols = layer.weights.shape
    act = 0 if layer.activations is None else layer.activations.size
    calib = 0 if layer.calib is None else layer.calib.shape[0]
    q = quant_params(layer)
    return bytes([len(name)]) + name + struct.pack(
        LAYER_FMT, rows, cols, act, calib, *(q.header if q else (QUANT_NONE, 0, 0, 0, 0, 0)),
        1 if scale_bytes(layer) else 0)


def _tail(layer: Layer) -> bytes:
    q = quant_params(layer)
    return (q.tail if q else b"") + scale_bytes(layer)


def layer_bytes(layer: Layer) -> bytes:
    """What a layer sends after its LAYER frame: weights, activations, calibration
    samples, then biases, per-channel parameters and scale multipliers."""
    act = layer.activations.tobytes() if layer.activations is not None else b""
    calib = layer.calib.tobytes() if layer.calib is not None else b""
    return layer.weights.tobytes() + act + calib + _tail(layer)


def stored_bytes(layer: Layer) -> bytes:
    """What the board stores for a layer: as sent, but Wanda's per-column sums of
    squares in place of the calibration samples it accumulated them from."""
    act = layer.activations.tobytes() if layer.activations is not None else b""
    sums = b""
    if layer.calib is not None:
        sums = wanda_sumsq(layer.calib).astype(np.dtype(SUM)).tobytes()
    return layer.weights.tobytes() + act + sums + _tail(layer)


def layer_crc(layer: Layer) -> int:
    """The CRC-32 the board records for a layer (so the host can tell it is the same)."""
    return zlib.crc32(stored_bytes(layer))


def check_fits(layer: Layer) -> None:
    """The board's own checks on a layer's shape, made before any byte is sent: a layer
    of any size goes to flash (one bigger than the Pruner is pruned there tile by tile),
    but rows and columns stay within the kernels' limit (docs/streaming.md)."""
    rows, cols = layer.weights.shape
    limit = errors.MAX_UNITS_LIMIT
    if rows > limit:
        raise errors.capacity_units("rows", rows, limit)
    if cols > limit:
        raise errors.capacity_units("cols", cols, limit)


def in_ram(layer: Layer, max_weights: int, max_units: int) -> bool:
    """Whether the board prunes and runs this layer in RAM, or streams it from flash
    (it does not fit the Pruner's buffers: prune8.stream, prune8.stored_dense)."""
    rows, cols = layer.weights.shape
    return layer.n <= max_weights and rows <= max_units and cols <= max_units


def stored_size(model) -> int:
    """Bytes of the board's model.bin for these layers: header, records, stored data."""
    size = len(MODEL_MAGIC) + struct.calcsize(STORE_HEAD)
    for layer in model:
        size += 1 + len(layer.name.encode()) + struct.calcsize(LAYER_RECORD)
        size += len(stored_bytes(layer))
    return size
