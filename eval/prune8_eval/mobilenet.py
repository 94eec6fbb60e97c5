"""A MobileNet-style CNN for the digits, trained in NumPy and quantized as the TensorFlow
Lite converter does (per-channel conv weights), written as a .tflite: the structure
TinyML users bring (a stem, depthwise-separable blocks, residual ADDs, a global average),
big enough that its convolutions' multiply-accumulates dominate TFLM's invoke time.

The 8x8 digits are upsampled to 16x16 by nearest neighbour (every pixel repeated 2x2),
the same at training and test time, so that the stride-2 block still leaves an 8x8 map.
Nearest upsampling commutes with quantization: the int8 16x16 images are the int8 8x8
ones repeated (`upsample`), at the digits' input convention, scale 1/255, zero point -128.

    stem   CONV_2D 3x3, 1 -> 16, SAME, ReLU6              16x16x1  -> 16x16x16
    b1     DEPTHWISE_CONV_2D 3x3 stride 2, SAME, ReLU6     16x16x16 -> 8x8x16
           CONV_2D 1x1, 16 -> 32, ReLU6                              -> 8x8x32
    b2     DEPTHWISE 3x3, ReLU6; CONV 1x1 32 -> 32, ReLU6; ADD b1's output
    b3     DEPTHWISE 3x3, ReLU6; CONV 1x1 32 -> 64, ReLU6             -> 8x8x64
    b4     DEPTHWISE 3x3, ReLU6; CONV 1x1 64 -> 64, ReLU6; ADD b3's output
    pool   MEAN over H and W                                          -> 64
    fc     FULLY_CONNECTED 64 -> 10                                   -> logits

Everything is float64 NumPy with fixed seeds, in one order of operations, so a run gives
the same bytes every time on a machine (and, as far as its BLAS sums in the same order,
on others). Parameters live in one dict, "NAME/w" in TFLite's layout (CONV [out, kh, kw,
in], DEPTHWISE [1, kh, kw, ch], FC [out, in]) and "NAME/b".
"""

from __future__ import annotations

import numpy as np

from . import float_ops as F
from . import ptq
from . import tflite_build as tb

__all__ = ["SEED", "SIDE", "STEM", "BLOCKS", "LAYERS", "init", "upsample", "images",
           "forward", "backward", "loss", "train", "accuracy", "ranges", "quantize", "macs",
           "weight_bytes"]

SEED = 20261206
SIDE = 16              # the upsampled image's side
STEM = 16              # the stem's output channels
# (name, stride, output channels); a stride-1 block with as many channels out as in
# adds its input to its output (the residual ADD)
BLOCKS = (("b1", 2, 32), ("b2", 1, 32), ("b3", 1, 64), ("b4", 1, 64))
CLASSES = 10
EPOCHS = 24
LR = 0.05              # the peak of the cosine schedule
MOMENTUM = 0.9
DECAY = 1e-4           # L2 on the weights, not the biases
BATCH = 32


def _plan() -> list[tuple[str, str, int, int, int]]:
    """Every weighted layer in order: (name, kind, stride, in channels, out channels)."""
    plan = [("stem", "conv3", 1, 1, STEM)]
    ch = STEM
    for name, stride, out in BLOCKS:
        plan += [(f"{name}_dw", "dw", stride, ch, ch), (f"{name}_pw", "pw", 1, ch, out)]
        ch = out
    return plan + [("fc", "fc", 1, ch, CLASSES)]


LAYERS = tuple(name for name, *_ in _plan())


def _residual(block: tuple) -> bool:
    return block[1] == 1 and _in_channels(block) == block[2]


def _in_channels(block: tuple) -> int:
    i = BLOCKS.index(block)
    return STEM if i == 0 else BLOCKS[i - 1][2]


def _shape(kind: str, cin: int, cout: int) -> tuple[int, ...]:
    """A layer's weight shape, in TFLite's layout."""
    return {"conv3": (cout, 3, 3, cin), "dw": (1, 3, 3, cin), "pw": (cout, 1, 1, cin),
            "fc": (cout, cin)}[kind]


