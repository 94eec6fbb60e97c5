"""TensorFlow Lite models (.tflite) in and out, with TensorFlow Lite Micro's own package.

Reading: every int8 weight tensor of a FULLY_CONNECTED, CONV_2D or DEPTHWISE_CONV_2D
operator becomes a layer, as a 2-D view with rows = output channels (docs/tflite.md):

    FULLY_CONNECTED    [out, in]              -> [out, in]
    CONV_2D            [out, kh, kw, in]      -> [out, kh*kw*in]
    DEPTHWISE_CONV_2D  [1, kh, kw, ch]        -> [ch, kh*kw]   (a transpose)

Names come from the tensor names, made valid layer names (dots, which model files use
for NAME.FIELD entries, and control characters become "_"; long names are cut) and
unique. Per-tensor and per-channel scales, zero points and the quantized dimension are
kept (Layer.quant: w_scale, and for FULLY_CONNECTED layers with int8 inputs the int8
inference parameters bias, mult, shift, in_zp, out_zp, relu, computed as TFLM computes
them, so the board's kernel and the twin's run them). A weight buffer shared by two
operators is one layer when both see the same weights (operator, shape, scales). Float
or int16 weights, int4 packed weights, sparse tensors, buffers outside the file and
files that are not TFLite flatbuffers are refused, naming the tensor.

A .tflite may come from anywhere (docs/tflite.md, "Files from anywhere"): only a regular
file no bigger than the largest board's filesystem is read (files.inputs); the whole
flatbuffer is read once under a budget in proportion to its size (files.flatbuffer);
then every index of the graph goes through one check (_index), every shape is
multiplied in Python integers and held to its buffer, a buffer of the >2 GB format must
lie after the flatbuffer, and every scale the inference chain uses must be finite and
positive, each where it is first used. What is wrong ends as one FileFormatError or
ModelError naming the file; TFLM, which follows what the file says without checking,
only ever gets files that passed.

Writing: `write_pruned` copies the input file and overwrites only the pruned weights'
bytes inside their buffers, so every other tensor, buffer, operator, option and
metadata entry, and the layout of the file, stay exactly as they were; the result is
read back before it is written.

Older models keep the operator code only in the deprecated 8-bit field: the code of an
operator is the larger of the two fields, as TFLM reads it.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from prune8.protocol import MAX_NAME
from prune8_host.boards import all_boards
from prune8_host.errors import FileFormatError, HostError, ModelError
from prune8_host.twin.dense import quantize_multiplier
from prune8_host.twin.layer import Layer

from .flatbuffer import DAMAGED, Walk
from .inputs import is_regular, read_input
from .output import write_output

IDENTIFIER = b"TFL3"
OPERATORS = {3: "CONV_2D", 4: "DEPTHWISE_CONV_2D", 9: "FULLY_CONNECTED"}
_TYPES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 7: "int16",
          9: "int8", 10: "float64", 17: "int4", 18: "bfloat16", 19: "int2", 20: "uint4"}
_INT8 = 9
_ACTIVATIONS = {0: 0, 1: 1}   # fused activation NONE, RELU: what the board's kernel runs


def schema():
    """TFLM's flatbuffer schema (imported on first use: it loads the interpreter too)."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated
    return schema_py_generated


def is_tflite(path) -> bool:
    """Whether a file is a TFLite flatbuffer (its identifier, bytes 4..8). What is not a
    regular file is not opened (a FIFO would block): it is one when its name says so, so
    that read() refuses it as a .tflite, saying what it is."""
    if not is_regular(path):
        return Path(path).suffix.lower() == ".tflite"
    try:
        with open(path, "rb") as f:
            return f.read(8)[4:8] == IDENTIFIER
    except OSError:
        return False


