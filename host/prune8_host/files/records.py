"""A layer as push sends it and as the board stores it (docs/protocol.md).

`layer_record` gives, in one pass, what travels in a layer's LAYER frame and after it,
what the board keeps of it in model.bin (calibration samples become Wanda's sums of
squares there), and the CRC-32 the board records, so the host can tell that the board
holds this very layer without reading it back.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np

from prune8 import errors
from prune8.formats import (
    BIAS,
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
from prune8.protocol import LAYER_FMT
from prune8_host.twin.layer import Layer
from prune8_host.twin.scores import scale_multipliers, wanda_sumsq

QUANT_KEYS = ("bias", "mult", "shift", "relu", "in_zp", "out_zp")


@dataclass(frozen=True)
class QuantParams:
    """A quantized layer's int8 inference parameters as the board takes them."""
    kind: int                  # formats.QUANT_TENSOR or QUANT_CHANNEL
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


@dataclass(frozen=True)
class LayerRecord:
    """A layer serialised (`layer_record`): what push sends and what the board keeps of
    it. Made once per layer of a model (files.model.Model.record), it serves the push,
    the check that a board holds the model, and verify."""
    header: bytes       # the payload of the layer's LAYER frame: name, shape, sizes, quant,
                        # the CRC of `stored` (announced: the board never goes back to it)
    data: bytes         # what push sends after it: weights, activations, calibration
                        # samples, then biases, per-channel parameters, scale multipliers
    stored: bytes       # what model.bin keeps: `data` with Wanda's per-column sums of
                        # squares in place of the calibration samples
    stored_size: int    # bytes of its entry in model.bin: name, LAYER_RECORD, `stored`
    crc: int            # the CRC-32 of `stored` the board records (the host can tell that
                        # the board holds this very layer without reading it back)
    stored_header: bytes  # the layer's header in model.bin: name, LAYER_RECORD (what the
                          # model id is the CRC-32 of: model_id)


def layer_record(layer: Layer) -> LayerRecord:
    q, scales = quant_params(layer), scale_bytes(layer)
    tail = (q.tail if q else b"") + scales
    name = layer.name.encode()
    # a flat layer is one row, as the twin scores it: push refuses it, model info sizes it
    rows, cols = layer.shape or (1, layer.n)
    weights = layer.weights.tobytes()
    act = layer.activations.tobytes() if layer.activations is not None else b""
    calib, sums = b"", b""
    if layer.calib is not None:
        calib = layer.calib.tobytes()
        sums = wanda_sumsq(layer.calib).astype(np.dtype(SUM)).tobytes()
    stored = weights + act + sums + tail
    crc = zlib.crc32(stored)
    samples = 0 if layer.calib is None else layer.calib.shape[0]
    quant = q.header if q else (QUANT_NONE, 0, 0, 0, 0, 0)
    scaled = 1 if scales else 0
    header = bytes([len(name)]) + name + struct.pack(
        LAYER_FMT, rows, cols, len(act), samples, *quant, scaled, crc)
    stored_header = bytes([len(name)]) + name + struct.pack(
        LAYER_RECORD, rows, cols, len(act), samples, crc, *quant, scaled)
    return LayerRecord(header=header, data=weights + act + calib + tail, stored=stored,
                       stored_size=len(stored_header) + len(stored), crc=crc,
                       stored_header=stored_header)


def model_id(headers) -> int:
    """The id the board gives a model whose layers have these stored headers, in order
    (LayerRecord.stored_header, or a stored layer's as the board lists it): their
    CRC-32 (prune8.store.model_id)."""
    return zlib.crc32(b"".join(headers))


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


def stored_size(records) -> int:
    """Bytes of the board's model.bin for these layers' records: header, then each
    record's entry."""
    return len(MODEL_MAGIC) + struct.calcsize(STORE_HEAD) + sum(r.stored_size for r in records)
