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
operators is one layer. Float or int16 weights, int4 packed weights, sparse tensors,
buffers outside the file and files that are not TFLite flatbuffers are refused, naming
the tensor.

Writing: `write_pruned` copies the input file and overwrites only the pruned weights'
bytes inside their buffers, so every other tensor, buffer, operator, option and
metadata entry, and the layout of the file, stay exactly as they were.

Older models keep the operator code only in the deprecated 8-bit field: the code of an
operator is the larger of the two fields, as TFLM reads it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from prune8.protocol import MAX_NAME
from prune8_host.errors import FileFormatError, ModelError
from prune8_host.twin.dense import quantize_multiplier
from prune8_host.twin.layer import Layer

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
    """Whether a file is a TFLite flatbuffer (its identifier, bytes 4..8)."""
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

    @property
    def rows(self) -> int:
        return self.shape[3] if self.op == "DEPTHWISE_CONV_2D" else self.shape[0]

    @property
    def n(self) -> int:
        return int(np.prod(self.shape))

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
    model: object             # schema ModelT
    placements: dict          # layer name -> Placement
    layers: dict              # layer name -> Layer


def _refuse(path, tensor_name: str, what: str) -> ModelError:
    return ModelError(f"{path}: tensor {tensor_name!r}: {what}")


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


def _buffer_bytes(path, data: bytes, raw_model, buffer: int, tensor_name: str,
                  nbytes: int) -> tuple[int, np.ndarray]:
    """(file offset, uint8 view) of a buffer's bytes, inline or at an offset."""
    b = raw_model.Buffers(buffer)
    base = np.frombuffer(data, np.uint8)
    if b.Offset() > 1:  # a large model: the data follows the flatbuffer
        start, size = int(b.Offset()), int(b.Size())
    elif not b.DataIsNone() and b.DataLength():
        view = b.DataAsNumpy()
        start = view.ctypes.data - base.ctypes.data
        size = b.DataLength()
    else:
        raise _refuse(path, tensor_name, "its buffer holds no data (a weight that is computed "
                                         "at run time cannot be pruned)")
    if size != nbytes or start < 0 or start + size > len(data):
        raise _refuse(path, tensor_name, f"its buffer has {size} bytes for {nbytes} weights")
    return start, base[start:start + size]


def read(path) -> TfliteModel:
    """Parse a .tflite file and find its prunable layers (module docstring)."""
    path = Path(path)
    if path.is_dir():
        raise FileFormatError(f"{path} is a directory, not a .tflite file")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise FileFormatError(f"{path}: cannot read it ({e.strerror})") from None
    return parse(data, path)


def parse(data: bytes, path="model") -> TfliteModel:
    """A .tflite file's bytes as a TfliteModel; `path` names it in messages."""
    if data[4:8] != IDENTIFIER:
        raise FileFormatError(f"{path}: not a TFLite flatbuffer (no 'TFL3' identifier)")
    fb = schema()
    try:
        raw = fb.Model.GetRootAs(data, 0)
        model = fb.ModelT.InitFromObj(raw)
    except Exception as e:  # a damaged flatbuffer fails anywhere inside the parser
        raise FileFormatError(f"{path}: damaged TFLite flatbuffer ({type(e).__name__}: "
                              f"{e})") from None
    placements: dict[str, Placement] = {}
    by_buffer: dict[int, Placement] = {}
    taken: set[str] = set()
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes or []]
    for g, sub in enumerate(model.subgraphs or []):
        for k, op in enumerate(sub.operators or []):
            code = codes[op.opcodeIndex] if op.opcodeIndex < len(codes) else -1
            if code not in OPERATORS or op.inputs is None or len(op.inputs) < 2:
                continue
            ti = op.inputs[1]
            t = sub.tensors[ti]
            tname = t.name.decode(errors="replace") if isinstance(t.name, bytes) else t.name
            kind = OPERATORS[code]
            if t.buffer in by_buffer:  # shared by another operator: one layer
                by_buffer[t.buffer].operators.append((g, k))
                continue
            _check_weights(path, tname, t, kind, op)
            shape = tuple(int(d) for d in t.shape)
            start, _ = _buffer_bytes(path, data, raw, t.buffer, tname, int(np.prod(shape)))
            q = t.quantization
            scales = np.asarray(q.scale, np.float32)
            p = Placement(_layer_name(tname, kind, len(placements), taken), kind, g, ti,
                          t.buffer, shape, start, scales, [(g, k)])
            placements[p.name] = by_buffer[t.buffer] = p
    if not placements:
        raise ModelError(f"{path}: no prunable layer (int8 weights of FULLY_CONNECTED, "
                         f"CONV_2D or DEPTHWISE_CONV_2D)")
    base = np.frombuffer(data, np.int8)
    layers = {}
    for name, p in placements.items():
        w = p.view(base[p.start:p.start + p.n])
        layers[name] = Layer(name, w.copy(), quant=_quant(path, model, p))
    return TfliteModel(str(path), data, model, placements, layers)