@dataclass
class Placement:
    """Where a layer lives in the file, and how its 2-D view maps to the tensor."""
    name: str
    op: str                   # FULLY_CONNECTED, CONV_2D or DEPTHWISE_CONV_2D
    subgraph: int
    tensor: int               # the weight tensor (first of those sharing the buffer)
    buffer: int
    shape: tuple              # the tensor's shape
    start: int                # file offset of the buffer's first byte
    scales: np.ndarray        # float32, one per output channel, or one
    operators: list = field(default_factory=list)   # (subgraph, operator index) using it
    tensor_name: str = ""     # the weight tensor's name in the file

    @property
    def rows(self) -> int:
        return self.shape[3] if self.op == "DEPTHWISE_CONV_2D" else self.shape[0]

    @property
    def n(self) -> int:
        return math.prod(self.shape)   # Python ints: no overflow (checked against the file)

    def view(self, raw: np.ndarray) -> np.ndarray:
        """The tensor's int8 values (flat, file order) as the layer's 2-D view."""
        w = raw.reshape(self.shape)
        if self.op == "DEPTHWISE_CONV_2D":
            return np.ascontiguousarray(w.reshape(-1, self.shape[3]).T)
        return w.reshape(self.rows, -1)

    def unview(self, w2: np.ndarray) -> np.ndarray:
        """The inverse of view: the tensor's values in file order."""
        if self.op == "DEPTHWISE_CONV_2D":
            return np.ascontiguousarray(w2.T).reshape(-1)
        return w2.reshape(-1)


@dataclass
class TfliteModel:
    path: str
    data: bytes
    placements: dict          # layer name -> Placement
    layers: dict              # layer name -> Layer


def _refuse(path, tensor_name: str, what: str) -> ModelError:
    return ModelError(f"{path}: tensor {tensor_name!r}: {what}")


def _index(path, i, n: int, where: str, what: str) -> int:
    """`i`, read from the file, as an index into a list of `n` (`what`s): the one check
    every index the reader follows goes through. TFLite writes -1 for an absent optional
    tensor; Python would read it as the last one."""
    i = int(i)
    if i == -1:
        raise ModelError(f"{path}: {where}: no {what} (index -1, absent), and it needs one")
    if not 0 <= i < n:
        raise ModelError(f"{path}: {where}: {what} {i} is out of range (there are "
                         f"{n if n else 'none'})")
    return i


def _layer_name(tensor_name: str | None, op: str, index: int, taken: set) -> str:
    """A valid, unused layer name for a weight tensor (module docstring)."""
    base = "".join("_" if c == "." or ord(c) < 32 or ord(c) == 127 else c
                   for c in (tensor_name or "")) or f"{op.lower()}_{index}"

    def fit(suffix: str = "") -> str:  # cut to MAX_NAME UTF-8 bytes, suffix included
        room = MAX_NAME - len(suffix.encode())
        return base.encode()[:room].decode(errors="ignore") + suffix

    name, k = fit(), 1
    while name in taken:
        k += 1
        name = fit(f"~{k}")
    taken.add(name)
    return name


@functools.lru_cache(maxsize=None)
def max_model_bytes() -> int:
    """The largest .tflite prune8 reads: the largest filesystem of the shipped board
    profiles (no board can hold a bigger model); a larger file is refused by its size,
    before it is read."""
    return max(b.fs_bytes for b in all_boards())


def _tensor_name(t) -> str:
    name = t.Name()
    return name.decode(errors="replace") if name is not None else ""


@dataclass
class _OpRef:
    """The tensors of one prunable operator, their indices checked."""
    input: int
    output: int
    bias: int                 # -1: none
    activation: int
    bias_data: np.ndarray | None = None   # int32, one per row (FC layers only)
    qin: tuple | None = None  # (scale, zero point) of an int8 input, per tensor
    qout: tuple | None = None


def read(path) -> TfliteModel:
    """Parse a .tflite file and find its prunable layers (module docstring). The file must
    be a regular file no bigger than max_model_bytes(), checked before it is read."""
    data = read_input(path, "a .tflite file", max_model_bytes(),
                      "any board's filesystem holds")
    return parse(data, Path(path))


