"""A physically smaller .tflite: the pruned channels of each group removed from every
tensor that carries or reads them (docs/channels.md).

`channel_zeroed` is the model a shrink is exact against: the rows that make a pruned
channel zeroed (what `prune8 apply` writes with the same group masks). Each such channel
then carries a constant (its bias through requantization, its activation, and whatever
pass-through operators do to a constant), which TFLM computes: `shrink` runs the
channel-zeroed model with the tensors the consumers read as extra outputs, reads the
constant of every removed channel there, and folds it into the consumers' int32 biases
(bias[o] += sum of w[o, j] * (q - input zero point) over the columns j reading it). Then
removing the channel changes no accumulator, hence no output: exact on FULLY_CONNECTED
consumers and on convolutions without padding. A convolution with SAME padding reads its
border through zeros that are not the constant, so there the fold is exact inside and
approximate at the border; a channel that is not constant (a PAD before its consumer)
is folded with its most frequent value. `Shrunk.inexact` names those consumers, and the
caller measures the difference (TFLM, small vs channel-zeroed).

Removed: the weights' rows and columns, bias entries, per-channel scales and zero
points, constants of elementwise operators, the channels of every activation shape
(RESHAPE's shape too), a depthwise convolution's multiplier when it is its channel
count; buffers nothing uses any more are dropped and the rest renumbered. Everything
else is copied through the schema's object API unchanged. The result is read back
(files.tflite.parse) and loaded by TFLM before it is returned.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

from prune8_host.errors import HostError, ModelError
from prune8_host.twin import tflm

from .calibration import pack_model, tensor_values
from .graph import Graph, Group, Reader, analyse, read_graph
from .tflite import TfliteModel, parse, pruned_bytes, schema

PROBE_INPUTS = 4          # inputs the channel-zeroed model runs on to read its constants
PROBE_SEED = 24
_INT32 = 2


@dataclass
class Shrunk:
    data: bytes               # the small .tflite
    zeroed: bytes             # the channel-zeroed .tflite it stands for
    removed: dict = field(default_factory=dict)   # layer -> (rows removed, cols removed)
    inexact: list = field(default_factory=list)   # "layer: why" where the fold approximates


def keep_rows(groups: list[Group], keeps: dict[int, np.ndarray]) -> dict[str, np.ndarray]:
    """{layer: row keep flags} of every layer whose rows make a pruned channel."""
    out = {}
    for grp in groups:
        if grp.number not in keeps:
            continue
        keep = keeps[grp.number]
        for m in grp.producers():
            own = m.index >= 0
            rows = out.setdefault(m.layer, None)
            if rows is None:
                rows = out[m.layer] = np.ones(int(m.index.max()) + 1, bool)
            rows[m.index[own]] = keep[own]
    return out


def keep_positions(groups: list[Group], keeps: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
    """{tensor: keep flags over its last dimension} of every tensor a pruned group
    runs through."""
    return {t: keeps[grp.number][pos] for grp in groups if grp.number in keeps
            for t, pos in grp.positions.items()}


def channel_zeroed(tm: TfliteModel, rows: dict[str, np.ndarray]) -> bytes:
    """The model with the rows that make pruned channels zeroed (module docstring)."""
    weights = {}
    for name, keep in rows.items():
        w = tm.layers[name].weights.copy()
        w[~keep[:w.shape[0]]] = 0
        weights[name] = w
    return pruned_bytes(tm, weights)


def shrink(tm: TfliteModel, keeps: dict[int, np.ndarray]) -> Shrunk:
    """The small model for {group number: keep flags over its channels}; every group
    named must be prunable and keep at least one channel."""
    g = read_graph(tm)
    groups, readers = analyse(g)
    by_number = {grp.number: grp for grp in groups}
    for number, keep in keeps.items():
        grp = by_number.get(number)
        if grp is None or not grp.prunable:
            raise ModelError(f"{tm.path}: channel group {number} "
                             + ("does not exist" if grp is None else
                                f"cannot be pruned ({grp.blocked})"))
        if keep.shape != (grp.channels,) or not keep.any():
            raise ModelError(f"{tm.path}: channel group {number} has {grp.channels} "
                             f"channels; its keep flags must keep at least one of them")
    for b in g.model.buffers:
        if getattr(b, "offset", 0) > 1:
            raise ModelError(f"{tm.path}: a .tflite whose buffers follow the flatbuffer (the "
                             f">2 GB format) cannot be shrunk")
    keep_pos = keep_positions(groups, keeps)
    zeroed = channel_zeroed(tm, keep_rows(groups, keeps))
    out = Shrunk(b"", zeroed)
    folds = _folds(g, zeroed, readers, keep_pos, out)
    model = copy.deepcopy(g.model)
    _Editor(g, model, keep_pos, folds, out).run()
    out.data = pack_model(model)
    try:
        parse(out.data, tm.path)
        tflm.interpreter(out.data)
    except HostError as e:
        raise ModelError(f"{tm.path}: the shrunk model does not read back ({e})") from None
    return out


def _folds(g: Graph, zeroed: bytes, readers: list[Reader], keep_pos: dict,
           out: Shrunk) -> dict[str, np.ndarray]:
    """{layer: int64 per row} to add to each consumer's bias (module docstring)."""
    wanted = [r for r in readers if r.tensor in keep_pos and not keep_pos[r.tensor].all()]
    if not wanted:
        return {}
    tensors = sorted({r.tensor for r in wanted})
    values = _probe(g, zeroed, tensors)
    folds: dict[str, np.ndarray] = {}
    for r in wanted:
        layer = g.tm.layers[r.layer]
        w = layer.weights.astype(np.int64)
        in_zp = _zero_point(g, r.tensor)
        gone = np.flatnonzero(~keep_pos[r.tensor])
        v = values[r.tensor]                        # (samples, positions..., channels)
        v = v.reshape(-1, v.shape[-1])[:, gone]
        const = np.array([np.bincount(col.astype(np.int64) + 128).argmax() - 128
                          for col in v.T])
        reads = np.concatenate([np.asarray(r.cols[p]).reshape(-1) for p in gone.tolist()])
        if not w[:, reads].any():
            continue  # its columns are zero (a recovery moved what they read elsewhere)
        if (v != const).any():
            out.inexact.append(f"{r.layer}: a removed channel it reads is not constant "
                               f"(folded with its most frequent value)")
        elif _pads(g, r) and (const != in_zp).any():
            out.inexact.append(f"{r.layer}: SAME padding reads zeros at the border where "
                               f"the removed channel is constant")
        add = np.zeros(w.shape[0], np.int64)
        for p, q in zip(gone.tolist(), const.tolist()):
            add += w[:, np.asarray(r.cols[p]).reshape(-1)].sum(axis=1) * (q - in_zp)
        folds[r.layer] = folds.get(r.layer, 0) + add
    return folds


