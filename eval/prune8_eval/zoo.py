"""A zoo of test models with the structure of real TinyML models, written by this
project (tflite_build.Graph) from their published architectures, never downloaded.

The weights are random (He-normal before a ReLU, so activations neither vanish nor
explode through the layers; LeCun-normal before none; a classifier's last layer
scaled to logits of a trained one's spread). The quantization is realistic: every
model is first run in float (float_ops) on a calibration batch of random inputs of
its input range, and every activation's scale and zero point come from the range it
takes there, as the TensorFlow Lite converter does with a representative dataset.
Weights are int8 symmetric, per output channel for CONV_2D and DEPTHWISE_CONV_2D and
per tensor for FULLY_CONNECTED (the converter's defaults); biases int32 at input
scale * weight scale. Operators whose int8 kernel does not rescale share one
quantization: RESHAPE, the pools and PAD with their input, CONCATENATION with all of
its inputs (their ranges are merged, as the converter ties them).

Each model is a function of a seed returning .tflite bytes; the same seed gives the
same bytes. `sample_inputs` draws int8 inputs of a model's input range, from the
distribution its calibration used; `float_reference` gives a model's calibration
inputs and its float model's outputs on them (TFLM's int8 outputs follow them within
a few output steps: tests/files/test_zoo.py).
"""

from __future__ import annotations

import math

import numpy as np

from . import float_ops as F
from .tflite_build import NONE, RELU, RELU6, SAME, VALID, Graph

_WEIGHTED = ("conv2d", "depthwise", "fully_connected")

# name -> (input shape, the float range the input's int8 values cover)
INPUTS = {
    "hello_world": ((1, 1), 0.0, 2 * math.pi),
    "micro_speech": ((1, 1960), 0.0, 26.0),
    "person_detection": ((1, 96, 96, 1), -1.0, 1.0),
    "mnist_cnn": ((1, 28, 28, 1), 0.0, 1.0),
    "residual_cnn": ((1, 16, 16, 3), -1.0, 1.0),
    "channel_chain": ((1, 4, 4, 8), -1.0, 1.0),
}