def parse(data: bytes, path="model") -> TfliteModel:
    """A .tflite file's bytes as a TfliteModel; `path` names it in messages. Every value
    the reader takes from the file is checked where it is first used."""
    if len(data) < 8 or data[4:8] != IDENTIFIER:
        raise FileFormatError(f"{path}: not a TFLite flatbuffer (no 'TFL3' identifier)")
    try:
        placements, refs = _walk(data, path)
    except HostError:
        raise
    except DAMAGED as e:  # an offset or length that leads outside the file
        raise FileFormatError(f"{path}: damaged TFLite flatbuffer (an offset or a length "
                              f"leads outside the file: {e})") from None
    base = np.frombuffer(data, np.int8)
    layers = {}
    for name, p in placements.items():
        w = p.view(base[p.start:p.start + p.n])
        layers[name] = Layer(name, w.copy(), quant=_quant(path, p, refs))
    return TfliteModel(str(path), data, placements, layers)


def _walk(data: bytes, path) -> tuple[dict, dict]:
    """The placements of the prunable layers, and the checked tensors of their operators
    ({(subgraph, operator): _OpRef, with the quantization of each tensor})."""
    fb = schema()
    walk = Walk(data, path, fb)
    raw = fb.Model.GetRootAs(data, 0)
    walk.everything(raw)  # every offset leads inside the file; where the flatbuffer ends
    walk.renew()
    _check_graph(path, walk, raw)
    codes = []
    for i in range(raw.OperatorCodesLength()):
        c = walk.visit(raw.OperatorCodes(i))
        codes.append(max(c.BuiltinCode(), c.DeprecatedBuiltinCode()))
    n_buffers = raw.BuffersLength()
    placements: dict[str, Placement] = {}
    by_buffer: dict[int, Placement] = {}
    refs: dict[tuple, _OpRef] = {}
    taken: set[str] = set()
    for g in range(raw.SubgraphsLength()):
        sub = walk.visit(raw.Subgraphs(g))
        n_tensors = sub.TensorsLength()
        for k in range(sub.OperatorsLength()):
            op = walk.visit(sub.Operators(k))
            where = f"subgraph {g}, operator {k}"
            code = codes[_index(path, op.OpcodeIndex(), len(codes), where,
                                "operator code")]
            if code not in OPERATORS:
                continue
            kind = OPERATORS[code]
            where = f"{where} ({kind})"
            inputs = [int(i) for i in walk.array(op.InputsAsNumpy())[:3]]
            outputs = [int(i) for i in walk.array(op.OutputsAsNumpy())[:1]]
            if len(inputs) < 2 or not outputs:
                raise ModelError(f"{path}: {where}: {len(inputs)} input(s) and "
                                 f"{len(outputs)} output(s); it needs an input, the weights "
                                 f"and an output")
            x = _index(path, inputs[0], n_tensors, where, "input tensor")
            ti = _index(path, inputs[1], n_tensors, where, "weight tensor")
            bias = inputs[2] if len(inputs) > 2 else -1
            if bias != -1:
                _index(path, bias, n_tensors, where, "bias tensor")
            y = _index(path, outputs[0], n_tensors, where, "output tensor")
            for role, i in (("input", x), ("output", y)):
                _check_activation_quant(path, walk, walk.visit(sub.Tensors(i)), role)
            act = _fc_options(fb, walk, op, kind)
            refs[(g, k)] = _OpRef(x, y, bias, act[0])
            t = walk.visit(sub.Tensors(ti))
            tname = _tensor_name(t)
            shape, scales = _check_weights(path, walk, tname, t, kind, act[1])
            b = _index(path, t.Buffer(), n_buffers, f"tensor {tname!r}", "buffer")
            if b in by_buffer:
                _check_shared(path, by_buffer[b], tname, kind, shape, scales)
                by_buffer[b].operators.append((g, k))
                continue
            start, _ = _buffer_bytes(path, walk, raw, b, tname, math.prod(shape), data)
            p = Placement(_layer_name(tname, kind, len(placements), taken), kind, g, ti,
                          b, shape, start, scales, [(g, k)], tname)
            placements[p.name] = by_buffer[b] = p
    if not placements:
        raise ModelError(f"{path}: no prunable layer (int8 weights of FULLY_CONNECTED, "
                         f"CONV_2D or DEPTHWISE_CONV_2D)")
    _check_no_overlap(path, placements)
    _check_constants(path, walk, raw)
    for p in placements.values():  # the bias of a single-operator FC layer
        ref = refs[p.operators[0]]
        if p.op == "FULLY_CONNECTED" and ref.bias != -1:
            sub = raw.Subgraphs(p.subgraph)
            bt = sub.Tensors(ref.bias)
            ref.bias_data = _bias(path, walk, raw, bt, p.rows, n_buffers, data)
    for p in placements.values():
        for g, k in p.operators:
            sub = raw.Subgraphs(g)
            ref = refs[(g, k)]
            ref.qin = _tensor_qparams(sub.Tensors(ref.input))
            ref.qout = _tensor_qparams(sub.Tensors(ref.output))
    return placements, refs


