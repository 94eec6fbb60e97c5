"""A small CNN for the digits (8x8x1), trained and fine-tuned in NumPy, quantized as the
TensorFlow Lite converter does (per-channel conv weights), written as a .tflite.

    conv1  CONV_2D 3x3, 1 -> 8, VALID, ReLU            8x8x1 -> 6x6x8
    dw     DEPTHWISE_CONV_2D 3x3 on 8 channels, ReLU   6x6x8 -> 4x4x8
    pw     CONV_2D 1x1, 8 -> 8, ReLU                   4x4x8 -> 4x4x8
    fc     FULLY_CONNECTED 128 -> 10 (NHWC flatten)     -> logits

Everything is float64 NumPy with fixed seeds, so a run gives the same bytes on every
machine with the same NumPy. Masks (one keep array per weight tensor, in the tensor's
own shape) keep pruned weights at zero through fine-tuning.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from . import ptq
from . import tflite_build as tb

SEED = 20261201
EPOCHS = 40
LR = 0.1
BATCH = 32
NAMES = ("conv1", "dw", "pw", "fc")


@dataclass(frozen=True)
class CNN:
    conv1: np.ndarray   # (8, 3, 3, 1)  TFLite's [out, kh, kw, in]
    b1: np.ndarray
    dw: np.ndarray      # (1, 3, 3, 8)  [1, kh, kw, ch]
    b2: np.ndarray
    pw: np.ndarray      # (8, 1, 1, 8)
    b3: np.ndarray
    fc: np.ndarray      # (10, 128)
    b4: np.ndarray

    def weights(self) -> dict[str, np.ndarray]:
        return {"conv1": self.conv1, "dw": self.dw, "pw": self.pw, "fc": self.fc}


def init(seed: int = SEED) -> CNN:
    rng = np.random.default_rng(seed)

    def he(shape, fan_in):
        return rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)

    return CNN(he((8, 3, 3, 1), 9), np.zeros(8), he((1, 3, 3, 8), 9), np.zeros(8),
               he((8, 1, 1, 8), 8), np.zeros(8), he((10, 128), 128) * 0.5, np.zeros(10))


def _patches(x: np.ndarray) -> np.ndarray:
    """3x3 VALID patches of x (n, h, w, c) -> (n, h-2, w-2, 3, 3, c)."""
    n, h, w, c = x.shape
    s = x.strides
    return np.lib.stride_tricks.as_strided(x, (n, h - 2, w - 2, 3, 3, c),
                                           (s[0], s[1], s[2], s[1], s[2], s[3]))


def forward(m: CNN, x: np.ndarray) -> tuple[np.ndarray, dict]:
    """Logits of images x (n, 64) in [0, 1], and what backward() needs."""
    a0 = x.reshape(-1, 8, 8, 1)
    p1 = _patches(a0)                                             # (n,6,6,3,3,1)
    z1 = np.einsum("nyxijc,oijc->nyxo", p1, m.conv1) + m.b1
    a1 = np.maximum(z1, 0)
    p2 = _patches(a1)                                             # (n,4,4,3,3,8)
    z2 = np.einsum("nyxijc,ijc->nyxc", p2, m.dw[0]) + m.b2
    a2 = np.maximum(z2, 0)
    z3 = np.einsum("nyxc,oc->nyxo", a2, m.pw[:, 0, 0, :]) + m.b3
    a3 = np.maximum(z3, 0)
    flat = a3.reshape(len(x), -1)                                 # NHWC flatten
    z4 = flat @ m.fc.T + m.b4
    return z4, {"p1": p1, "z1": z1, "a1": a1, "p2": p2, "z2": z2, "a2": a2, "z3": z3,
                "a3": a3, "flat": flat}


def activations(m: CNN, x: np.ndarray) -> dict[str, np.ndarray]:
    """The real input of every layer (for activation ranges): image, conv1, dw, pw out."""
    z4, c = forward(m, x)
    return {"input": x, "conv1": c["a1"], "dw": c["a2"], "pw": c["a3"], "logits": z4}


def backward(m: CNN, x, y, cache, z4) -> CNN:
    """Gradients of the mean cross entropy."""
    n = len(x)
    p = np.exp(z4 - z4.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(n), y] -= 1.0
    g4 = p / n
    gfc, gb4 = g4.T @ cache["flat"], g4.sum(0)
    g3 = (g4 @ m.fc).reshape(cache["a3"].shape) * (cache["z3"] > 0)
    gpw = np.einsum("nyxo,nyxc->oc", g3, cache["a2"])[:, None, None, :]
    gb3 = g3.sum((0, 1, 2))
    g2 = np.einsum("nyxo,oc->nyxc", g3, m.pw[:, 0, 0, :]) * (cache["z2"] > 0)
    gdw = np.einsum("nyxc,nyxijc->ijc", g2, cache["p2"])[None]
    gb2 = g2.sum((0, 1, 2))
    ga1 = np.zeros_like(cache["a1"])
    for i in range(3):
        for j in range(3):
            ga1[:, i:i + 4, j:j + 4, :] += g2 * m.dw[0, i, j, :]
    g1 = ga1 * (cache["z1"] > 0)
    gconv1 = np.einsum("nyxo,nyxijc->oijc", g1, cache["p1"])
    gb1 = g1.sum((0, 1, 2))
    return CNN(gconv1, gb1, gdw, gb2, gpw, gb3, gfc, gb4)


def train(m: CNN, x, y, epochs: int = EPOCHS, lr: float = LR, seed: int = SEED + 1,
          masks: dict[str, np.ndarray] | None = None) -> CNN:
    """Minibatch SGD; masks (keep flags per field: a weight tensor, or a bias) hold pruned
    weights and biases at 0."""
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for i in range(0, len(x), BATCH):
            idx = order[i:i + BATCH]
            z4, cache = forward(m, x[idx])
            g = backward(m, x[idx], y[idx], cache, z4)
            m = CNN(*(getattr(m, f) - lr * getattr(g, f) for f in CNN.__dataclass_fields__))
            if masks:
                m = replace(m, **{k: getattr(m, k) * masks[k] for k in masks})
    return m


def accuracy(m: CNN, x, y) -> float:
    return float(np.mean(forward(m, x)[0].argmax(1) == y))


def quantize(m: CNN, calib: np.ndarray) -> tuple[bytes, dict]:
    """The .tflite of m (conv and depthwise weights per channel, fc per tensor; activation
    ranges from the calibration images) and the (scale, zero point) of every activation:
    "input", and each layer's output ("conv1", "dw", "pw", "logits")."""
    acts = activations(m, calib)
    q_in = ptq.activation_params(0.0, 1.0)
    q = {k: ptq.activation_params(0.0 if k != "logits" else acts[k].min(), acts[k].max())
         for k in ("conv1", "dw", "pw", "logits")}
    ops, scale = [], float(q_in[0])
    for name, w, b, out, shape, kind, per_channel in (
            ("conv1", m.conv1, m.b1, q["conv1"], (1, 6, 6, 8), tb.CONV, True),
            ("dw", m.dw, m.b2, q["dw"], (1, 4, 4, 8), tb.DEPTHWISE, True),
            ("pw", m.pw, m.b3, q["pw"], (1, 4, 4, 8), tb.CONV, True),
            ("fc", m.fc, m.b4, q["logits"], (1, 10), tb.FC, False)):
        ws = _scales(w, kind, per_channel)
        wq = _quantize(w, ws, kind)
        bias = ptq.round_half_away(b / (scale * ws.astype(np.float64))).astype(np.int32)
        ops.append(tb.Op(kind, name, wq, ws, bias, float(out[0]), int(out[1]), shape,
                         tb.NONE if name == "fc" else tb.RELU))
        scale = float(out[0])
    return tb.build((1, 8, 8, 1), float(q_in[0]), int(q_in[1]), ops,
                    description="prune8 digits CNN"), {"input": q_in, **q}


def _scales(w: np.ndarray, kind: int, per_channel: bool) -> np.ndarray:
    if kind == tb.DEPTHWISE:  # channels are the last dimension
        return ptq.weight_scales(np.moveaxis(w, -1, 0), per_channel)
    return np.atleast_1d(ptq.weight_scales(w, per_channel))


def _quantize(w: np.ndarray, scales: np.ndarray, kind: int) -> np.ndarray:
    if kind == tb.DEPTHWISE:
        return np.moveaxis(ptq.quantize_weights(np.moveaxis(w, -1, 0), scales), 0, -1)
    return ptq.quantize_weights(w, scales)


def images(x: np.ndarray, q: dict) -> np.ndarray:
    """Real images (n, 64) -> the CNN's int8 input (n, 8, 8, 1)."""
    scale, zp = q["input"]
    return ptq.quantize_activations(x, scale, int(zp)).reshape(-1, 8, 8, 1)
