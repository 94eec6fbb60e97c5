"""The host twin of `prune8.dense`: TensorFlow Lite Micro's int8 fully connected layer.

Vectorized NumPy with int64 intermediates, written as TFLM and gemmlowp state it
(SaturatingRoundingDoublingHighMul, then RoundingDivideByPOT), so that the firmware's
15-bit-limb version is checked against the reference formulas, not against itself
(docs/spec.md §8.2-§8.4; the calibration statistic: §8.7). Errors are the firmware's
(`prune8.errors`).

A quantized model is a model file (`prune8_host.files.model`) whose layers carry the integer
parameters under NAME.FIELD keys (`twin.layer.QUANT_FIELDS`), in file order:
fc1's output is fc2's input, and so on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from prune8 import errors
from prune8_host.errors import ModelError

from .layer import Layer

__all__ = [
    "INT32_MIN", "INT32_MAX", "BIAS_LIMIT", "MAX_UNITS", "MAX_CALIB", "SAT", "QLayer",
    "quantize_multiplier", "saturating_rounding_doubling_high_mul", "rounding_divide_by_pot",
    "multiply_by_quantized_multiplier", "dense", "qlayers", "forward", "logits", "predict",
    "accuracy", "column_sums", "column_stat", "activation_stats",
]

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1
BIAS_LIMIT = 1 << 29        # |bias| < 2**29 keeps the accumulator a MicroPython small int
MAX_UNITS = errors.MAX_UNITS_LIMIT
MAX_CALIB = 32767           # calibration images: 127 * 255 * 32767 < 2**30 on the board
SAT = 1 << 29               # the firmware reports requantized values beyond this as +-SAT
REQUIRED = ("bias", "mult", "shift", "relu", "in_zp", "out_zp")


def _is_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


# -- TFLM's fixed-point arithmetic ------------------------------------------------------

def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLM's QuantizeMultiplier: (M, shift) with real ~= M * 2**(shift - 31).

    M is 0 or in 2**30..2**31-1 (q = frexp(real) in [0.5, 1), M = round(q * 2**31), half
    away from zero); multipliers below 2**-31 flush to (0, 0). A shift above 30 (a real
    multiplier of 2**30 or more) is refused: the kernel takes -31..30.
    """
    real = float(real)
    if not math.isfinite(real) or real < 0:
        raise ValueError(f"a requantization multiplier must be finite and >= 0; got {real!r}")
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = math.floor(q * (1 << 31) + 0.5)   # exact: q * 2**31 has 53 bits, < 2**31
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if shift > 30:
        raise ValueError(f"requantization multiplier {real!r} is 2**30 or more: the int8 "
                         f"kernel takes shifts up to 30")
    return int(q_fixed), int(shift)


def saturating_rounding_doubling_high_mul(a, b) -> np.ndarray:
    """gemmlowp's SaturatingRoundingDoublingHighMul on int32 values (as int64 arrays)."""
    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    ab = a * b                                  # |ab| <= 2**62: exact in int64
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    num = ab + nudge
    # C's int64 division by 2**31 truncates toward zero
    high = np.where(num >= 0, num >> 31, -((-num) >> 31))
    overflow = (a == INT32_MIN) & (b == INT32_MIN)
    return np.where(overflow, INT32_MAX, high)


def rounding_divide_by_pot(x, exponent) -> np.ndarray:
    """gemmlowp's RoundingDivideByPOT: x / 2**exponent rounded half away from zero
    (exponent an int, or one per element of the last axis)."""
    e = np.asarray(exponent, np.int64)
    if np.any((e < 0) | (e > 31)):
        raise ValueError(f"exponent must be in 0..31; got {exponent}")
    x = np.asarray(x, np.int64)
    mask = np.left_shift(np.int64(1), e) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> e) + (remainder > threshold)


def multiply_by_quantized_multiplier(x, multiplier, shift) -> np.ndarray:
    """TFLM's MultiplyByQuantizedMultiplier (double rounding, the default build), with one
    multiplier and shift, or one per output channel (arrays over the last axis of x).

    TFLM forms x * (1 << left_shift) in int32, which is undefined when it overflows;
    prune8 saturates it to int32 there (the int8 output saturates either way).
    """
    x = np.asarray(x, np.int64)
    shift = np.asarray(shift, np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    shifted = np.clip(x << left, INT32_MIN, INT32_MAX)
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted, multiplier),
                                  right)


# -- the layer ------------------------------------------------------------------------

def _check_int(name: str, value, lo: int, hi: int) -> int:
    if not _is_int(value) or not lo <= value <= hi:
        raise errors.quant_int(name, value, lo, hi)
    return int(value)


def _per_row(name: str, value, rows: int):
    """An int (per tensor), or a 1-D integer array of one per row (per channel)."""
    if _is_int(value):
        return value
    a = np.asarray(value)
    if a.ndim == 0:
        return a.item()
    if a.ndim != 1 or a.size != rows:
        raise errors.dense_length(name, int(a.size), rows)
    return a.tolist()


