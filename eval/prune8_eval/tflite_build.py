"""Writing .tflite models from scratch, with TFLM's schema object API: the project makes
its own test models (examples/make_tflite.py, the CNN of make eval), never takes them
from elsewhere.

`build` writes a chain of int8 operators on one input: FULLY_CONNECTED, CONV_2D and
DEPTHWISE_CONV_2D (weights int8 symmetric, per tensor or per output channel; biases
int32 at input_scale * weight_scale; activations int8 with a zero point, per tensor),
as the TensorFlow Lite converter writes a fully integer-quantized model. `Graph`
writes any graph of those and of ADD, RESHAPE, AVERAGE_POOL_2D, MAX_POOL_2D, MEAN,
PAD, CONCATENATION, SOFTMAX and QUANTIZE, computing every output's shape (the zoo's
models, zoo.py). The bytes depend only on the arguments.
"""

from __future__ import annotations

import functools
import math
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


# -- graphs ------------------------------------------------------------------------

SAME, VALID = 0, 1
RELU6 = 3
ADD, AVERAGE_POOL, CONCATENATION, MAX_POOL = 0, 1, 2, 17
RESHAPE, SOFTMAX, PAD, MEAN, QUANTIZE = 22, 25, 34, 40, 114
_ACTIVATION_NAMES = {NONE: "NONE", RELU: "RELU", RELU6: "RELU6"}


def _same_scale(a: float, b: float) -> bool:
    return np.float32(a) == np.float32(b)