def init(seed: int = SEED) -> dict[str, np.ndarray]:
    """He-initialised weights (fan-in of each output), zero biases, and a classifier of
    zeros: without batch normalisation, random logits' first gradients drove the ReLU6
    features to zero (a long plateau); from a uniform prediction it is much shorter."""
    rng = np.random.default_rng(seed)
    p = {}
    for name, kind, _, cin, cout in _plan():
        shape = _shape(kind, cin, cout)
        fan_in = int(np.prod(shape[1:])) if kind != "dw" else 9
        p[f"{name}/w"] = np.zeros(shape) if kind == "fc" else \
            rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)
        p[f"{name}/b"] = np.zeros(cout)
    return p


def upsample(x: np.ndarray) -> np.ndarray:
    """Images (n, 64), real or int8, -> (n, 16, 16, 1), each pixel repeated 2x2."""
    x = np.asarray(x).reshape(-1, 8, 8)
    return np.repeat(np.repeat(x, 2, axis=1), 2, axis=2)[..., None]


def images(x8: np.ndarray) -> np.ndarray:
    """int8 8x8 images (n, 64) at scale 1/255, zero point -128 (examples/digits_test.npz)
    -> the model's int8 input, (n, 16, 16, 1): examples/digits_wide_test.npz's images."""
    return upsample(np.asarray(x8, np.int8))


# -- the layers, forward and backward ----------------------------------------------

def _padded(x: np.ndarray, stride: int):
    """x padded for a 3x3 window with SAME padding (TFLite's rule: the odd row and column
    after), the output's side and the padding before."""
    out, lo, hi = F.pad_amounts(x.shape[1], 3, stride, tb.SAME)
    return np.pad(x, ((0, 0), (lo, hi), (lo, hi), (0, 0))), out, lo


def _taps(xp: np.ndarray, out: int, stride: int):
    """The 9 shifted views of a padded map: ((i, j), xp[:, i::stride, j::stride])."""
    for i in range(3):
        for j in range(3):
            yield i, j, xp[:, i:i + stride * out:stride, j:j + stride * out:stride, :]


def _conv3(x, w, b, stride):
    xp, out, _ = _padded(x, stride)
    z = np.zeros((len(x), out, out, w.shape[0])) + b
    for i, j, xs in _taps(xp, out, stride):
        z += xs @ w[:, i, j, :].T
    return z


def _conv3_back(x, w, g, stride):
    xp, out, lo = _padded(x, stride)
    gxp, gw = np.zeros_like(xp), np.zeros_like(w)
    for i, j, xs in _taps(xp, out, stride):
        gw[:, i, j, :] = np.tensordot(g, xs, axes=([0, 1, 2], [0, 1, 2]))
        gxp[:, i:i + stride * out:stride, j:j + stride * out:stride, :] += g @ w[:, i, j, :]
    n = x.shape[1]
    return gxp[:, lo:lo + n, lo:lo + n, :], gw, g.sum((0, 1, 2))


def _dw(x, w, b, stride):
    xp, out, _ = _padded(x, stride)
    z = np.zeros((len(x), out, out, x.shape[3])) + b
    for i, j, xs in _taps(xp, out, stride):
        z += xs * w[0, i, j]
    return z


def _dw_back(x, w, g, stride):
    xp, out, lo = _padded(x, stride)
    gxp, gw = np.zeros_like(xp), np.zeros_like(w)
    for i, j, xs in _taps(xp, out, stride):
        gw[0, i, j] = np.sum(g * xs, axis=(0, 1, 2))
        gxp[:, i:i + stride * out:stride, j:j + stride * out:stride, :] += g * w[0, i, j]
    n = x.shape[1]
    return gxp[:, lo:lo + n, lo:lo + n, :], gw, g.sum((0, 1, 2))


def _relu6(z):
    return np.clip(z, 0.0, 6.0)


def _relu6_back(z, g):
    return g * ((z > 0.0) & (z < 6.0))


def forward(p: dict, x: np.ndarray) -> tuple[np.ndarray, dict]:
    """Logits of images x (n, 16, 16, 1) in [0, 1], and every layer's input and
    pre-activation (what backward needs; "NAME/in", "NAME/z")."""
    c = {}

    def layer(name, kind, a, stride=1):
        c[f"{name}/in"] = a
        w, b = p[f"{name}/w"], p[f"{name}/b"]
        z = {"conv3": lambda: _conv3(a, w, b, stride), "dw": lambda: _dw(a, w, b, stride),
             "pw": lambda: a @ w[:, 0, 0, :].T + b, "fc": lambda: a @ w.T + b}[kind]()
        c[f"{name}/z"] = z
        return z if kind == "fc" else _relu6(z)

    a = layer("stem", "conv3", np.asarray(x, np.float64))
    for block in BLOCKS:
        name, stride, _ = block
        y = layer(f"{name}_pw", "pw", layer(f"{name}_dw", "dw", a, stride))
        a = a + y if _residual(block) else y
        c[f"{name}/out"] = a
    c["pool"] = a.mean(axis=(1, 2))
    return layer("fc", "fc", c["pool"]), c


