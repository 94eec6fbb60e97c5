"""Post-training quantization of a float MLP to int8, as the TensorFlow Lite converter
does it for TFLM (docs/spec.md §8.1, §8.2):

- weights: symmetric per tensor, zero point 0, scale max|w| / 127, values -127..127;
- activations (the input, the hidden layer, the logits): asymmetric int8 with a zero
  point, from the range seen on calibration data widened to include 0:
  scale = (max - min) / 255, zero point = round(-128 - min / scale);
- biases: int32 with scale input_scale * weight_scale, zero point 0;
- requantization: real multiplier input_scale * weight_scale / output_scale, as
  QuantizeMultiplier's (M, shift) (`dense.quantize_multiplier`).

Scales are float32, as a .tflite file stores them; products of scales are formed in
float64 from those float32 values, as TFLM does. Rounding is half away from zero
(TfLiteRound).
"""

from __future__ import annotations

import numpy as np

from prune8_host.twin import dense
from prune8_host.twin.layer import Layer

from .mlp import MLP

__all__ = ["round_half_away", "activation_params", "quantize_activations", "quantize_layer",
           "quantize_mlp", "dequantize_mlp"]


def round_half_away(x) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def activation_params(lo: float, hi: float) -> tuple[np.float32, int]:
    """(scale, zero point) of an int8 activation whose real values span [lo, hi]."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    scale = np.float32((hi - lo) / 255.0) if hi > lo else np.float32(1.0)
    zp = int(round_half_away(-128.0 - lo / float(scale)))
    return scale, min(127, max(-128, zp))


def quantize_activations(x, scale, zp: int) -> np.ndarray:
    """int8 values of real activations x: clamp(round(x / scale) + zp, -128, 127)."""
    q = round_half_away(np.asarray(x, np.float64) / float(scale)) + zp
    return np.clip(q, -128, 127).astype(np.int8)


def weight_scales(w: np.ndarray, per_channel: bool = False) -> np.ndarray:
    """Symmetric int8 weight scales, max|w| / 127 (1 where a row or the layer is all 0):
    one for the layer, or one per row (output channel), float32."""
    top = np.max(np.abs(w), axis=tuple(range(1, w.ndim))) if per_channel else \
        np.max(np.abs(w))
    return np.where(top > 0, top / 127.0, 1.0).astype(np.float32)


def quantize_weights(w: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """int8 weights at these scales (one, or one per row), -127..127."""
    s = np.asarray(scales, np.float64).reshape((-1,) + (1,) * (w.ndim - 1))
    return np.clip(round_half_away(w / s), -127, 127).astype(np.int8)


def _layer(name, w, b, in_q, out_q, relu, per_channel: bool = False) -> Layer:
    (in_scale, in_zp), (out_scale, out_zp) = in_q, out_q
    scales = weight_scales(w, per_channel)
    wq = quantize_weights(w, scales)
    bias_scale = float(in_scale) * scales.astype(np.float64)   # per channel: one per row
    bias = round_half_away(b / bias_scale)
    if np.any(np.abs(bias) >= dense.BIAS_LIMIT):
        raise ValueError(f"layer {name!r}: a bias quantizes beyond the kernel's 2**29 limit")
    if per_channel:
        pairs = [dense.quantize_multiplier(float(s) / float(out_scale))
                 for s in np.atleast_1d(bias_scale)]
        mult = np.array([m for m, _ in pairs], np.int32)
        shift = np.array([s for _, s in pairs], np.int32)
        w_scale = scales
    else:
        m, s = dense.quantize_multiplier(float(bias_scale) / float(out_scale))
        mult, shift, w_scale = np.int32(m), np.int32(s), np.float32(scales)
    quant = {"bias": bias.astype(np.int32), "mult": mult, "shift": shift,
             "relu": np.int8(relu), "in_zp": np.int32(in_zp), "out_zp": np.int32(out_zp),
             "in_scale": np.float32(in_scale), "w_scale": w_scale,
             "out_scale": np.float32(out_scale)}
    return Layer(name, wq, quant=quant)


def quantize_layer(name, w, b, in_q, out_q, relu: int, per_channel: bool = False) -> Layer:
    """One float dense layer (w, b) as an int8 Layer with its TFLM parameters, between
    activations quantized as in_q and out_q ((scale, zero point) pairs)."""
    return _layer(name, w, b, in_q, out_q, relu, per_channel)


def quantize_mlp(m: MLP, calib: np.ndarray, per_channel: bool = False) -> dict[str, Layer]:
    """The int8 model of m ("fc1" with ReLU, then "fc2"), activation ranges from the
    float calibration inputs `calib` (n, inputs); weight scales per layer, or per row."""
    from . import mlp
    _, h, z = mlp.forward(m, calib)
    q_in = activation_params(calib.min(), calib.max())
    q_h = activation_params(0.0, h.max())
    q_out = activation_params(z.min(), z.max())
    return {"fc1": _layer("fc1", m.w1, m.b1, q_in, q_h, 1, per_channel),
            "fc2": _layer("fc2", m.w2, m.b2, q_h, q_out, 0, per_channel)}


def dequantize_mlp(model: dict[str, Layer]) -> MLP:
    """The float MLP an int8 fc1/fc2 model stands for: w = w_scale * q,
    b = in_scale * w_scale * bias (pruned weights stay exactly 0)."""
    def real(layer: Layer) -> tuple[np.ndarray, np.ndarray]:
        q = layer.quant
        ws = np.asarray(q["w_scale"], np.float64).reshape(-1)   # one, or one per row
        return (layer.weights.astype(np.float64) * ws[:, None],
                q["bias"].astype(np.float64) * (float(q["in_scale"]) * ws))
    w1, b1 = real(model["fc1"])
    w2, b2 = real(model["fc2"])
    return MLP(w1, b1, w2, b2)
