"""Calibration of a .tflite through TFLM (docs/recovery.md): what each prunable layer
reads, as TFLM computes it, on calibration inputs.

`tensor_values` runs the model with chosen intermediate tensors as extra outputs (TFLM
returns a model's outputs only) and hands each input's values to a callback, so nothing
grows with the number of inputs. `calibrate` turns a layer's input into the rows its
2-D view multiplies (FULLY_CONNECTED: the flattened input; CONV_2D: the kh x kw x cin
patch of every output position, padding read as the input zero point, which TFLM's
kernel adds as 0; DEPTHWISE_CONV_2D: each channel's kh x kw patch) and keeps, in bounded
memory:

- the gradient proxy's statistic (docs/spec.md §8.7) over every row of every input:
  one per column, or one per weight for a depthwise layer (each row reads its own
  channel), as NAME.act;
- up to `max_rows` of those rows, drawn with a fixed seed from every input alike, as
  int8 samples: Wanda's NAME.calib (not for a depthwise layer, whose rows read
  different inputs) and the reconstruction's inputs (files.recover).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field

import flatbuffers
import numpy as np

from prune8_host.errors import ModelError, UsageError
from prune8_host.twin import tflm
from prune8_host.twin.dense import column_stat

from .graph import Graph, read_graph
from .tflite import IDENTIFIER, TfliteModel, schema

MAX_ROWS = 4096           # sampled rows kept per layer
ROW_SEED = 25


def pack_model(model) -> bytes:
    """A schema ModelT (object API) as .tflite bytes."""
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=IDENTIFIER)
    return bytes(b.Output())


def tensor_values(data: bytes, tensors: list[int], images: np.ndarray, each) -> None:
    """each(i, {tensor: int8 values}) for every input image i, computed by TFLM with
    `tensors` (of the main subgraph) as extra outputs of the model."""
    fb = schema()
    model = fb.ModelT.InitFromPackedBuf(data, 0)
    sub = model.subgraphs[0]
    base = [int(t) for t in sub.outputs]
    extra = [t for t in tensors if t not in base]
    sub.outputs = base + extra
    it = tflm.interpreter(pack_model(model))
    shape = tuple(int(d) for d in it.get_input_details(0)["shape"])
    x = np.asarray(images)
    if x.dtype != np.int8 or x.ndim < 2 or x[0].size != math.prod(shape):
        raise ModelError(f"calibration inputs must be int8, {math.prod(shape)} values each "
                         f"(the model's input {list(shape)}); got {x.dtype.name} "
                         f"{list(x.shape)}")
    where = {t: i for i, t in enumerate(sub.outputs)}
    for i, image in enumerate(x):
        it.set_input(image.reshape(shape), 0)
        it.invoke()
        each(i, {t: np.asarray(it.get_output(where[t])) for t in tensors})


def _same_pad(size: int, k: int, stride: int, dil: int) -> tuple[int, int]:
    out = -(-size // stride)
    total = max((out - 1) * stride + (k - 1) * dil + 1 - size, 0)
    return out, total // 2


def patches(x: np.ndarray, kh: int, kw: int, stride: tuple, dil: tuple, same: bool,
            zp: int) -> np.ndarray:
    """(positions, kh, kw, C) patches of one NHWC input x (1, H, W, C), as TFLM's
    convolution reads them (padding = the zero point)."""
    _, h, w, c = x.shape
    if same:
        oh, ph = _same_pad(h, kh, stride[0], dil[0])
        ow, pw = _same_pad(w, kw, stride[1], dil[1])
    else:
        oh = (h - (kh - 1) * dil[0] - 1) // stride[0] + 1
        ow = (w - (kw - 1) * dil[1] - 1) // stride[1] + 1
        ph = pw = 0
    hp = max(h + 2 * ph, (oh - 1) * stride[0] + (kh - 1) * dil[0] + 1)
    wp = max(w + 2 * pw, (ow - 1) * stride[1] + (kw - 1) * dil[1] + 1)
    padded = np.full((hp, wp, c), zp, np.int8)
    padded[ph:ph + h, pw:pw + w] = x[0]
    out = np.empty((oh, ow, kh, kw, c), np.int8)
    for i in range(kh):
        for j in range(kw):
            out[:, :, i, j] = padded[i * dil[0]:i * dil[0] + (oh - 1) * stride[0] + 1:stride[0],
                                     j * dil[1]:j * dil[1] + (ow - 1) * stride[1] + 1:stride[1]]
    return out.reshape(oh * ow, kh, kw, c)


@dataclass
class LayerInput:
    """What one layer reads on the calibration inputs (module docstring)."""
    layer: str
    op: str
    zp: int                                   # the input's zero point
    sums: np.ndarray                          # int64 per column, or per weight (depthwise)
    rows: np.ndarray                          # int8 (samples, cols): sampled rows
    count: int = 0                            # rows seen
    images: int = 0

    def act(self) -> np.ndarray:
        """NAME.act: the gradient proxy's statistic (docs/spec.md §8.7)."""
        return column_stat(self.sums)