def _probe(g: Graph, zeroed: bytes, tensors: list[int]) -> dict[int, np.ndarray]:
    """The int8 values TFLM computes for `tensors` in the channel-zeroed model, on
    PROBE_INPUTS drawn inputs (files.calibration.tensor_values)."""
    got: dict[int, list] = {t: [] for t in tensors}

    def keep(_, values):
        for t, v in values.items():
            got[t].append(v.copy())

    tensor_values(zeroed, tensors, tflm.drawn_inputs(zeroed, PROBE_INPUTS, PROBE_SEED), keep)
    return {t: np.stack(v) for t, v in got.items()}


def _zero_point(g: Graph, t: int) -> int:
    q = g.tensors[t].quantization
    zps = getattr(q, "zeroPoint", None) if q is not None else None
    return int(zps[0]) if zps is not None and len(zps) else 0


def _pads(g: Graph, r: Reader) -> bool:
    """Whether the reading operator is a convolution bigger than 1x1 with SAME padding."""
    for k, name in g.layer_of.items():
        op = g.ops[k]
        if name == r.layer and op.kind == "CONV_2D":
            kh, kw = g.shape(op.inputs[1])[1:3]
            return (kh > 1 or kw > 1) and int(getattr(op.options, "padding", 1)) == 0
    return False