def _quantization(lo: float, hi: float) -> tuple[float, int]:
    """(scale, zero point) of an int8 tensor covering [lo, hi], widened to hold 0 (TFLite
    represents a real 0 exactly: padding and ReLU need it)."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if hi - lo < 1e-6:
        hi = lo + 1e-6
    scale = float(np.float32((hi - lo) / 255))
    return scale, int(np.clip(round(-128 - lo / scale), -128, 127))


def _float_inputs(rng, name: str, n: int) -> np.ndarray:
    """Random float inputs of a model's input range: uniform noise, each sample with its
    own contrast and brightness, so that the samples differ as a whole and not only
    pixel by pixel (a model's output then varies from one to the next)."""
    shape, lo, hi = INPUTS[name]
    contrast = rng.uniform(0.1, 1.0, (n,) + (1,) * (len(shape) - 1))
    brightness = rng.uniform(0.0, 1.0 - contrast)
    u = contrast * rng.uniform(0.0, 1.0, (n,) + shape[1:]) + brightness
    return lo + (hi - lo) * u


def _quantize_inputs(x: np.ndarray, name: str) -> np.ndarray:
    shape, lo, hi = INPUTS[name]
    scale, zp = _quantization(lo, hi)
    q = np.clip(np.round(x / scale) + zp, -128, 127).astype(np.int8)
    return q.reshape((len(x),) + shape)


def sample_inputs(name: str, n: int, seed: int = 1) -> np.ndarray:
    """n int8 inputs for zoo model `name`, each of the model's input shape, drawn as its
    calibration batch is (with another seed by default)."""
    return _quantize_inputs(_float_inputs(np.random.default_rng(seed), name, n), name)


class _Net:
    """A model defined once, in float. Each call makes its operator's random weights,
    runs it on the calibration batch and records it; `write` then gives every tensor
    the quantization of the range it took and writes the graph. Handles are indices
    into `values`; tensors that must share a quantization are one group (union-find)."""

    def __init__(self, name: str, seed: int, calibration: int, description: str):
        self.rng = np.random.default_rng(seed)
        self.description = description
        self.values: list[np.ndarray] = []
        self.parent: list[int] = []
        self.fixed: dict[int, tuple] = {}    # handle -> its quantization, set by the model
        self.nodes: list[tuple] = []         # (kind, name, input handles, arguments, out)
        self.outputs: list[int] = []
        self.shape: dict[int, tuple] = {}    # handle -> the graph's shape (batch 1)
        shape, lo, hi = INPUTS[name]
        q = _quantization(lo, hi)
        # the calibration batch on the int8 grid: the float pass sees what TFLM sees
        self.calibration = _quantize_inputs(_float_inputs(self.rng, name, calibration), name)
        real = (self.calibration.astype(np.float64) - q[1]) * q[0]
        x = self._new(real.reshape((calibration,) + shape[1:]), shape, fixed=q)
        self.nodes.append(("input", "input", [], {"shape": shape}, x))
        self.input = x

    def _new(self, value, shape, tie: int | None = None, fixed: tuple | None = None) -> int:
        h = len(self.values)
        self.values.append(np.asarray(value, np.float64))
        self.parent.append(h)
        self.shape[h] = tuple(shape)
        if fixed is not None:
            self.fixed[h] = fixed
        if tie is not None:
            self._tie(h, tie)
        return h

    def _root(self, h: int) -> int:
        while self.parent[h] != h:
            h = self.parent[h]
        return h

    def _tie(self, a: int, b: int) -> None:
        ra, rb = self._root(a), self._root(b)
        if ra != rb:
            self.parent[ra] = rb

    def _record(self, kind, name, inputs, args, value, shape, tie=None, fixed=None) -> int:
        y = self._new(value, shape, tie, fixed)
        self.nodes.append((kind, name, list(inputs), args, y))
        return y

    def _weighted(self, kind: str, name: str, x: int, shape: tuple, channel_axis: int,
                  per_channel: bool, activation: int, run, logits: float | None,
                  **options) -> int:
        """A FULLY_CONNECTED, CONV_2D or DEPTHWISE_CONV_2D layer with random weights of
        `shape` and a small random bias: He-normal before a ReLU, LeCun-normal before
        none. logits (a layer without activation): shift its bias so that each output
        averages 0 on the calibration batch and scale it so that they have this
        standard deviation, as a trained classifier's logits, balanced between the
        classes (random weights on inputs that are all positive give logits in the
        tens, and a softmax stuck at 0 and 1). The weights are quantized int8
        symmetric; the float pass runs the values they stand for. run(w, b): the layer
        in float."""
        fan_in = math.prod(shape) // shape[channel_axis]   # depthwise: kh * kw
        gain = 1.0 if activation == NONE else 2.0
        w = self.rng.normal(0.0, math.sqrt(gain / fan_in), shape)
        b = self.rng.normal(0.0, 0.1, shape[channel_axis])
        if logits is not None:  # a linear layer: centred, then scaled
            y = run(w, b)
            b = b - y.reshape(-1, y.shape[-1]).mean(axis=0)
            spread = logits / float(run(w, b).std())
            w, b = w * spread, b * spread
        axes = tuple(i for i in range(len(shape)) if i != channel_axis)
        peak = np.abs(w).max(axis=axes) if per_channel else np.abs(w).max()
        ws = np.atleast_1d(np.asarray(peak / 127, np.float32))
        bshape = [1] * len(shape)
        bshape[channel_axis] = -1
        per = ws.reshape(bshape).astype(np.float64)
        wq = np.clip(np.round(w / per), -127, 127).astype(np.int8)
        y = run(wq * per, b)
        return self._record(kind, name, [x], dict(
            weights=wq, w_scale=ws if per_channel else ws[0], bias=b, activation=activation,
            **options), y, (1,) + y.shape[1:])

    # -- operators (the shapes are the graph's, batch 1) ---------------------------------

    def conv2d(self, x, name, out, k, stride=1, padding=SAME, activation=NONE,
               per_channel=True, logits=None):
        v = self.values[x]
        return self._weighted(
            "conv2d", name, x, (out, k, k, self.shape[x][3]), 0, per_channel, activation,
            lambda w, b: F.conv2d(v, w, b, stride, padding, activation), logits,
            stride=stride, padding=padding)

    def depthwise(self, x, name, k, stride=1, padding=SAME, activation=NONE,
                  depth_multiplier=1, per_channel=True):
        kh, kw = (k, k) if np.ndim(k) == 0 else k
        v = self.values[x]
        return self._weighted(
            "depthwise", name, x, (1, kh, kw, self.shape[x][3] * depth_multiplier), 3,
            per_channel, activation,
            lambda w, b: F.depthwise(v, w, b, stride, padding, activation, depth_multiplier),
            None, stride=stride, padding=padding, depth_multiplier=depth_multiplier)

    def fully_connected(self, x, name, out, activation=NONE, per_channel=False,
                        logits=None):
        v = self.values[x]
        return self._weighted(
            "fully_connected", name, x, (out, self.shape[x][-1]), 0, per_channel,
            activation, lambda w, b: F.fully_connected(v, w, b, activation), logits)

    def add(self, a, b, name, activation=NONE):
        y = F.activate(self.values[a] + self.values[b], activation)
        return self._record("add", name, [a, b], dict(activation=activation), y,
                            (1,) + y.shape[1:])

    def reshape(self, x, name, shape):
        y = self.values[x].reshape((-1,) + tuple(shape[1:]))
        return self._record("reshape", name, [x], dict(shape=list(shape)), y,
                            (1,) + y.shape[1:], tie=x)

    def average_pool(self, x, name, size, stride, padding=VALID):
        y = F.average_pool(self.values[x], size, stride, padding)
        return self._record("average_pool", name, [x], dict(size=size, stride=stride,
                            padding=padding), y, (1,) + y.shape[1:], tie=x)

    def max_pool(self, x, name, size, stride, padding=VALID):
        y = F.max_pool(self.values[x], size, stride, padding)
        return self._record("max_pool", name, [x], dict(size=size, stride=stride,
                            padding=padding), y, (1,) + y.shape[1:], tie=x)

    def mean(self, x, name, axes, keepdims):
        y = F.mean(self.values[x], axes, keepdims)
        return self._record("mean", name, [x], dict(axes=list(axes), keepdims=keepdims), y,
                            (1,) + y.shape[1:])

    def pad(self, x, name, paddings):
        y = F.pad(self.values[x], paddings)
        return self._record("pad", name, [x], dict(paddings=paddings), y,
                            (1,) + y.shape[1:], tie=x)

    def concatenation(self, inputs, name, axis):
        y = np.concatenate([self.values[t] for t in inputs], axis=axis)
        h = self._record("concatenation", name, inputs, dict(axis=axis), y,
                         (1,) + y.shape[1:])
        for t in inputs:
            self._tie(t, h)
        return h

    def softmax(self, x, name):
        y = F.softmax(self.values[x])
        return self._record("softmax", name, [x], {}, y, (1,) + y.shape[1:],
                            fixed=(1 / 256, -128))

    def output(self, y) -> None:
        self.outputs.append(y)

    # -- the file --------------------------------------------------------------------

    def _quantizations(self) -> dict[int, tuple]:
        """Each group's quantization: the one the model set, or the range of all its
        tensors' float values."""
        groups: dict[int, list[int]] = {}
        for h in range(len(self.values)):
            groups.setdefault(self._root(h), []).append(h)
        out = {}
        for members in groups.values():
            fixed = {self.fixed[h] for h in members if h in self.fixed}
            if len(fixed) > 1:
                raise ValueError(f"tensors {members} are tied but quantized as {fixed}")
            q = fixed.pop() if fixed else _quantization(
                min(self.values[h].min() for h in members),
                max(self.values[h].max() for h in members))
            out.update((h, q) for h in members)
        return out

    def write(self, legacy_opcodes: bool = False) -> bytes:
        q = self._quantizations()
        g = Graph(self.description)
        t: dict[int, int] = {}
        for kind, name, ins, args, y in self.nodes:
            args = dict(args)
            if kind == "input":
                t[y] = g.input(name, args["shape"], *q[y])
            elif kind in _WEIGHTED:
                in_scale = np.float32(g.quantization(t[ins[0]])[0])
                bias_scale = (in_scale * np.asarray(args["w_scale"], np.float32)).astype(
                    np.float64)
                args["bias"] = np.round(args["bias"] / bias_scale).astype(np.int32)
                t[y] = getattr(g, kind)(t[ins[0]], name, out_scale=q[y][0],
                                        out_zp=q[y][1], **args)
            elif kind == "add":
                t[y] = g.add(t[ins[0]], t[ins[1]], name, *q[y], **args)
            elif kind in ("mean",):
                t[y] = g.mean(t[ins[0]], name, args["axes"], args["keepdims"], *q[y])
            elif kind == "concatenation":
                t[y] = g.concatenation([t[i] for i in ins], name, args["axis"], *q[y])
            elif kind == "softmax":
                t[y] = g.softmax(t[ins[0]], name)
            else:  # the quantization follows the input: reshape, pools, pad
                t[y] = getattr(g, kind)(t[ins[0]], name, **args)
        for y in self.outputs:
            g.output(t[y])
        return g.finish(legacy_opcodes)


# -- the models ------------------------------------------------------------------------

# The spread (standard deviation) of a classifier's logits on the calibration batch
_LOGITS = 2.0

def hello_world(seed: int = 0) -> bytes:
    """TFLM's hello_world example (tensorflow/tflite-micro, examples/hello_world): a
    Keras model that learns sin(x) for x in [0, 2*pi], three FULLY_CONNECTED layers
    1 -> 16 ReLU -> 16 ReLU -> 1, 321 parameters, int8 with the input at scale
    2*pi/255, zero point -128. Here the weights are random rather than trained on the
    sine, so the output is some smooth function of x, not sin(x)."""
    return _hello_world(seed).write()


def _hello_world(seed: int) -> _Net:
    net = _Net("hello_world", seed, 256, "prune8 zoo: hello_world look-alike")
    x = net.fully_connected(net.input, "dense_1", 16, RELU)
    x = net.fully_connected(x, "dense_2", 16, RELU)
    net.output(net.fully_connected(x, "dense_3", 1))
    return net


def micro_speech(seed: int = 0) -> bytes:
    """TFLM's micro_speech example: the `tiny_conv` model of TensorFlow's speech_commands
    tutorial (models.py, create_tiny_conv_model) on 49 x 40 audio features, an int8
    input of 1960 values; its one 10x8 convolution of 8 filters, stride 2, on a single
    input channel is written by the converter as a DEPTHWISE_CONV_2D with depth
    multiplier 8. RESHAPE 1x49x40x1, DEPTHWISE 10x8 x8 stride 2 SAME ReLU (1x25x20x8),
    RESHAPE 1x4000, FULLY_CONNECTED 4 (silence, unknown, yes, no), SOFTMAX; 16,652
    parameters. Random weights instead of trained ones; the features are uniform noise
    in the input's range, not spectrograms."""
    return _micro_speech(seed).write()


def _micro_speech(seed: int) -> _Net:
    net = _Net("micro_speech", seed, 64, "prune8 zoo: micro_speech tiny_conv look-alike")
    x = net.reshape(net.input, "reshape_features", (1, 49, 40, 1))
    x = net.depthwise(x, "conv", (10, 8), stride=2, padding=SAME, activation=RELU,
                      depth_multiplier=8)
    x = net.reshape(x, "reshape_flat", (1, 4000))
    x = net.fully_connected(x, "fc", 4, logits=_LOGITS)
    net.output(net.softmax(x, "labels_softmax"))
    return net


# MobileNet v1's 13 depthwise-separable blocks: (depthwise stride, pointwise channels) at
# width multiplier 1, scaled by alpha
_MOBILENET_V1 = [(1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512), (1, 512),
                 (1, 512), (1, 512), (1, 512), (1, 512), (2, 1024), (1, 1024)]


def person_detection(seed: int = 0) -> bytes:
    """TFLM's person_detection example: MobileNet v1 with width multiplier 0.25 on a
    96x96 grayscale image, trained on the Visual Wake Words data set (person / no
    person). CONV 3x3 stride 2 -> 8 ReLU6; 13 blocks of DEPTHWISE 3x3 ReLU6 and CONV 1x1
    ReLU6 with 16, 32, 32, 64, 64, 128 x6, 256, 256 channels and MobileNet v1's strides
    (2 at blocks 2, 4, 6 and 12: 48 -> 3); AVERAGE_POOL 3x3 to 1x1; CONV 1x1 -> 2;
    RESHAPE 1x2; SOFTMAX. Weights per output channel, batch norm folded into them as
    the converter does. Random weights, not trained; no dropout (it is gone at
    inference anyway)."""
    return _person_detection(seed).write()


def _person_detection(seed: int) -> _Net:
    net = _Net("person_detection", seed, 16, "prune8 zoo: person_detection MobileNet v1 "
               "0.25 look-alike")
    x = net.conv2d(net.input, "conv1", 8, 3, stride=2, activation=RELU6)
    for i, (stride, channels) in enumerate(_MOBILENET_V1, 1):
        x = net.depthwise(x, f"conv_dw_{i}", 3, stride=stride, activation=RELU6)
        x = net.conv2d(x, f"conv_pw_{i}", channels // 4, 1, activation=RELU6)
    x = net.average_pool(x, "avg_pool", 3, 3)
    x = net.conv2d(x, "conv_preds", 2, 1, logits=_LOGITS)
    x = net.reshape(x, "reshape", (1, 2))
    net.output(net.softmax(x, "act_softmax"))
    return net


def mnist_cnn(seed: int = 0) -> bytes:
    """A small MNIST CNN of the kind emlearn's and TensorFlow's Keras examples train
    and convert for microcontrollers (no one model in particular; the sizes are this
    project's choice): 28x28x1, CONV 3x3 -> 8 ReLU, MAX_POOL 2 (14x14), CONV 3x3 -> 16
    ReLU, MAX_POOL 2 (7x7), RESHAPE 1x784, FULLY_CONNECTED 10, SOFTMAX; 9,098
    parameters. Random weights; the calibration images are noise, not digits."""
    return _mnist_cnn(seed).write()


def _mnist_cnn(seed: int) -> _Net:
    net = _Net("mnist_cnn", seed, 64, "prune8 zoo: MNIST CNN look-alike")
    x = net.conv2d(net.input, "conv1", 8, 3, activation=RELU)
    x = net.max_pool(x, "pool1", 2, 2)
    x = net.conv2d(x, "conv2", 16, 3, activation=RELU)
    x = net.max_pool(x, "pool2", 2, 2)
    x = net.reshape(x, "flatten", (1, 7 * 7 * 16))
    x = net.fully_connected(x, "dense", 10, logits=_LOGITS)
    net.output(net.softmax(x, "softmax"))
    return net


def residual_cnn(seed: int = 0) -> bytes:
    """A small graph, not a chain, for the graph tests: the residual block of ResNet-8
    (MLPerf Tiny's image classification model: an ADD of a convolution branch and a
    1x1 projection branch), a CONCATENATION of two paths along the channels (as in
    SqueezeNet's fire modules), the explicit PAD the converter writes for Keras's
    ZeroPadding2D before a VALID convolution, and the MEAN it writes for
    GlobalAveragePooling2D. 16x16x3 -> PAD 1 -> CONV 3x3 stride 2 VALID -> 16 ReLU
    (8x8); branch a: DEPTHWISE 3x3 ReLU, CONV 1x1 -> 16; branch b: CONV 1x1 -> 16; ADD
    ReLU; CONCATENATION with the stem (32 channels); CONV 1x1 -> 24 ReLU; MEAN over
    height and width; FULLY_CONNECTED 10; SOFTMAX. Random weights."""
    return _residual_cnn(seed).write()


def _residual_cnn(seed: int) -> _Net:
    net = _Net("residual_cnn", seed, 64, "prune8 zoo: residual CNN")
    x = net.pad(net.input, "pad", [[0, 0], [1, 1], [1, 1], [0, 0]])
    stem = net.conv2d(x, "stem", 16, 3, stride=2, padding=VALID, activation=RELU)
    a = net.depthwise(stem, "branch_a_dw", 3, activation=RELU)
    a = net.conv2d(a, "branch_a_pw", 16, 1)
    b = net.conv2d(stem, "branch_b_proj", 16, 1)
    x = net.add(a, b, "residual_add", activation=RELU)
    x = net.concatenation([x, stem], "concat", 3)
    x = net.conv2d(x, "mix", 24, 1, activation=RELU)
    x = net.mean(x, "global_pool", [1, 2], False)
    x = net.fully_connected(x, "logits", 10, logits=_LOGITS)
    net.output(net.softmax(x, "softmax"))
    return net


def channel_chain(blocks: int, width: int, separable: bool = False, prefix: str = "b",
                  seed: int = 0) -> bytes:
    """Not a model anyone trains: the shapes bench/heap_table.py measures a group prune
    at (docs/heap.md), with the number of stored layers, of group members, of tiles and
    the length of the layer names set apart. 4x4x8 -> CONV 1x1 -> width ReLU, then
    `blocks` blocks of (DEPTHWISE 3x3 ReLU when `separable`) CONV 1x1 -> width ReLU,
    then CONV 1x1 -> 2; each conv's output channels are a group with the layers that
    read them. Layer names are `prefix` and the layer's number."""
    net = _Net("channel_chain", seed, 16, "prune8 zoo: channel chain (heap measurements)")
    x = net.conv2d(net.input, f"{prefix}0", width, 1, activation=RELU)
    for i in range(1, blocks + 1):
        if separable:
            x = net.depthwise(x, f"{prefix}{i}dw", 3, activation=RELU)
        x = net.conv2d(x, f"{prefix}{i}", width, 1, activation=RELU)
    net.output(net.conv2d(x, f"{prefix}out", 2, 1, logits=_LOGITS))
    return net.write()


_LONG_PREFIX = "model/sequential/block_conv2d_relu_"  # a converter's kind of layer name


def group_law_models(max_units: int, only: tuple[str, ...] | None = None) -> dict[str, bytes]:
    """The models a channel-group prune's heap is measured on for a board of max_units
    (bench/heap_table.py; docs/heap.md): channel chains that set the stored layers, the
    group members, the tiles and the name lengths apart, and the zoo's two models with
    channel groups of the kind users prune (micro_speech's 4000-column FC,
    person_detection's 28 layers); `only`: just those (by name)."""
    u = max_units
    chains = [(2, u // 4, False, "b"), (12, u // 4, False, "b"), (2, u // 4, True, "b"),
              (12, u // 4, True, "b"), (6, u // 4, True, _LONG_PREFIX), (2, 2 * u, False, "b"),
              (6, u, True, "b"), (4, 2 * u, True, _LONG_PREFIX)]
    makers = {f"chain{i}": (lambda c=c: channel_chain(*c)) for i, c in enumerate(chains)}
    makers["micro_speech"] = micro_speech
    makers["person_detection"] = person_detection
    return {name: make() for name, make in makers.items() if only is None or name in only}


MODELS = {"hello_world": hello_world, "micro_speech": micro_speech,
          "person_detection": person_detection, "mnist_cnn": mnist_cnn,
          "residual_cnn": residual_cnn}
_NETS = {"hello_world": _hello_world, "micro_speech": _micro_speech,
         "person_detection": _person_detection, "mnist_cnn": _mnist_cnn,
         "residual_cnn": _residual_cnn}


def float_reference(name: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(int8 inputs, float outputs) of zoo model `name`: its calibration batch and what
    the float model it was quantized from gives on it (its first output), to hold
    TFLM's int8 outputs against."""
    net = _NETS[name](seed)
    return net.calibration, net.values[net.outputs[0]]