def _fc_options(fb, walk: Walk, op, kind: str) -> tuple[int, int]:
    """(fused activation, weights format) of a FULLY_CONNECTED operator; (0, 0) else."""
    if kind != "FULLY_CONNECTED" or \
            op.BuiltinOptionsType() != fb.BuiltinOptions.FullyConnectedOptions:
        return 0, 0
    table = op.BuiltinOptions()
    if table is None:
        return 0, 0
    opts = fb.FullyConnectedOptions()
    opts.Init(table.Bytes, table.Pos)
    walk.visit(opts)
    return opts.FusedActivationFunction(), opts.WeightsFormat()


def _check_activation_quant(path, walk: Walk, t, role: str) -> None:
    """An int8 input or output of a prunable operator: every scale finite and positive,
    every zero point an int8 (TFLM divides by these scales; NaN or 0 wrecks the
    multipliers)."""
    if t.Type() != _INT8:
        return
    q = t.Quantization()
    if q is None:
        return
    walk.visit(q)
    scales = walk.array(q.ScaleAsNumpy())
    zps = walk.array(q.ZeroPointAsNumpy())
    name = _tensor_name(t)
    if not (np.isfinite(scales) & (scales > 0)).all():
        raise _refuse(path, name, f"the operator's {role} has a scale that is not finite "
                                  f"and positive")
    if ((zps < -128) | (zps > 127)).any():
        raise _refuse(path, name, f"the operator's {role} has a zero point outside the "
                                  f"int8 range -128..127")


def _check_shared(path, first: Placement, tname: str, kind: str, shape: tuple,
                  scales: np.ndarray) -> None:
    """A weight buffer shared by two operators is one layer only when both see the same
    weights: same operator kind, shape and scales."""
    if kind != first.op or shape != first.shape or not np.array_equal(scales, first.scales):
        raise _refuse(path, tname, f"its buffer {first.buffer} is also the weights of tensor "
                                   f"{first.tensor_name!r} ({first.op} {list(first.shape)}), "
                                   f"seen here as {kind} {list(shape)}"
                                   + ("" if shape != first.shape or kind != first.op else
                                      " with other scales")
                                   + ": pruning one would change the other")


def _buffer_bytes(path, walk: Walk, raw, buffer: int, tensor_name: str, nbytes: int,
                  data: bytes) -> tuple[int, np.ndarray]:
    """(file offset, uint8 view) of a buffer's bytes, inline or at an offset."""
    b = walk.visit(raw.Buffers(buffer))
    if b.Offset() > 1:  # a large model: the data follows the flatbuffer
        start, size = int(b.Offset()), int(b.Size())
    elif not b.DataIsNone() and b.DataLength():
        view = walk.array(b.DataAsNumpy())
        start, size = walk.offset(view), view.size
    else:
        raise _refuse(path, tensor_name, "its buffer holds no data (a weight that is computed "
                                         "at run time cannot be pruned)")
    if start + size > len(data):
        raise _refuse(path, tensor_name, f"its buffer's bytes {start:,}..{start + size:,} "
                                         f"run past the end of the file ({len(data):,} bytes)")
    if size != nbytes:
        raise _refuse(path, tensor_name, f"its buffer has {size:,} bytes for {nbytes:,} "
                                         f"weights")
    return start, walk.base[start:start + size]


