"""A small float reference of the TFLite operators the graph writer has (tflite_build.
Graph), in NumPy: the calibration pass of the zoo (zoo.py) runs a model in float on a
batch of inputs and takes every activation's quantization from the range it sees, as
the TensorFlow Lite converter does with its representative dataset.

Tensors are float arrays NHWC with the batch first; windows follow TFLite's SAME and
VALID rules (SAME pads the extra row or column after, not before); AVERAGE_POOL with
SAME padding averages only the positions inside the input, as TFLite does.
"""

from __future__ import annotations

import numpy as np

from .tflite_build import NONE, RELU, RELU6, SAME, VALID


def activate(x: np.ndarray, activation: int) -> np.ndarray:
    if activation == RELU:
        return np.maximum(x, 0)
    if activation == RELU6:
        return np.clip(x, 0, 6)
    return x


def pad_amounts(size: int, k: int, stride: int, padding: int) -> tuple[int, int, int]:
    """(output size, padding before, padding after) of one spatial dimension."""
    if padding == VALID:
        return (size - k) // stride + 1, 0, 0
    out = -(-size // stride)
    total = max((out - 1) * stride + k - size, 0)
    return out, total // 2, total - total // 2


def _windows(x: np.ndarray, k: tuple, stride: int, padding: int, fill: float = 0.0):
    """The padded input and, for each window offset (i, j), the strided slice of the
    input each output position sees at that offset."""
    oh, top, bottom = pad_amounts(x.shape[1], k[0], stride, padding)
    ow, left, right = pad_amounts(x.shape[2], k[1], stride, padding)
    xp = np.pad(x, [(0, 0), (top, bottom), (left, right), (0, 0)], constant_values=fill)
    for i in range(k[0]):
        for j in range(k[1]):
            yield i, j, xp[:, i:i + stride * (oh - 1) + 1:stride,
                           j:j + stride * (ow - 1) + 1:stride, :]


def conv2d(x, w, b, stride=1, padding=SAME, activation=NONE):
    """CONV_2D: w [out, kh, kw, in], b [out]."""
    out = 0.0
    for i, j, patch in _windows(x, w.shape[1:3], stride, padding):
        out = out + patch @ w[:, i, j, :].T
    return activate(out + b, activation)


def depthwise(x, w, b, stride=1, padding=SAME, activation=NONE, depth_multiplier=1):
    """DEPTHWISE_CONV_2D: w [1, kh, kw, in * m]; output channel c filters input channel
    c // m."""
    xr = np.repeat(x, depth_multiplier, axis=3) if depth_multiplier > 1 else x
    out = 0.0
    for i, j, patch in _windows(xr, w.shape[1:3], stride, padding):
        out = out + patch * w[0, i, j, :]
    return activate(out + b, activation)


def fully_connected(x, w, b, activation=NONE):
    """FULLY_CONNECTED: w [out, in]; each batch item's values read as rows of `in`."""
    y = x.reshape(x.shape[0], -1, w.shape[1]) @ w.T + b
    return activate(y[:, 0] if y.shape[1] == 1 else y, activation)


def average_pool(x, size, stride, padding=VALID):
    k = (size, size) if np.ndim(size) == 0 else tuple(size)
    total, count = 0.0, 0.0
    ones = np.ones(x.shape[:3] + (1,))
    for (_, _, patch), (_, _, inside) in zip(_windows(x, k, stride, padding),
                                             _windows(ones, k, stride, padding)):
        total, count = total + patch, count + inside
    return total / count


def max_pool(x, size, stride, padding=VALID):
    k = (size, size) if np.ndim(size) == 0 else tuple(size)
    out = None
    for _, _, patch in _windows(x, k, stride, padding, fill=-np.inf):
        out = patch if out is None else np.maximum(out, patch)
    return out


def mean(x, axes, keepdims):
    return x.mean(axis=tuple(axes), keepdims=keepdims)


def pad(x, paddings):
    return np.pad(x, [tuple(p) for p in paddings])


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)