def _check_params(w, bias, multiplier, shift, in_zp, out_zp, relu):
    """The firmware's checks (Dense() and Dense.load), in its order, with its messages."""
    w = np.asarray(w)
    if w.ndim != 2 or not (1 <= w.shape[0] <= MAX_UNITS and 1 <= w.shape[1] <= MAX_UNITS):
        raise errors.dense_shape(*(w.shape if w.ndim == 2 else (w.size, 1)))
    rows = w.shape[0]
    # both counts, then every multiplier, then every shift (firmware's Requant)
    multiplier = _per_row("multiplier", multiplier, rows)
    shift = _per_row("shift", shift, rows)
    for m in np.atleast_1d(multiplier).tolist() if not _is_int(multiplier) else [multiplier]:
        if not _is_int(m) or (m != 0 and not 1 << 30 <= m <= INT32_MAX):
            raise errors.quant_multiplier(m)
    for s in np.atleast_1d(shift).tolist() if not _is_int(shift) else [shift]:
        _check_int("shift", s, -31, 30)
    in_zp = _check_int("in_zp", in_zp, -128, 127)
    out_zp = _check_int("out_zp", out_zp, -128, 127)
    if not isinstance(relu, (bool, np.bool_)):
        raise errors.quant_relu(relu)
    if w.dtype != np.int8:
        raise errors.dtype("weights", w.dtype.name)
    rows = w.shape[0]
    b = np.asarray(bias)
    if b.ndim != 1 or b.size != rows:
        raise errors.dense_length("bias", b.size, rows)
    if not np.issubdtype(b.dtype, np.integer):
        raise errors.quant_bias(b.reshape(-1)[0].item(), 0)
    bad = np.flatnonzero((b < -BIAS_LIMIT) | (b >= BIAS_LIMIT))
    if bad.size:
        raise errors.quant_bias(int(b[bad[0]]), int(bad[0]))
    if _is_int(multiplier):
        multiplier = int(multiplier)
    else:
        multiplier = np.asarray(multiplier, np.int64)
    shift = int(shift) if _is_int(shift) else np.asarray(shift, np.int64)
    return w, b.astype(np.int64), multiplier, shift, in_zp, out_zp, bool(relu)


def dense(x, w, bias, multiplier, shift, out_zero_point, relu, *, in_zero_point) -> np.ndarray:
    """TFLM's int8 FullyConnected: x (cols,) or (batch, cols) int8 -> int8 (rows,) / (batch, rows).

    acc = bias + sum_c (x - in_zero_point) * w[r, c]; out = clamp(MBQM(acc, multiplier,
    shift) + out_zero_point, lo, 127) with lo = max(-128, out_zero_point) when relu.
    """
    w, b, m, shift, in_zp, out_zp, relu = _check_params(
        w, bias, multiplier, shift, in_zero_point, out_zero_point, relu)
    x = np.asarray(x)
    if x.dtype != np.int8:
        raise errors.dtype("input", x.dtype.name)
    cols = w.shape[1]
    if x.ndim not in (1, 2) or x.shape[-1] != cols:
        raise errors.dense_length("input", x.shape[-1] if x.ndim else x.size, cols)
    acc = (x.astype(np.int64) - in_zp) @ w.T.astype(np.int64) + b   # exact: ints, no BLAS
    y = multiply_by_quantized_multiplier(acc, m, shift) + out_zp
    lo = max(-128, out_zp) if relu else -128
    return np.clip(y, lo, 127).astype(np.int8)


# -- a quantized model ------------------------------------------------------------------

@dataclass(frozen=True)
class QLayer:
    """One layer of a quantized model file, its integers as the kernel takes them."""
    name: str
    weights: np.ndarray      # int8 (rows, cols)
    bias: np.ndarray         # int32 (rows,)
    multiplier: int | np.ndarray    # one, or one per row (per channel)
    shift: int | np.ndarray
    in_zp: int
    out_zp: int
    relu: bool
    in_scale: float | None = None   # real = scale * (q - zp); informative, not used by the kernel
    w_scale: float | np.ndarray | None = None
    out_scale: float | None = None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return dense(x, self.weights, self.bias, self.multiplier, self.shift, self.out_zp,
                     self.relu, in_zero_point=self.in_zp)


def _scalar(layer: Layer, field: str, kind: str):
    a = np.asarray(layer.quant[field])
    if a.size != 1 or (kind == "int" and not np.issubdtype(a.dtype, np.integer)
                       and a.dtype != np.bool_) or (kind == "float" and a.dtype.kind != "f"):
        raise ModelError(f"layer {layer.name!r}: {layer.name}.{field} must be one "
                         f"{'integer' if kind == 'int' else 'float'}; got {a.dtype.name} "
                         f"{a.shape}")
    return a.reshape(()).item()