def backward(p: dict, y: np.ndarray, logits: np.ndarray, c: dict) -> dict[str, np.ndarray]:
    """Gradients of the mean cross entropy (and nothing else: weight decay is train's)."""
    n = len(y)
    prob = np.exp(logits - logits.max(axis=1, keepdims=True))
    prob /= prob.sum(axis=1, keepdims=True)
    prob[np.arange(n), y] -= 1.0
    g = {}
    gz = prob / n
    g["fc/w"], g["fc/b"] = gz.T @ c["fc/in"], gz.sum(0)
    ga = gz @ p["fc/w"]
    side = c[f"{BLOCKS[-1][0]}/out"].shape[1]
    ga = np.broadcast_to(ga[:, None, None, :] / (side * side),
                         c[f"{BLOCKS[-1][0]}/out"].shape)
    for block in reversed(BLOCKS):
        name, stride, _ = block
        pw, dw = f"{name}_pw", f"{name}_dw"
        gz = _relu6_back(c[f"{pw}/z"], ga)
        w = p[f"{pw}/w"][:, 0, 0, :]
        g[f"{pw}/w"] = np.tensordot(gz, c[f"{pw}/in"], axes=([0, 1, 2], [0, 1, 2]))[
            :, None, None, :]
        g[f"{pw}/b"] = gz.sum((0, 1, 2))
        gz = _relu6_back(c[f"{dw}/z"], gz @ w)
        gx, g[f"{dw}/w"], g[f"{dw}/b"] = _dw_back(c[f"{dw}/in"], p[f"{dw}/w"], gz, stride)
        ga = gx + ga if _residual(block) else gx
    gz = _relu6_back(c["stem/z"], ga)
    _, g["stem/w"], g["stem/b"] = _conv3_back(c["stem/in"], p["stem/w"], gz, 1)
    return g


def loss(p: dict, x: np.ndarray, y: np.ndarray) -> float:
    """The mean cross entropy of images x against labels y."""
    z, _ = forward(p, x)
    z = z - z.max(axis=1, keepdims=True)
    return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(y)), y]))