class _Editor:
    """Applies the removal to a copy of the model (object API)."""

    def __init__(self, g: Graph, model, keep_pos: dict, folds: dict, out: Shrunk):
        self.g, self.model, self.keep_pos, self.folds, self.out = g, model, keep_pos, folds, out
        self.sub = model.subgraphs[0]

    def run(self) -> None:
        g = self.g
        for op in g.ops:
            layer = g.layer_of.get(op.index)
            y = op.outputs[0] if op.outputs else -1
            rows = self.keep_pos.get(y)
            if op.kind in ("CONV_2D", "FULLY_CONNECTED", "DEPTHWISE_CONV_2D") and layer:
                self._weights(op, layer, rows)
            elif op.kind in ("RESHAPE",) and rows is not None:
                self._reshape(op, int(rows.sum()))
            elif rows is not None:  # constants of elementwise operators, per channel
                for t in op.inputs:
                    if t >= 0 and g.is_const(t) and g.shape(t) and \
                            g.shape(t)[-1] == rows.size > 1:
                        self._slice(t, -1, rows)
        for t, keep in self.keep_pos.items():  # every activation's channels
            tensor = self.sub.tensors[t]
            tensor.shape = _last(tensor.shape, int(keep.sum()))
            if tensor.shapeSignature is not None and len(tensor.shapeSignature):
                tensor.shapeSignature = _last(tensor.shapeSignature, int(keep.sum()))
        _drop_unused_buffers(self.model)

    def _weights(self, op, layer: str, rows) -> None:
        g = self.g
        x, wt = op.inputs[0], op.inputs[1]
        bias = op.inputs[2] if len(op.inputs) > 2 else -1
        shape = g.shape(wt)
        fold = self.folds.get(layer)
        kept_cols = None
        if op.kind == "CONV_2D" and x in self.keep_pos:
            kept_cols = self.keep_pos[x]
            self._slice(wt, 3, kept_cols)
        elif op.kind == "FULLY_CONNECTED" and x in self.keep_pos:
            lx = g.shape(x)[-1]
            kept_cols = self.keep_pos[x][np.arange(shape[1]) % lx]
            self._slice(wt, 1, kept_cols)
        if fold is not None:
            bias = self._fold(op, layer, bias, fold)
        axis = 3 if op.kind == "DEPTHWISE_CONV_2D" else 0
        if rows is not None:
            self._slice(wt, axis, rows)
            if bias >= 0:
                self._slice(bias, 0, rows)
            if op.kind == "DEPTHWISE_CONV_2D" and g.shape(x)[-1] == 1:
                self.sub.operators[op.index].builtinOptions.depthMultiplier = int(rows.sum())
        self.out.removed[layer] = (0 if rows is None else int((~rows).sum()),
                                   0 if kept_cols is None else int((~kept_cols).sum()))

    def _fold(self, op, layer: str, bias: int, add: np.ndarray) -> int:
        if bias < 0:
            bias = self._new_bias(op, add.size)
            b = np.zeros(add.size, np.int64)
        else:
            b = self._data(bias).view("<i4").astype(np.int64)
        new = b + add
        if (new < -2 ** 31).any() or (new >= 2 ** 31).any():
            raise ModelError(f"layer {layer!r}: folding the removed channels into its bias "
                             f"overflows int32")
        self._set(bias, new.astype("<i4"), (add.size,))
        return bias

    def _new_bias(self, op, rows: int) -> int:
        """An int32 bias tensor for a consumer that had none (scale in * w per channel)."""
        fb = schema()
        g = self.g
        qi = g.tensors[op.inputs[0]].quantization
        qw = g.tensors[op.inputs[1]].quantization
        t = fb.TensorT()
        t.name = f"{g.name(op.inputs[1])}/folded_bias".encode()
        t.shape = [rows]
        t.type = _INT32
        q = fb.QuantizationParametersT()
        q.scale = [float(np.float32(qi.scale[0]) * np.float32(s)) for s in qw.scale]
        q.zeroPoint = [0] * len(q.scale)
        t.quantization = q
        self.model.buffers.append(fb.BufferT())
        t.buffer = len(self.model.buffers) - 1
        self.sub.tensors.append(t)
        idx = len(self.sub.tensors) - 1
        o = self.sub.operators[op.index]
        o.inputs = list(o.inputs)[:2] + [idx]
        return idx

    def _slice(self, t: int, axis: int, keep: np.ndarray) -> None:
        tensor = self.sub.tensors[t]
        shape = [int(d) for d in tensor.shape]
        item = {2: 4, 9: 1}.get(int(tensor.type))
        if item is None:
            raise ModelError(f"tensor {self.g.name(t)!r}: shrink slices int8 and int32 tensors, "
                             f"not type {tensor.type}")
        data = self._data(t).view("<i4" if item == 4 else np.int8).reshape(shape)
        kept = np.compress(keep, data, axis=axis)
        self._set(t, np.ascontiguousarray(kept), kept.shape)
        q = tensor.quantization
        if q is not None and q.scale is not None and len(q.scale) == keep.size > 1 and \
                int(q.quantizedDimension) == axis % len(shape):
            q.scale = [float(s) for s, k in zip(q.scale, keep) if k]
            if q.zeroPoint is not None and len(q.zeroPoint) == keep.size:
                q.zeroPoint = [int(z) for z, k in zip(q.zeroPoint, keep) if k]

    def _data(self, t: int) -> np.ndarray:
        """The tensor's current bytes (after earlier edits) as uint8."""
        b = self.model.buffers[self.sub.tensors[t].buffer]
        return np.asarray(b.data, np.uint8)

    def _set(self, t: int, values: np.ndarray, shape) -> None:
        """New data for a tensor, in a buffer of its own (a shared buffer stays as the
        other tensors see it)."""
        fb = schema()
        tensor = self.sub.tensors[t]
        users = sum(1 for x in self.sub.tensors if x.buffer == tensor.buffer)
        if users > 1 or tensor.buffer == 0:
            self.model.buffers.append(fb.BufferT())
            tensor.buffer = len(self.model.buffers) - 1
        self.model.buffers[tensor.buffer].data = np.frombuffer(values.tobytes(), np.uint8)
        tensor.shape = np.array(shape, np.int32)

    def _reshape(self, op, last: int) -> None:
        o = self.sub.operators[op.index]
        opts = o.builtinOptions
        if opts is not None and getattr(opts, "newShape", None) is not None and \
                len(opts.newShape) and int(opts.newShape[-1]) != -1:
            opts.newShape = _last(opts.newShape, last)
        if len(op.inputs) > 1 and op.inputs[1] >= 0 and self.g.is_const(op.inputs[1]):
            s = self._data(op.inputs[1]).view("<i4").copy()
            if s.size and s[-1] != -1:
                s[-1] = last
                self._set(op.inputs[1], s.astype("<i4"), (s.size,))