def _channels(layer: Layer, field: str, kind: str):
    """A parameter given per tensor (one value) or per output channel (one per row)."""
    a = np.asarray(layer.quant[field])
    rows = layer.weights.shape[0]
    if a.size == 1:
        return _scalar(layer, field, kind)
    ok = np.issubdtype(a.dtype, np.integer) if kind == "int" else a.dtype.kind == "f"
    if a.ndim != 1 or a.size != rows or not ok:
        raise ModelError(f"layer {layer.name!r}: {layer.name}.{field} must be one "
                         f"{'integer' if kind == 'int' else 'float'}, or one per row "
                         f"({rows}); got {a.dtype.name} {a.shape}")
    return a.astype(np.int64 if kind == "int" else np.float32)


def qlayer(layer: Layer) -> QLayer:
    """One layer's inference parameters, checked: every one present and in range."""
    missing = [f for f in REQUIRED if f not in layer.quant]
    if missing:
        raise ModelError(f"layer {layer.name!r} has no {layer.name}.{missing[0]}: not a "
                         f"quantized model (docs/spec-decisions.md, 'int8 inference')")
    if layer.weights.ndim != 2:
        raise ModelError(f"layer {layer.name!r} is not 2-D (rows, cols)")
    scales = {f: _scalar(layer, f, "float") if f in layer.quant else None
              for f in ("in_scale", "out_scale")}
    scales["w_scale"] = _channels(layer, "w_scale", "float") if "w_scale" in layer.quant \
        else None
    relu = _scalar(layer, "relu", "int")
    q = QLayer(layer.name, layer.weights, np.asarray(layer.quant["bias"]),
               _channels(layer, "mult", "int"), _channels(layer, "shift", "int"),
               _scalar(layer, "in_zp", "int"), _scalar(layer, "out_zp", "int"),
               relu if relu not in (0, 1) else bool(relu), **scales)
    _check_params(q.weights, q.bias, q.multiplier, q.shift, q.in_zp, q.out_zp, q.relu)
    return q


def qlayers(model: Mapping[str, Layer]) -> list[QLayer]:
    """The layers of a quantized model, checked: every parameter present and in range, and
    each layer's input the previous layer's output (cols, zero point)."""
    out: list[QLayer] = []
    for layer in model.values():
        q = qlayer(layer)
        if out:
            prev = out[-1]
            i = len(out)
            if q.weights.shape[1] != prev.weights.shape[0]:
                raise errors.chain_mismatch(i, "cols", q.weights.shape[1], prev.weights.shape[0])
            if q.in_zp != prev.out_zp:
                raise errors.chain_mismatch(i, "in_zp", q.in_zp, prev.out_zp)
        out.append(q)
    if not out:
        raise ModelError("a quantized model needs at least one layer")
    return out


def forward(model: Mapping[str, Layer], images) -> list[np.ndarray]:
    """Every layer's int8 output for images (n, cols) int8, in layer order."""
    x = np.asarray(images)
    outs = []
    for q in qlayers(model):
        x = q(x)
        outs.append(x)
    return outs


def logits(model: Mapping[str, Layer], images) -> np.ndarray:
    """The last layer's int8 outputs for images (n, cols) int8 (or one image (cols,))."""
    return forward(model, images)[-1]


def predict(model: Mapping[str, Layer], images) -> np.ndarray:
    """Class per image: the index of the largest logit, the lowest index among equals
    (np.argmax; the firmware's Network.predict does the same)."""
    return np.argmax(logits(model, images), axis=-1)


def accuracy(model: Mapping[str, Layer], images, labels) -> float:
    labels = np.asarray(labels)
    return float(np.count_nonzero(predict(model, images) == labels)) / labels.size


# -- the calibration statistic for the gradient proxy -----------------------------------

def column_sums(x, zp: int) -> np.ndarray:
    """sum over rows of |x - zp| per column, for int8 x (n, cols): what ColumnStats.add sums."""
    x = np.asarray(x)
    if x.dtype != np.int8:
        raise errors.dtype("input", x.dtype.name)
    x = x.reshape(-1, x.shape[-1])
    if x.shape[0] > MAX_CALIB:
        raise errors.calib_full(MAX_CALIB)
    return np.abs(x.astype(np.int64) - int(zp)).sum(axis=0)


def column_stat(sums) -> np.ndarray:
    """a[c] = (127 * sums[c] + max // 2) // max as int8 (0..127); all 0 when max is 0."""
    s = np.asarray(sums, np.int64)
    top = int(s.max())
    if top == 0:
        return np.zeros(s.shape, np.int8)
    return ((s * 127 + top // 2) // top).astype(np.int8)


def activation_stats(model: Mapping[str, Layer], images) -> dict[str, np.ndarray]:
    """Per layer, the calibration statistic of its input over images (n, cols) int8:
    the activations the gradient proxy uses, one per input column (NAME.act)."""
    x = np.asarray(images)
    stats = {}
    for q in qlayers(model):
        stats[q.name] = column_stat(column_sums(x, q.in_zp))
        x = q(x)
    return stats