def _window_out(size: int, k: int, stride: int, padding: int) -> int:
    """One spatial dimension of a window operator's output, by TFLite's rules: SAME
    covers every input position (ceil(size / stride)), VALID only whole windows."""
    if padding == SAME:
        return -(-size // stride)
    return (size - k) // stride + 1


def _atomic(method):
    """A Graph method that adds nothing when it fails: what it added is taken back."""
    @functools.wraps(method)
    def call(self, *args, **kwargs):
        sizes = [len(lst) for lst in self._lists()]
        try:
            return method(self, *args, **kwargs)
        except BaseException:
            for lst, n in zip(self._lists(), sizes):
                del lst[n:]
            raise
    return call


class Graph:
    """A .tflite graph of int8 operators, written with TFLM's schema object API, as the
    TensorFlow Lite converter writes a fully integer-quantized model: activations int8
    per tensor (scale, zero point); weights int8 symmetric per tensor or per output
    channel (dimension 0 for FULLY_CONNECTED and CONV_2D, 3 for DEPTHWISE_CONV_2D);
    biases int32 at input scale * weight scale; shapes NHWC. Every method adds one
    operator and returns its output tensor's index; the builder computes the output
    shape. Operators whose int8 kernel does not rescale (RESHAPE, the pools, PAD) give
    their output the input's quantization. A refused call (ValueError) adds nothing.
    The bytes depend only on the calls."""

    def __init__(self, description: str = "prune8 test model"):
        self.description = description
        self._tensors: list = []       # TensorT, in index order
        self._buffers: list = []       # bytes of each buffer after buffer 0
        self._shapes: list[tuple] = []
        self._quant: list = []         # (float32 scale, zero point) of int8 activations
        self._operators: list = []     # (code, inputs, outputs, options type, options)
        self._inputs: list[int] = []
        self._outputs: list[int] = []

    def _lists(self) -> tuple:
        return (self._tensors, self._buffers, self._shapes, self._quant, self._operators,
                self._inputs, self._outputs)

    # -- what the graph holds ------------------------------------------------------

    def shape(self, t: int) -> tuple:
        """The shape of tensor `t`."""
        return self._shapes[self._check(t)]

    def quantization(self, t: int) -> tuple:
        """(scale, zero point) of activation tensor `t`."""
        return self._quant[self._check(t)]

    def _check(self, t) -> int:
        if not isinstance(t, (int, np.integer)) or not 0 <= t < len(self._tensors) \
                or self._quant[t] is None:
            raise ValueError(f"tensor {t!r} is not an activation of this graph (there are "
                             f"{len(self._tensors)} tensors)")
        return int(t)

    # -- tensors ---------------------------------------------------------------------

    def _tensor(self, name: str, shape, ttype: int, quant=None, data: bytes | None = None,
                act: tuple | None = None) -> int:
        fb = schema()
        t = fb.TensorT()
        t.name, t.shape, t.type, t.quantization = name, [int(d) for d in shape], ttype, quant
        if data is None:
            t.buffer = 0
        else:
            self._buffers.append(bytes(data))
            t.buffer = len(self._buffers)
        self._tensors.append(t)
        self._shapes.append(tuple(int(d) for d in shape))
        self._quant.append(act)
        return len(self._tensors) - 1

    def _activation(self, name: str, shape, scale: float, zp: int) -> int:
        scale, zp = float(np.float32(scale)), int(zp)
        if not (np.isfinite(scale) and scale > 0) or not -128 <= zp <= 127:
            raise ValueError(f"{name}: scale {scale} and zero point {zp}: the scale must be "
                             f"finite and positive, the zero point in -128..127")
        return self._tensor(name, shape, _INT8, _quant(scale, zp), act=(scale, zp))

    def _int32(self, name: str, values) -> int:
        v = np.asarray(values, "<i4")
        return self._tensor(name, v.shape, _INT32, None, v.tobytes())

    def _weights(self, name: str, kind: int, x: int, weights, w_scale, bias) -> tuple:
        """The weight and bias tensors of an FC/CONV/DEPTHWISE operator on input `x`."""
        w = np.asarray(weights)
        if w.dtype != np.int8:
            raise ValueError(f"{name}: weights are {w.dtype}, need int8")
        channels = w.shape[3] if kind == DEPTHWISE else w.shape[0]
        ws = np.atleast_1d(np.asarray(w_scale, np.float32))
        if ws.ndim != 1 or ws.size not in (1, channels) or \
                not (np.isfinite(ws) & (ws > 0)).all():
            raise ValueError(f"{name}: {ws.size} weight scales: need one, or one per output "
                             f"channel ({channels}), each finite and positive")
        b = None if bias is None else np.asarray(bias)
        if b is not None and (b.shape != (channels,) or not np.issubdtype(b.dtype, np.integer)
                              or np.abs(b.astype(np.int64)).max(initial=0) >= 2 ** 31):
            raise ValueError(f"{name}: bias of shape {list(b.shape)} ({b.dtype}): need "
                             f"{channels} int32 values, one per output channel")
        qdim = 3 if kind == DEPTHWISE else 0
        wt = self._tensor(f"{name}/weights", w.shape, _INT8, _quant(ws, [0] * ws.size, qdim),
                          w.tobytes())
        if b is None:
            return wt, -1
        bias_scale = (np.float32(self._quant[x][0]) * ws).astype(np.float32)
        bt = self._tensor(f"{name}/bias", (channels,), _INT32,
                          _quant(bias_scale, [0] * bias_scale.size),
                          b.astype("<i4").tobytes())
        return wt, bt

    def _op(self, code: int, inputs: list, outputs: list, options=None, options_type=0) -> int:
        self._operators.append((code, list(inputs), list(outputs), options_type, options))
        return outputs[0]

    @staticmethod
    def _activation_code(name: str, activation: int) -> int:
        if activation not in _ACTIVATION_NAMES:
            raise ValueError(f"{name}: fused activation {activation!r}: allowed are NONE (0), "
                             f"RELU (1) and RELU6 (3)")
        return activation

    # -- operators ---------------------------------------------------------------------

    @_atomic
    def input(self, name: str, shape, scale: float, zp: int) -> int:
        """A graph input: an int8 tensor of `shape`."""
        t = self._activation(name, shape, scale, zp)
        self._inputs.append(t)
        return t

    @_atomic
    def output(self, t: int) -> None:
        """Make tensor `t` a graph output (in the order of the calls)."""
        self._outputs.append(self._check(t))

    @_atomic
    def fully_connected(self, x: int, name: str, weights, w_scale, bias, out_scale: float,
                        out_zp: int, activation: int = NONE) -> int:
        """FULLY_CONNECTED, weights [out, in]: the input is read as rows of `in` values
        (TFLite flattens every dimension but the last); output [rows, out]."""
        shape = self.shape(x)
        w = np.asarray(weights)
        if w.ndim != 2 or w.shape[1] < 1 or math.prod(shape) % w.shape[1]:
            raise ValueError(f"{name}: FULLY_CONNECTED weights of shape {list(w.shape)} on an "
                             f"input of shape {list(shape)}: need [out, in] with `in` "
                             f"dividing the input's {math.prod(shape)} values")
        act = self._activation_code(name, activation)
        fb = schema()
        opts = fb.FullyConnectedOptionsT()
        opts.fusedActivationFunction = act
        wt, bt = self._weights(name, FC, x, w, w_scale, bias)
        y = self._activation(f"{name}/output", (math.prod(shape) // w.shape[1], w.shape[0]),
                             out_scale, out_zp)
        return self._op(FC, [x, wt, bt], [y], opts, fb.BuiltinOptions.FullyConnectedOptions)

    def _spatial(self, name: str, x: int, k: tuple, stride: int, padding: int) -> tuple:
        shape = self.shape(x)
        if len(shape) != 4:
            raise ValueError(f"{name}: input of shape {list(shape)}: need 4 dimensions NHWC")
        if padding not in (SAME, VALID) or int(stride) < 1:
            raise ValueError(f"{name}: padding {padding!r}, stride {stride!r}: padding is "
                             f"SAME (0) or VALID (1), the stride a positive integer")
        oh, ow = (_window_out(shape[i + 1], k[i], int(stride), padding) for i in (0, 1))
        if oh < 1 or ow < 1:
            raise ValueError(f"{name}: a {k[0]}x{k[1]} window does not fit an input of shape "
                             f"{list(shape)} with VALID padding")
        return shape, oh, ow

    @staticmethod
    def _window_options(opts, stride: int, padding: int, activation: int):
        opts.padding, opts.strideW, opts.strideH = padding, int(stride), int(stride)
        opts.fusedActivationFunction = activation
        return opts

    @_atomic
    def conv2d(self, x: int, name: str, weights, w_scale, bias, out_scale: float,
               out_zp: int, stride: int = 1, padding: int = SAME,
               activation: int = NONE) -> int:
        """CONV_2D, weights [out, kh, kw, in]."""
        w = np.asarray(weights)
        if w.ndim != 4 or w.shape[3] != self.shape(x)[-1]:
            raise ValueError(f"{name}: CONV_2D weights of shape {list(w.shape)} on an input "
                             f"of shape {list(self.shape(x))}: need [out, kh, kw, "
                             f"{self.shape(x)[-1]}]")
        shape, oh, ow = self._spatial(name, x, w.shape[1:3], stride, padding)
        act = self._activation_code(name, activation)
        fb = schema()
        opts = self._window_options(fb.Conv2DOptionsT(), stride, padding, act)
        opts.dilationWFactor = opts.dilationHFactor = 1
        wt, bt = self._weights(name, CONV, x, w, w_scale, bias)
        y = self._activation(f"{name}/output", (shape[0], oh, ow, w.shape[0]), out_scale,
                             out_zp)
        return self._op(CONV, [x, wt, bt], [y], opts, fb.BuiltinOptions.Conv2DOptions)

    @_atomic
    def depthwise(self, x: int, name: str, weights, w_scale, bias, out_scale: float,
                  out_zp: int, stride: int = 1, padding: int = SAME, activation: int = NONE,
                  depth_multiplier: int = 1) -> int:
        """DEPTHWISE_CONV_2D, weights [1, kh, kw, in * depth_multiplier]: output channel
        c filters input channel c // depth_multiplier."""
        w = np.asarray(weights)
        channels = self.shape(x)[-1] * int(depth_multiplier)
        if w.ndim != 4 or w.shape[0] != 1 or w.shape[3] != channels or depth_multiplier < 1:
            raise ValueError(f"{name}: DEPTHWISE_CONV_2D weights of shape {list(w.shape)} "
                             f"with depth multiplier {depth_multiplier} on an input of shape "
                             f"{list(self.shape(x))}: need [1, kh, kw, {channels}]")
        shape, oh, ow = self._spatial(name, x, w.shape[1:3], stride, padding)
        act = self._activation_code(name, activation)
        fb = schema()
        opts = self._window_options(fb.DepthwiseConv2DOptionsT(), stride, padding, act)
        opts.dilationWFactor = opts.dilationHFactor = 1
        opts.depthMultiplier = int(depth_multiplier)
        wt, bt = self._weights(name, DEPTHWISE, x, w, w_scale, bias)
        y = self._activation(f"{name}/output", (shape[0], oh, ow, channels), out_scale, out_zp)
        return self._op(DEPTHWISE, [x, wt, bt], [y], opts,
                        fb.BuiltinOptions.DepthwiseConv2DOptions)

    @_atomic
    def add(self, a: int, b: int, name: str, out_scale: float, out_zp: int,
            activation: int = NONE) -> int:
        """ADD of two int8 tensors (broadcast as NumPy does), each with its own scale."""
        try:
            shape = np.broadcast_shapes(self.shape(a), self.shape(b))
        except ValueError:
            raise ValueError(f"{name}: ADD of shapes {list(self.shape(a))} and "
                             f"{list(self.shape(b))}, which do not broadcast") from None
        act = self._activation_code(name, activation)
        fb = schema()
        opts = fb.AddOptionsT()
        opts.fusedActivationFunction = act
        y = self._activation(f"{name}/output", shape, out_scale, out_zp)
        return self._op(ADD, [a, b], [y], opts, fb.BuiltinOptions.AddOptions)

    @_atomic
    def reshape(self, x: int, name: str, shape) -> int:
        """RESHAPE to `shape` (one dimension may be -1), written as the converter does:
        a constant int32 second input and ReshapeOptions.newShape."""
        new = [int(d) for d in shape]
        n = math.prod(self.shape(x))
        known = math.prod(d for d in new if d != -1)
        if new.count(-1) > 1 or any(d < 1 and d != -1 for d in new) or \
                (n % known if -1 in new else n != known):
            raise ValueError(f"{name}: cannot reshape {list(self.shape(x))} ({n} values) to "
                             f"{new}")
        out = [n // known if d == -1 else d for d in new]
        fb = schema()
        opts = fb.ReshapeOptionsT()
        opts.newShape = new
        st = self._int32(f"{name}/shape", new)
        y = self._activation(f"{name}/output", out, *self.quantization(x))
        return self._op(RESHAPE, [x, st], [y], opts, fb.BuiltinOptions.ReshapeOptions)

    def _pool(self, code: int, x: int, name: str, size, stride, padding: int) -> int:
        k = (int(size), int(size)) if np.ndim(size) == 0 else tuple(int(s) for s in size)
        s = int(stride) if np.ndim(stride) == 0 else int(stride[0])
        if np.ndim(stride) and len(set(int(v) for v in stride)) != 1:
            raise ValueError(f"{name}: strides {list(stride)}: the builder writes one stride "
                             f"for both dimensions")
        if len(k) != 2 or min(k) < 1:
            raise ValueError(f"{name}: pool size {size!r}: need one positive size or two")
        shape, oh, ow = self._spatial(name, x, k, s, padding)
        fb = schema()
        opts = self._window_options(fb.Pool2DOptionsT(), s, padding, NONE)
        opts.filterHeight, opts.filterWidth = k
        y = self._activation(f"{name}/output", (shape[0], oh, ow, shape[3]),
                             *self.quantization(x))
        return self._op(code, [x], [y], opts, fb.BuiltinOptions.Pool2DOptions)

    @_atomic
    def average_pool(self, x: int, name: str, size, stride, padding: int = VALID) -> int:
        """AVERAGE_POOL_2D over size x size windows (size may be (h, w))."""
        return self._pool(AVERAGE_POOL, x, name, size, stride, padding)

    @_atomic
    def max_pool(self, x: int, name: str, size, stride, padding: int = VALID) -> int:
        """MAX_POOL_2D over size x size windows (size may be (h, w))."""
        return self._pool(MAX_POOL, x, name, size, stride, padding)

    @_atomic
    def mean(self, x: int, name: str, axes, keepdims: bool, out_scale: float,
             out_zp: int) -> int:
        """MEAN over `axes` (a constant int32 input), rescaled to the output's scale."""
        shape = self.shape(x)
        ax = sorted({int(a) % len(shape) for a in np.atleast_1d(axes)}) if len(shape) else []
        if not ax or any(not -len(shape) <= int(a) < len(shape) for a in np.atleast_1d(axes)):
            raise ValueError(f"{name}: axes {list(np.atleast_1d(axes))} of an input of shape "
                             f"{list(shape)}: need at least one, each in "
                             f"{-len(shape)}..{len(shape) - 1}")
        out = [1 if i in ax else d for i, d in enumerate(shape)] if keepdims else \
            [d for i, d in enumerate(shape) if i not in ax]
        fb = schema()
        opts = fb.ReducerOptionsT()
        opts.keepDims = bool(keepdims)
        at = self._int32(f"{name}/axes", ax)
        y = self._activation(f"{name}/output", out, out_scale, out_zp)
        return self._op(MEAN, [x, at], [y], opts, fb.BuiltinOptions.ReducerOptions)

    @_atomic
    def pad(self, x: int, name: str, paddings) -> int:
        """PAD with the zero point (a real 0): paddings [[before, after]] per dimension,
        a constant int32 input."""
        p = np.asarray(paddings)
        shape = self.shape(x)
        if p.shape != (len(shape), 2) or not np.issubdtype(p.dtype, np.integer) or \
                (p < 0).any():
            raise ValueError(f"{name}: paddings of shape {list(p.shape)}: need "
                             f"[{len(shape)}, 2] non-negative integers, [before, after] per "
                             f"dimension")
        out = [d + int(a) + int(b) for d, (a, b) in zip(shape, p)]
        fb = schema()
        pt = self._int32(f"{name}/paddings", p)
        y = self._activation(f"{name}/output", out, *self.quantization(x))
        return self._op(PAD, [x, pt], [y], fb.PadOptionsT(), fb.BuiltinOptions.PadOptions)

    @_atomic
    def concatenation(self, inputs, name: str, axis: int, out_scale: float,
                      out_zp: int) -> int:
        """CONCATENATION along `axis`. Every input must be quantized as the output: TFLite's
        int8 kernel copies bytes without rescaling (the converter ties their ranges)."""
        ts = list(inputs)
        shapes = [self.shape(t) for t in ts]
        rank = len(shapes[0]) if shapes else 0
        if not ts or not -rank <= int(axis) < rank:
            raise ValueError(f"{name}: CONCATENATION of {len(ts)} tensors along axis {axis}: "
                             f"need at least one, and an axis in {-rank}..{rank - 1}")
        ax = int(axis) % rank
        if any(len(s) != rank or s[:ax] + s[ax + 1:] != shapes[0][:ax] + shapes[0][ax + 1:]
               for s in shapes):
            raise ValueError(f"{name}: CONCATENATION of shapes {[list(s) for s in shapes]} "
                             f"along axis {ax}: all other dimensions must be equal")
        if any(not _same_scale(self.quantization(t)[0], out_scale)
               or self.quantization(t)[1] != int(out_zp) for t in ts):
            raise ValueError(f"{name}: CONCATENATION inputs quantized as "
                             f"{[self.quantization(t) for t in ts]}: every input must have "
                             f"the output's scale {out_scale} and zero point {out_zp}")
        out = list(shapes[0])
        out[ax] = sum(s[ax] for s in shapes)
        fb = schema()
        opts = fb.ConcatenationOptionsT()
        opts.axis = ax
        y = self._activation(f"{name}/output", out, out_scale, out_zp)
        return self._op(CONCATENATION, ts, [y], opts, fb.BuiltinOptions.ConcatenationOptions)

    @_atomic
    def softmax(self, x: int, name: str) -> int:
        """SOFTMAX (beta 1) over the last dimension; int8 output at scale 1/256, zero point
        -128, the only one TFLM's int8 kernel takes."""
        fb = schema()
        opts = fb.SoftmaxOptionsT()
        opts.beta = 1.0
        y = self._activation(f"{name}/output", self.shape(x), 1 / 256, -128)
        return self._op(SOFTMAX, [x], [y], opts, fb.BuiltinOptions.SoftmaxOptions)

    @_atomic
    def quantize(self, x: int, name: str, out_scale: float, out_zp: int) -> int:
        """QUANTIZE int8 -> int8: the same values at another scale and zero point."""
        fb = schema()
        y = self._activation(f"{name}/output", self.shape(x), out_scale, out_zp)
        return self._op(QUANTIZE, [x], [y], fb.QuantizeOptionsT(),
                        fb.BuiltinOptions.QuantizeOptions)

    # -- the file ----------------------------------------------------------------------

    def finish(self, legacy_opcodes: bool = False) -> bytes:
        """The .tflite bytes. legacy_opcodes: operator codes only in the deprecated 8-bit
        field, as files from before TF 2.4 have them (codes up to 127 only)."""
        if not self._inputs or not self._outputs:
            raise ValueError(f"a graph needs at least one input and one output (it has "
                             f"{len(self._inputs)} and {len(self._outputs)})")
        codes = list(dict.fromkeys(op[0] for op in self._operators))
        if legacy_opcodes and max(codes, default=0) > 127:
            raise ValueError(f"operator code {max(codes)} does not fit the deprecated 8-bit "
                             f"field: legacy_opcodes is for codes up to 127")
        fb = schema()
        model = fb.ModelT()
        model.version = 3
        model.description = self.description
        model.buffers = [fb.BufferT()]  # buffer 0: the empty buffer, by convention
        for data in self._buffers:
            b = fb.BufferT()
            b.data = list(data)
            model.buffers.append(b)
        sub = fb.SubGraphT()
        sub.name = "main"
        sub.tensors = self._tensors
        sub.inputs, sub.outputs = list(self._inputs), list(self._outputs)
        sub.operators = []
        for code, inputs, outputs, options_type, options in self._operators:
            o = fb.OperatorT()
            o.opcodeIndex = codes.index(code)
            o.inputs, o.outputs = inputs, outputs
            o.builtinOptionsType, o.builtinOptions = options_type, options
            sub.operators.append(o)
        model.subgraphs = [sub]
        model.operatorCodes = []
        for code in codes:
            c = fb.OperatorCodeT()
            c.deprecatedBuiltinCode = min(code, 127)
            c.builtinCode = 0 if legacy_opcodes else code
            c.version = 1
            model.operatorCodes.append(c)
        b = flatbuffers.Builder(1024)
        b.Finish(model.Pack(b), file_identifier=IDENTIFIER)
        return bytes(b.Output())
