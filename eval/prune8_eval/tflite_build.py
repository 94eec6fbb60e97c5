"""Writing .tflite models from scratch, with TFLM's schema object API: the project makes
its own test models (examples/make_tflite.py, the CNN of make eval), never takes them
from elsewhere.

A model is a chain of int8 operators on one input: FULLY_CONNECTED, CONV_2D and
DEPTHWISE_CONV_2D (weights int8 symmetric, per tensor or per output channel; biases
int32 at input_scale * weight_scale; activations int8 with a zero point, per tensor),
as the TensorFlow Lite converter writes a fully integer-quantized model. The bytes
depend only on the arguments.
"""

from __future__ import annotations

from dataclasses import dataclass

import flatbuffers
import numpy as np

from prune8_host.files.tflite import IDENTIFIER, schema

FC, CONV, DEPTHWISE = 9, 3, 4
NONE, RELU = 0, 1
_INT8, _INT32 = 9, 2


@dataclass
class Op:
    """One operator of the chain. weights: FC [out, in], CONV [out, kh, kw, in],
    DEPTHWISE [1, kh, kw, ch]; w_scale: one float32, or one per output channel."""
    kind: int
    name: str
    weights: np.ndarray
    w_scale: np.ndarray
    bias: np.ndarray           # int32, one per output channel
    out_scale: float
    out_zp: int
    out_shape: tuple           # the output tensor's shape
    activation: int = NONE
    stride: int = 1
    padding: int = 1           # VALID (SAME is 0)


def _quant(scales, zps, dim: int = 0):
    fb = schema()
    q = fb.QuantizationParametersT()
    q.scale = [float(np.float32(s)) for s in np.atleast_1d(scales)]
    q.zeroPoint = [int(z) for z in np.atleast_1d(zps)]
    q.quantizedDimension = dim
    return q


def build(input_shape: tuple, in_scale: float, in_zp: int, ops: list[Op],
          legacy_opcodes: bool = False, description: str = "prune8 test model") -> bytes:
    """The .tflite bytes of the chain `ops` on an int8 input. legacy_opcodes: operator
    codes only in the deprecated 8-bit field, as files from before TF 2.4 have them."""
    fb = schema()
    model = fb.ModelT()
    model.version = 3
    model.description = description
    model.buffers = [fb.BufferT()]  # buffer 0: the empty buffer, by convention
    sub = fb.SubGraphT()
    sub.tensors, sub.operators = [], []
    codes: list[int] = []

    def tensor(name, shape, ttype, quant=None, data: bytes | None = None) -> int:
        t = fb.TensorT()
        t.name, t.shape, t.type, t.quantization = name, list(shape), ttype, quant
        if data is None:
            t.buffer = 0
        else:
            b = fb.BufferT()
            b.data = list(data)
            model.buffers.append(b)
            t.buffer = len(model.buffers) - 1
        sub.tensors.append(t)
        return len(sub.tensors) - 1

    x = tensor("input", input_shape, _INT8, _quant(in_scale, in_zp))
    sub.inputs = [x]
    scale = np.float32(in_scale)
    for op in ops:
        w = np.asarray(op.weights, np.int8)
        ws = np.atleast_1d(np.asarray(op.w_scale, np.float32))
        qdim = 3 if op.kind == DEPTHWISE else 0
        wt = tensor(f"{op.name}/weights", w.shape, _INT8, _quant(ws, [0] * ws.size, qdim),
                    w.tobytes())
        bias_scale = (np.float32(scale) * ws).astype(np.float32)
        bt = tensor(f"{op.name}/bias", (len(op.bias),), _INT32,
                    _quant(bias_scale, [0] * bias_scale.size),
                    np.asarray(op.bias, "<i4").tobytes())
        y = tensor(f"{op.name}/output", op.out_shape, _INT8, _quant(op.out_scale, op.out_zp))
        o = fb.OperatorT()
        if op.kind not in codes:
            codes.append(op.kind)
        o.opcodeIndex = codes.index(op.kind)
        o.inputs, o.outputs = [x, wt, bt], [y]
        if op.kind == FC:
            o.builtinOptionsType = fb.BuiltinOptions.FullyConnectedOptions
            opts = fb.FullyConnectedOptionsT()
        elif op.kind == CONV:
            o.builtinOptionsType = fb.BuiltinOptions.Conv2DOptions
            opts = fb.Conv2DOptionsT()
        else:
            o.builtinOptionsType = fb.BuiltinOptions.DepthwiseConv2DOptions
            opts = fb.DepthwiseConv2DOptionsT()
            opts.depthMultiplier = 1
        if op.kind != FC:
            opts.padding, opts.strideW, opts.strideH = op.padding, op.stride, op.stride
            opts.dilationWFactor = opts.dilationHFactor = 1
        opts.fusedActivationFunction = op.activation
        o.builtinOptions = opts
        sub.operators.append(o)
        x, scale = y, np.float32(op.out_scale)
    sub.outputs = [x]
    sub.name = "main"
    model.subgraphs = [sub]
    model.operatorCodes = []
    for code in codes:
        c = fb.OperatorCodeT()
        c.deprecatedBuiltinCode = code
        c.builtinCode = 0 if legacy_opcodes else code
        c.version = 1
        model.operatorCodes.append(c)
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=IDENTIFIER)
    return bytes(b.Output())


def fc_chain(model: dict, legacy_opcodes: bool = False,
             description: str = "prune8 test model") -> bytes:
    """A .tflite of a chain of quantized FULLY_CONNECTED layers (prune8 Layers with their
    int8 inference parameters and scales: in_scale, w_scale, out_scale)."""
    layers = list(model.values())
    first = layers[0].quant
    ops = [Op(FC, layer.name, layer.weights, np.asarray(layer.quant["w_scale"], np.float32),
              np.asarray(layer.quant["bias"], np.int32), float(layer.quant["out_scale"]),
              int(layer.quant["out_zp"]), (1, layer.weights.shape[0]),
              RELU if int(layer.quant["relu"]) else NONE) for layer in layers]
    return build((1, layers[0].weights.shape[1]), float(first["in_scale"]),
                 int(first["in_zp"]), ops, legacy_opcodes, description)