@dataclass
class _Reader:
    name: str
    op: object
    x: int
    zp: int
    per_image: int = 0
    rng: np.random.Generator | None = None
    chunks: list = field(default_factory=list)


def layer_rows(g: Graph, name: str, op, x: np.ndarray, zp: int) -> np.ndarray:
    """The rows a layer's 2-D view multiplies for one input x (module docstring); a
    depthwise layer's rows as (positions, channels, kh*kw)."""
    kind = op.kind
    if kind == "FULLY_CONNECTED":
        n_in = g.shape(op.inputs[1])[1]
        return x.reshape(-1, n_in)
    w = g.shape(op.inputs[1])
    o = op.options
    stride = (int(o.strideH), int(o.strideW))
    dil = (int(getattr(o, "dilationHFactor", 1) or 1), int(getattr(o, "dilationWFactor", 1) or 1))
    p = patches(x.reshape(g.shape(op.inputs[0])), w[1], w[2], stride, dil,
                int(o.padding) == 0, zp)
    if kind == "CONV_2D":
        return p.reshape(p.shape[0], -1)
    mult = w[3] // p.shape[3]                   # depthwise: channel c*mult+m reads c
    per = p.reshape(p.shape[0], w[1] * w[2], p.shape[3])
    return np.repeat(per, mult, axis=2).transpose(0, 2, 1)


def calibrate(tm: TfliteModel, images: np.ndarray, layers: list[str] | None = None,
              max_rows: int = MAX_ROWS, seed: int = ROW_SEED) -> dict[str, LayerInput]:
    """{layer: LayerInput} for the layers (default: every layer with one operator)."""
    g = read_graph(tm)
    names = layers or list(tm.placements)
    readers = {}
    for name in names:
        p = tm.placements[name]
        if p.subgraph != 0 or len(p.operators) != 1:
            continue  # weights shared by two operators read two inputs
        op = g.ops[p.operators[0][1]]
        # one generator per layer, seeded by its name: the same layer of two models of
        # the same shapes (dense, channel-zeroed) samples the same rows
        readers[name] = _Reader(name, op, op.inputs[0], _zp(g, op.inputs[0]),
                                rng=np.random.default_rng([seed, zlib.crc32(name.encode())]))
    if not readers:
        raise UsageError(f"{tm.path}: no layer to calibrate")
    n = len(images)
    if n < 1:
        raise UsageError("no calibration inputs")
    out: dict[str, LayerInput] = {}

    def each(i, values):
        for r in readers.values():
            rows = layer_rows(g, r.name, r.op, values[r.x], r.zp)
            li = out.get(r.name)
            if li is None:  # sums per column, or (channels, taps) for a depthwise layer
                li = out[r.name] = LayerInput(r.name, r.op.kind, r.zp,
                                              np.zeros(rows.shape[1:], np.int64),
                                              np.zeros((0,) + rows.shape[1:], np.int8))
                r.per_image = max(1, -(-max_rows // n))
            li.sums += np.abs(rows.astype(np.int64) - r.zp).sum(axis=0)
            li.count += rows.shape[0]
            li.images += 1
            take = min(r.per_image, rows.shape[0])
            pick = np.sort(r.rng.choice(rows.shape[0], take, replace=False))
            r.chunks.append(rows[pick])

    tensor_values(tm.data, sorted({r.x for r in readers.values()}), images, each)
    for r in readers.values():
        li = out[r.name]
        li.rows = np.concatenate(r.chunks)[:max_rows]
    return out


def stats_arrays(inputs: dict[str, LayerInput]) -> dict[str, np.ndarray]:
    """The arrays of a calibration file: NAME.act for every layer, NAME.calib for every
    layer whose rows share their columns (not a depthwise layer)."""
    arrays = {}
    for name, li in inputs.items():
        arrays[f"{name}.act"] = li.act()
        if li.op != "DEPTHWISE_CONV_2D":
            arrays[f"{name}.calib"] = wanda_samples(li.rows, li.zp)
    return arrays


def wanda_samples(rows: np.ndarray, zp: int) -> np.ndarray:
    """Wanda's int8 samples of a layer's input rows: the values the weights multiply,
    x - zp (TFLM's kernels subtract the input zero point), halved (arithmetic shift) when
    the zero point is not 0, since x - zp then spans up to 255 steps. Halving every sample
    scales every column norm alike, so the ranking Wanda makes is kept up to rounding."""
    centered = rows.astype(np.int16) - zp
    return (centered >> 1 if zp else centered).astype(np.int8)


def _zp(g: Graph, t: int) -> int:
    q = g.tensors[t].quantization
    zps = getattr(q, "zeroPoint", None) if q is not None else None
    return int(zps[0]) if zps is not None and len(zps) else 0