def _last(shape, n: int):
    s = np.array(shape, np.int32).copy()
    s[-1] = n
    return s


def _drop_unused_buffers(model) -> None:
    """Remove the buffers no tensor or metadata entry uses (buffer 0, the empty one,
    stays), renumbering the rest."""
    used = {0}
    for sub in model.subgraphs:
        used.update(int(t.buffer) for t in sub.tensors)
    for m in model.metadata or []:
        used.add(int(m.buffer))
    order = sorted(used)
    new = {old: i for i, old in enumerate(order)}
    model.buffers = [model.buffers[i] for i in order]
    for sub in model.subgraphs:
        for t in sub.tensors:
            t.buffer = new[int(t.buffer)]
    for m in model.metadata or []:
        m.buffer = new[int(m.buffer)]


def group_keeps(tm: TfliteModel, groups: list[Group], masks) -> dict[int, np.ndarray]:
    """{group number: keep flags over its channels} from row masks over the layers that
    make the channels (masks from `prune8 mask --structured channels`, or any row masks
    that agree across a group). A group none of whose layers has a mask is kept whole."""
    by_layer = {m.name: m for m in masks}
    used = set()
    keeps = {}
    for grp in groups:
        makers = [m for m in grp.producers()]
        have = [m for m in makers if m.layer in by_layer]
        if not have:
            continue
        if not grp.prunable:
            raise ModelError(f"{tm.path}: layer {have[0].layer!r} has a mask, but its output "
                             f"channels (group {grp.number}) cannot be removed: {grp.blocked}")
        lacking = [m.layer for m in makers if m.layer not in by_layer]
        if lacking:
            raise ModelError(f"{tm.path}: group {grp.number}'s channels are made by "
                             f"{', '.join(repr(m.layer) for m in makers)}; the masks have "
                             f"none for {', '.join(map(repr, lacking))} (prune8 mask "
                             f"--structured channels masks every one)")
        # each maker decides the channels it makes (a concatenation's inputs make a
        # slice each); where two make the same channel (an ADD), they must agree
        keep = np.ones(grp.channels, bool)
        known = np.zeros(grp.channels, bool)
        for m in makers:
            mask = by_layer[m.layer]
            used.add(m.layer)
            if mask.unit != "row":
                raise ModelError(f"{tm.path}: layer {m.layer!r}: its mask is per "
                                 f"{mask.unit}; removing channels needs row masks (prune8 "
                                 f"mask --structured channels)")
            rows = mask.keep()
            own = m.index >= 0
            this = np.ones(grp.channels, bool)
            this[own] = rows[m.index[own]]
            both = own & known
            if not np.array_equal(keep[both], this[both]):
                raise ModelError(f"{tm.path}: the masks of {makers[0].layer!r} and "
                                 f"{m.layer!r} keep different channels of group "
                                 f"{grp.number}, which must go together")
            keep[own] = this[own]
            known |= own
        if not keep.any():
            raise ModelError(f"{tm.path}: the masks remove every channel of group "
                             f"{grp.number}; at least one must stay")
        keeps[grp.number] = keep
    strays = [name for name in by_layer if name not in used]
    if strays:
        raise ModelError(f"{tm.path}: layer {strays[0]!r} has a mask, but its rows make no "
                         f"channel group that can be removed (prune8 model info lists the "
                         f"groups)")
    return keeps