def _check_weights(path, tname: str, t, kind: str, op) -> None:
    if t.type != _INT8:
        kind_of = _TYPES.get(t.type, f"type {t.type}")
        hint = {"float32": ": quantize the model to int8 (full-integer post-training "
                           "quantization) first",
                "int4": ": int4 packed weights are not supported, only int8"}.get(kind_of, "")
        raise _refuse(path, tname, f"weights are {kind_of}, not int8{hint}")
    if t.sparsity is not None:
        raise _refuse(path, tname, "a sparse (already compressed) tensor: prune8 prunes "
                                   "dense int8 weights")
    if getattr(t, "externalBuffer", 0):
        raise _refuse(path, tname, "its data is in an external buffer, outside the file")
    q = t.quantization
    if q is None or q.scale is None or len(q.scale) == 0:
        raise _refuse(path, tname, "int8 weights without quantization scales")
    shape = tuple(int(d) for d in (t.shape if t.shape is not None else ()))
    ndim = {"FULLY_CONNECTED": 2, "CONV_2D": 4, "DEPTHWISE_CONV_2D": 4}[kind]
    if len(shape) != ndim or min(shape) < 1 or (kind == "DEPTHWISE_CONV_2D" and shape[0] != 1):
        raise _refuse(path, tname, f"a {kind} weight of shape {list(shape)}")
    if kind == "FULLY_CONNECTED" and op.builtinOptions is not None and \
            getattr(op.builtinOptions, "weightsFormat", 0):
        raise _refuse(path, tname, "shuffled FULLY_CONNECTED weights (only the default "
                                   "format)")
    channels = shape[3] if kind == "DEPTHWISE_CONV_2D" else shape[0]
    qdim = 3 if kind == "DEPTHWISE_CONV_2D" else 0
    if len(q.scale) != 1 and (len(q.scale) != channels or q.quantizedDimension != qdim):
        raise _refuse(path, tname, f"{len(q.scale)} scales over dimension "
                                   f"{q.quantizedDimension}: need one, or one per output "
                                   f"channel ({channels}, dimension {qdim})")
    if q.zeroPoint is not None and any(int(z) != 0 for z in q.zeroPoint):
        raise _refuse(path, tname, "weights with a non-zero zero point (int8 weights are "
                                   "symmetric in TFLite)")
    if not all(math.isfinite(s) and s > 0 for s in q.scale):
        raise _refuse(path, tname, "a weight scale that is not finite and positive")


def _tensor_qparams(t):
    q = t.quantization
    if t.type != _INT8 or q is None or q.scale is None or len(q.scale) != 1:
        return None
    zp = q.zeroPoint
    return float(np.float32(q.scale[0])), int(zp[0]) if zp is not None and len(zp) else 0


def _quant(path, model, p: Placement) -> dict:
    """Layer.quant: the weight scales, and the int8 inference parameters of a
    FULLY_CONNECTED layer with int8 input and output, as TFLM computes them."""
    quant = {"w_scale": p.scales.copy() if p.scales.size > 1 else np.float32(p.scales[0])}
    if p.op != "FULLY_CONNECTED" or len(p.operators) != 1:
        return quant
    g, k = p.operators[0]
    sub = model.subgraphs[g]
    op = sub.operators[k]
    inp, out = _tensor_qparams(sub.tensors[op.inputs[0]]), _tensor_qparams(
        sub.tensors[op.outputs[0]])
    act = op.builtinOptions.fusedActivationFunction if op.builtinOptions is not None else 0
    if inp is None or out is None or act not in _ACTIVATIONS:
        return quant
    (in_scale, in_zp), (out_scale, out_zp) = inp, out
    rows = p.rows
    bias = np.zeros(rows, np.int32)
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        bt = sub.tensors[op.inputs[2]]
        bdata = model.buffers[bt.buffer].data
        if bt.type != 2 or bdata is None or len(bdata) != 4 * rows:
            return quant  # not an int32 bias per row: no board inference
        bias = np.frombuffer(np.asarray(bdata, np.uint8).tobytes(), "<i4").astype(np.int32)
    if p.scales.size > 1:  # per channel: double(in) * double(w_c) / double(out)
        pairs = [quantize_multiplier(float(in_scale) * float(s) / float(out_scale))
                 for s in p.scales]
        mult = np.array([m for m, _ in pairs], np.int32)
        shift = np.array([s for _, s in pairs], np.int32)
    else:  # per tensor: the product of the two float32 scales, in float32, then double
        real = float(np.float32(np.float32(in_scale) * p.scales[0])) / float(out_scale)
        m, s = quantize_multiplier(real)
        mult, shift = np.int32(m), np.int32(s)
    quant.update(bias=bias, mult=mult, shift=shift, relu=np.int8(_ACTIVATIONS[act]),
                 in_zp=np.int32(in_zp), out_zp=np.int32(out_zp),
                 in_scale=np.float32(in_scale), out_scale=np.float32(out_scale))
    return quant


def pruned_bytes(tm: TfliteModel, weights: dict[str, np.ndarray]) -> bytes:
    """The file with the given layers' weights (2-D views) written into their buffers;
    every other byte as it was."""
    out = bytearray(tm.data)
    for name, w2 in weights.items():
        p = tm.placements[name]
        flat = p.unview(np.asarray(w2, np.int8))
        if flat.size != p.n:
            raise ModelError(f"{tm.path}: layer {name!r} has {p.n} weights; got {flat.size}")
        out[p.start:p.start + p.n] = flat.tobytes()
    return bytes(out)


def write_pruned(tm: TfliteModel, weights: dict[str, np.ndarray], out) -> int:
    """Write the model with these layers' weights replaced (pruned_bytes) to `out`."""
    return write_output(out, pruned_bytes(tm, weights))
