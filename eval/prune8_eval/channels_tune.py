"""The channel study's control: the float model with the pruned channels held at zero,
fine-tuned a few epochs, quantized anew as the model's own script does, and shrunk with
recovery "none" (channels_eval).

The float model is the .tflite's own, dequantized: weights times their per-channel
scales, int32 biases times input scale times weight scale. So the study starts from the
file the other points prune (examples/digits_cnn.tflite, examples/digits_mobilenet.tflite)
and does not train the MobileNet again (minutes on two cores). A channel is held at zero
by zeroing, at every step, each row that makes it (its producer rows, and a depthwise
layer's channel that passes it on) and that row's bias: with a zero bias and a ReLU /
ReLU6 after it, the channel's float value is exactly 0, and quantized anew, exactly the
zero point, which the shrink folds away.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from prune8_host.files.graph import Group, read_graph
from prune8_host.files.tflite import TfliteModel
from prune8_host.files.tflite_shrink import keep_rows

from . import cnn, digits
from . import mobilenet as mn

EPOCHS = 3
CNN_LR = 0.02             # as cnn_eval fine-tunes the digits CNN
MOBILENET_LR = 0.01       # the peak of mobilenet.train's cosine schedule, a fifth of training's


@dataclass(frozen=True)
class FloatLayer:
    w: np.ndarray         # real weights, in the tensor's layout
    b: np.ndarray         # real biases


def dequantize(tm: TfliteModel) -> dict[str, FloatLayer]:
    """{layer: its real weights and biases} of every weighted layer of a .tflite."""
    g = read_graph(tm)
    out = {}
    for name, p in tm.placements.items():
        op = g.ops[p.operators[0][1]]
        w = g.const(op.inputs[1]).view(np.int8).reshape(p.shape).astype(np.float64)
        s = np.asarray(p.scales, np.float64)
        axis = 3 if p.op == "DEPTHWISE_CONV_2D" else 0
        shape = [1] * w.ndim
        shape[axis] = -1
        real = w * (s.reshape(shape) if s.size > 1 else s[0])
        s_in = float(g.tensors[op.inputs[0]].quantization.scale[0])
        b = g.int32s(op.inputs[2]).astype(np.float64) * s_in * s
        out[name] = FloatLayer(real, b)
    return out


def channel_masks(tm: TfliteModel, groups: list[Group],
                  keeps: dict[int, np.ndarray]) -> dict[str, FloatLayer]:
    """{layer: keep flags (1.0 / 0.0) over its weights and biases} holding every removed
    channel's producer rows and biases at zero (the rows tflite_shrink.keep_rows says go)."""
    masks = {}
    for name, rows in keep_rows(groups, keeps).items():
        p = tm.placements[name]
        gone = np.flatnonzero(~rows[:p.rows])
        fl = masks[name] = FloatLayer(np.ones(p.shape), np.ones(p.rows))
        if p.op == "DEPTHWISE_CONV_2D":
            fl.w[..., gone] = 0.0
        else:
            fl.w[gone] = 0.0
        fl.b[gone] = 0.0
    return masks


# -- each model's own float training and quantization -------------------------------------

def _cnn_field(layer: str) -> tuple[str, str]:
    """The digits CNN's fields of a .tflite layer: "conv1/weights" -> ("conv1", "b1")."""
    name = layer.split("/")[0]
    return name, f"b{cnn.NAMES.index(name) + 1}"


def tune_cnn(tm: TfliteModel, masks: dict[str, FloatLayer], data: digits.Digits,
             epochs: int = EPOCHS) -> bytes:
    real = dequantize(tm)
    fields, keep = {}, {}
    for layer, fl in real.items():
        w, b = _cnn_field(layer)
        fields[w], fields[b] = fl.w, fl.b
        if layer in masks:
            keep[w], keep[b] = masks[layer].w, masks[layer].b
    start = cnn.CNN(**{k: v * keep.get(k, 1.0) for k, v in fields.items()})
    tuned = cnn.train(start, data.x_train, data.y_train, epochs=epochs, lr=CNN_LR,
                      masks=keep)
    return cnn.quantize(tuned, data.x_calib)[0]


def tune_mobilenet(tm: TfliteModel, masks: dict[str, FloatLayer], data: digits.Digits,
                   epochs: int = EPOCHS) -> bytes:
    real = dequantize(tm)
    p, keep = {}, {}
    for layer, fl in real.items():
        name = layer.split("/")[0]
        p[f"{name}/w"], p[f"{name}/b"] = fl.w, fl.b
        if layer in masks:
            keep[f"{name}/w"], keep[f"{name}/b"] = masks[layer].w, masks[layer].b
    p = {k: v * keep.get(k, 1.0) for k, v in p.items()}
    tuned = mn.train(p, mn.upsample(data.x_train), data.y_train, epochs=epochs,
                     lr=MOBILENET_LR, masks=keep)
    return mn.quantize(tuned, mn.upsample(data.x_calib))[0]