def _check_no_overlap(path, placements: dict) -> None:
    """No two layers' bytes overlap: writing one's pruned weights changes nothing else."""
    spans = sorted((p.start, p.start + p.n, p) for p in placements.values())
    for (_, end, a), (start, _, b) in zip(spans, spans[1:]):
        if start < end:
            raise _refuse(path, b.tensor_name, f"its bytes overlap those of tensor "
                                               f"{a.tensor_name!r}: pruning one would change "
                                               f"the other")


# TFLM counts a tensor's bytes in an int32: a larger shape wraps, and the interpreter
# writes past the arena it allocated for it.
_MAX_TENSOR_BYTES = 2 ** 31 - 1

# Bytes per element of the tensor types of a fixed size (TFLite's TensorType).
_ITEMSIZE = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 6: 1, 7: 2, 8: 8, 9: 1, 10: 8, 11: 16, 12: 8,
             15: 4, 16: 2, 18: 2, 21: 1, 22: 1}


def _check_graph(path, walk: Walk, raw) -> None:
    """Every index of the graph in range, and every buffer's bytes where the file has
    them: TFLM follows these without checking, on the host too (prune8 eval), so a file
    that passes the reader does not crash it. A buffer of the >2 GB format (an offset and
    a size) lies after the flatbuffer and inside the file."""
    n_codes, n_buffers, size = raw.OperatorCodesLength(), raw.BuffersLength(), len(walk.data)
    for b in range(n_buffers):
        buf = raw.Buffers(b)
        start = buf.Offset()
        if start > 1 and not walk.end <= start <= start + buf.Size() <= size:
            raise ModelError(f"{path}: buffer {b} is at bytes {start:,}..{start + buf.Size():,}"
                             f": its data must follow the flatbuffer's own tables (which end "
                             f"at byte {walk.end:,}) inside the file ({size:,} bytes)")
    for g in range(raw.SubgraphsLength()):
        sub = raw.Subgraphs(g)
        n = sub.TensorsLength()
        where = f"subgraph {g}"
        if g == 0 and not (sub.InputsLength() and sub.OutputsLength()):
            raise ModelError(f"{path}: the main subgraph has {sub.InputsLength()} input and "
                             f"{sub.OutputsLength()} output tensors: a model runs from at "
                             f"least one input to at least one output")
        for role, ids in (("input", sub.InputsAsNumpy()), ("output", sub.OutputsAsNumpy())):
            for i in walk.array(ids).tolist():
                _index(path, i, n, where, f"{role} tensor")
        for k in range(sub.OperatorsLength()):
            op = walk.visit(sub.Operators(k))
            at = f"{where}, operator {k}"
            _index(path, op.OpcodeIndex(), n_codes, at, "operator code")
            for i in walk.array(op.InputsAsNumpy()).tolist():
                if i != -1:  # an optional input left out
                    _index(path, i, n, at, "input tensor")
            for role, ids in (("output", op.OutputsAsNumpy()),
                              ("intermediate", op.IntermediatesAsNumpy())):
                for i in walk.array(ids).tolist():
                    _index(path, i, n, at, f"{role} tensor")
        for j in range(n):
            t = walk.visit(sub.Tensors(j))
            at = f"{where}, tensor {j} ({_tensor_name(t)!r})"
            _index(path, t.Buffer(), n_buffers, at, "buffer")
            shape = walk.array(t.ShapeAsNumpy()).tolist()
            if min(shape, default=1) < 0:
                raise ModelError(f"{path}: {at}: shape {shape} has a negative dimension")
            nbytes = math.prod(shape) * _ITEMSIZE.get(t.Type(), 1)
            if nbytes > _MAX_TENSOR_BYTES:  # TFLM would count it in an int32, wrapped
                raise ModelError(f"{path}: {at}: shape {shape} makes {nbytes:,} bytes, more "
                                 f"than a tensor may have ({_MAX_TENSOR_BYTES:,})")