def train(p: dict, x: np.ndarray, y: np.ndarray, epochs: int = EPOCHS, lr: float = LR,
          seed: int = SEED + 1, masks: dict[str, np.ndarray] | None = None
          ) -> dict[str, np.ndarray]:
    """Minibatch SGD with momentum and a cosine learning rate, on images x (n, 16, 16, 1);
    masks (keep flags per parameter, "NAME/w" or "NAME/b") hold pruned ones at 0 (and
    their momentum, so nothing builds up behind a mask)."""
    rng = np.random.default_rng(seed)
    p = {k: v.copy() for k, v in p.items()}
    v = {k: np.zeros_like(a) for k, a in p.items()}
    steps, step = epochs * -(-len(x) // BATCH), 0
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for i in range(0, len(x), BATCH):
            idx = order[i:i + BATCH]
            logits, c = forward(p, x[idx])
            g = backward(p, y[idx], logits, c)
            rate = lr * 0.5 * (1.0 + np.cos(np.pi * step / steps))
            for k in p:
                grad = g[k] + DECAY * p[k] if k.endswith("/w") else g[k]
                v[k] = MOMENTUM * v[k] - rate * grad
                p[k] += v[k]
                if masks and k in masks:
                    p[k] *= masks[k]
                    v[k] *= masks[k]
            step += 1
    return p


def accuracy(p: dict, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(forward(p, x)[0].argmax(1) == y))


# -- size -------------------------------------------------------------------------

def macs() -> dict[str, int]:
    """Multiply-accumulates of one inference, per weighted layer."""
    out, side = {}, SIDE
    for name, kind, stride, cin, cout in _plan():
        side = -(-side // stride)
        out[name] = {"conv3": side * side * 9 * cin * cout, "dw": side * side * 9 * cin,
                     "pw": side * side * cin * cout, "fc": cin * cout}[kind]
    return out


def weight_bytes() -> dict[str, int]:
    """Bytes of each layer's int8 weights and int32 biases."""
    return {name: int(np.prod(_shape(kind, cin, cout))) + 4 * cout
            for name, kind, _, cin, cout in _plan()}


# -- quantization ------------------------------------------------------------------

def ranges(p: dict, calib: np.ndarray) -> dict[str, tuple[np.float32, int]]:
    """(scale, zero point) of every int8 activation, from the float model's ranges on the
    calibration images calib (n, 16, 16, 1), as the converter's calibration does: the
    input (0..1), each layer's output, each ADD's and the pool's."""
    logits, c = forward(p, calib)
    q = {"input": ptq.activation_params(0.0, 1.0)}
    for name, kind, *_ in _plan()[:-1]:
        z = _relu6(c[f"{name}/z"])
        q[name] = ptq.activation_params(z.min(), z.max())
    for block in BLOCKS:
        if _residual(block):
            a = c[f"{block[0]}/out"]
            q[f"{block[0]}_add"] = ptq.activation_params(a.min(), a.max())
    q["pool"] = ptq.activation_params(c["pool"].min(), c["pool"].max())
    q["fc"] = ptq.activation_params(logits.min(), logits.max())
    return q


def _weights(w: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """int8 weights and their float32 scales: per output channel for the convolutions
    (the last dimension of a depthwise kernel), one per tensor for FULLY_CONNECTED, as the
    converter quantizes them."""
    if kind == "dw":
        scales = ptq.weight_scales(np.moveaxis(w, -1, 0), per_channel=True)
        return np.moveaxis(ptq.quantize_weights(np.moveaxis(w, -1, 0), scales), 0, -1), scales
    scales = np.atleast_1d(ptq.weight_scales(w, per_channel=kind != "fc"))
    return ptq.quantize_weights(w, scales), scales


def _bias(b: np.ndarray, in_scale, scales: np.ndarray) -> np.ndarray:
    """int32 biases at input scale x weight scale (products of the float32 values)."""
    return ptq.round_half_away(b / (float(in_scale) * scales.astype(np.float64))) \
        .astype(np.int32)


def quantize(p: dict, calib: np.ndarray,
             description: str = "prune8 digits MobileNet") -> tuple[bytes, dict]:
    """The .tflite of the float model p, activation ranges from the calibration images
    calib (n, 16, 16, 1) in [0, 1]; and the (scale, zero point) of every activation."""
    q = ranges(p, calib)
    g = tb.Graph(description=description)
    scale_in, zp_in = q["input"]
    x = g.input("input", (1, SIDE, SIDE, 1), float(scale_in), int(zp_in))
    in_scale = scale_in

    def layer(t, name, kind, stride=1):
        nonlocal in_scale
        wq, ws = _weights(p[f"{name}/w"], kind)
        bias = _bias(p[f"{name}/b"], in_scale, ws)
        out_scale, out_zp = q[name]
        args = dict(w_scale=ws, bias=bias, out_scale=float(out_scale), out_zp=int(out_zp))
        if kind == "fc":
            y = g.fully_connected(t, name, wq, activation=tb.NONE, **args)
        elif kind == "dw":
            y = g.depthwise(t, name, wq, stride=stride, padding=tb.SAME,
                            activation=tb.RELU6, **args)
        else:
            y = g.conv2d(t, name, wq, stride=stride, padding=tb.SAME, activation=tb.RELU6,
                         **args)
        in_scale = out_scale
        return y

    x = layer(x, "stem", "conv3")
    for block in BLOCKS:
        name, stride, _ = block
        y = layer(layer(x, f"{name}_dw", "dw", stride), f"{name}_pw", "pw")
        if _residual(block):
            out_scale, out_zp = q[f"{name}_add"]
            y = g.add(x, y, f"{name}_add", float(out_scale), int(out_zp), activation=tb.NONE)
            in_scale = out_scale
        x = y
    out_scale, out_zp = q["pool"]
    x = g.mean(x, "pool", (1, 2), False, float(out_scale), int(out_zp))
    in_scale = out_scale
    g.output(layer(x, "fc", "fc"))
    return g.finish(), q