def _check_constants(path, walk: Walk, raw) -> None:
    """Every constant tensor of a type of fixed size has as many bytes as its shape says
    (after the weights' own checks, which say better what is wrong with a weight)."""
    for g in range(raw.SubgraphsLength()):
        sub = raw.Subgraphs(g)
        for j in range(sub.TensorsLength()):
            t = walk.visit(sub.Tensors(j))
            at = f"subgraph {g}, tensor {j} ({_tensor_name(t)!r})"
            buf = raw.Buffers(t.Buffer())
            item = _ITEMSIZE.get(t.Type())
            if item and buf.Offset() <= 1 and buf.DataLength():
                shape = walk.array(t.ShapeAsNumpy()).tolist()
                if math.prod(shape) * item != buf.DataLength():
                    raise ModelError(f"{path}: {at}: shape {shape} of "
                                     f"{_TYPES.get(t.Type(), t.Type())} needs "
                                     f"{math.prod(shape) * item:,} bytes; its buffer "
                                     f"has {buf.DataLength():,}")


def _check_weights(path, walk: Walk, tname: str, t, kind: str,
                   weights_format: int) -> tuple[tuple, np.ndarray]:
    """The weight tensor's shape (Python ints) and scales (float32), checked."""
    ttype = t.Type()
    if ttype != _INT8:
        kind_of = _TYPES.get(ttype, f"type {ttype}")
        hint = {"float32": ": quantize the model to int8 (full-integer post-training "
                           "quantization) first",
                "int4": ": int4 packed weights are not supported, only int8"}.get(kind_of, "")
        raise _refuse(path, tname, f"weights are {kind_of}, not int8{hint}")
    if t.Sparsity() is not None:
        raise _refuse(path, tname, "a sparse (already compressed) tensor: prune8 prunes "
                                   "dense int8 weights")
    if t.ExternalBuffer():
        raise _refuse(path, tname, "its data is in an external buffer, outside the file")
    q = t.Quantization()
    scales = np.zeros(0, np.float32) if q is None else \
        walk.array(walk.visit(q).ScaleAsNumpy()).astype(np.float32)
    if scales.size == 0:
        raise _refuse(path, tname, "int8 weights without quantization scales")
    ndim = {"FULLY_CONNECTED": 2, "CONV_2D": 4, "DEPTHWISE_CONV_2D": 4}[kind]
    dims = walk.array(t.ShapeAsNumpy())
    shape = tuple(int(d) for d in dims[:ndim + 1])
    if len(shape) != ndim or min(shape) < 1 or (kind == "DEPTHWISE_CONV_2D" and shape[0] != 1):
        raise _refuse(path, tname, f"a {kind} weight of shape {list(shape)}"
                      + (" (a dimension below 1)" if shape and min(shape) < 1 else ""))
    if weights_format:
        raise _refuse(path, tname, "shuffled FULLY_CONNECTED weights (only the default "
                                   "format)")
    channels = shape[3] if kind == "DEPTHWISE_CONV_2D" else shape[0]
    qdim = 3 if kind == "DEPTHWISE_CONV_2D" else 0
    if scales.size != 1 and (scales.size != channels or q.QuantizedDimension() != qdim):
        raise _refuse(path, tname, f"{scales.size} scales over dimension "
                                   f"{q.QuantizedDimension()}: need one, or one per output "
                                   f"channel ({channels}, dimension {qdim})")
    if walk.array(q.ZeroPointAsNumpy()).any():
        raise _refuse(path, tname, "weights with a non-zero zero point (int8 weights are "
                                   "symmetric in TFLite)")
    if not (np.isfinite(scales) & (scales > 0)).all():
        raise _refuse(path, tname, "a weight scale that is not finite and positive")
    return shape, scales.copy()


def _bias(path, walk: Walk, raw, bt, rows: int, n_buffers: int, data: bytes):
    """An FC layer's int32 bias, one per row; None when the tensor is not that (then the
    layer gets no inference parameters, as before)."""
    walk.visit(bt)
    name = _tensor_name(bt)
    b = _index(path, bt.Buffer(), n_buffers, f"tensor {name!r}", "buffer")
    buf = walk.visit(raw.Buffers(b))
    if bt.Type() != 2 or buf.Offset() > 1 or buf.DataIsNone() or buf.DataLength() != 4 * rows:
        return None
    raw_bytes = walk.array(buf.DataAsNumpy())
    return np.frombuffer(raw_bytes.tobytes(), "<i4").astype(np.int32)


def _tensor_qparams(t):
    """(scale, zero point) of an int8 tensor quantized per tensor; None otherwise. Both
    were checked by _check_activation_quant."""
    q = t.Quantization()
    if t.Type() != _INT8 or q is None or q.ScaleLength() != 1:
        return None
    zp = q.ZeroPointAsNumpy()
    return float(np.float32(q.Scale(0))), int(zp[0]) if not isinstance(zp, int) and zp.size \
        else 0


def _quant(path, p: Placement, refs: dict) -> dict:
    """Layer.quant: the weight scales, and the int8 inference parameters of a
    FULLY_CONNECTED layer with int8 input and output, as TFLM computes them."""
    quant = {"w_scale": p.scales.copy() if p.scales.size > 1 else np.float32(p.scales[0])}
    if p.op != "FULLY_CONNECTED" or len(p.operators) != 1:
        return quant
    ref = refs[p.operators[0]]
    inp, out, act = ref.qin, ref.qout, ref.activation
    if inp is None or out is None or act not in _ACTIVATIONS:
        return quant
    (in_scale, in_zp), (out_scale, out_zp) = inp, out
    rows = p.rows
    bias = np.zeros(rows, np.int32)
    if ref.bias != -1:
        if ref.bias_data is None:
            return quant  # not an int32 bias per row: no board inference
        bias = ref.bias_data
    try:
        if p.scales.size > 1:  # per channel: double(in) * double(w_c) / double(out)
            pairs = [quantize_multiplier(float(in_scale) * float(s) / float(out_scale))
                     for s in p.scales]
            mult = np.array([m for m, _ in pairs], np.int32)
            shift = np.array([s for _, s in pairs], np.int32)
        else:  # per tensor: the product of the two float32 scales, in float32, then double
            real = float(np.float32(np.float32(in_scale) * p.scales[0])) / float(out_scale)
            m, s = quantize_multiplier(real)
            mult, shift = np.int32(m), np.int32(s)
    except ValueError as e:  # a multiplier the int8 kernel cannot take (2**30 or more)
        raise _refuse(path, p.tensor_name, f"the scales of its input, weights and output "
                                           f"give no int8 inference: {e}") from None
    quant.update(bias=bias, mult=mult, shift=shift, relu=np.int8(_ACTIVATIONS[act]),
                 in_zp=np.int32(in_zp), out_zp=np.int32(out_zp),
                 in_scale=np.float32(in_scale), out_scale=np.float32(out_scale))
    return quant


def pruned_bytes(tm: TfliteModel, weights: dict[str, np.ndarray]) -> bytes:
    """The file with the given layers' weights (2-D views) written into their buffers;
    every other byte as it was. The result is read back before it is returned: the same
    layers, in the same places, with these weights (a file whose weights were not where
    the reader saw them is refused rather than written)."""
    out = bytearray(tm.data)
    for name, w2 in weights.items():
        p = tm.placements[name]
        flat = p.unview(np.asarray(w2, np.int8))
        if flat.size != p.n:
            raise ModelError(f"{tm.path}: layer {name!r} has {p.n} weights; got {flat.size}")
        out[p.start:p.start + p.n] = flat.tobytes()
    out = bytes(out)
    try:
        back = parse(out, tm.path)
    except HostError as e:
        raise ModelError(f"{tm.path}: the file with the pruned weights does not read back "
                         f"({e})") from None
    same = [(n, p.op, p.shape, p.start) for n, p in back.placements.items()] == \
        [(n, p.op, p.shape, p.start) for n, p in tm.placements.items()]
    if not same or any(not np.array_equal(back.layers[n].weights, np.asarray(w, np.int8)
                                          .reshape(back.layers[n].weights.shape))
                       for n, w in weights.items()):
        raise ModelError(f"{tm.path}: writing the pruned weights would change more than "
                         f"those weights: the file's layers overlap its own structure")
    return out


def write_pruned(tm: TfliteModel, weights: dict[str, np.ndarray], out) -> int:
    """Write the model with these layers' weights replaced (pruned_bytes) to `out`."""
    return write_output(out, pruned_bytes(tm, weights))
