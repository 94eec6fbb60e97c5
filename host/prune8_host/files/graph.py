"""A .tflite's operator graph, and its coupled channel groups (docs/channels.md).

Removing output channel c of a CONV_2D removes more than one row: its bias entry and
per-channel scale, channel c of every tensor that carries it (through activations,
pooling, padding, a depthwise convolution with depth multiplier 1, an ADD joining two
branches, a CONCATENATION's slice, a RESHAPE that flattens it) and the weights that read
it (a CONV_2D's input depth, a FULLY_CONNECTED's columns). The channels that must go
together form a *group*: Torch-Pruning's DepGraph idea, derived here from the int8
graph's operators.

How: every position of the last (channel) dimension of every activation tensor of the
main subgraph is a node; each operator joins the nodes it couples (union-find); a
connected set of nodes is one *channel*, and channels that share a tensor form one
*group* (a CONCATENATION's output holds channels of several producers: one group).
A group is prunable when none of its tensors is a model input or output or touches an
operator prune8 does not see through, and every channel has weights that make it.

`Group.members` lists what a channel owns in each layer (rows of the 2-D view prune8
prunes: FULLY_CONNECTED and CONV_2D rows, DEPTHWISE_CONV_2D channels) and which weights
read it (columns of the 2-D views), by layer name (files.tflite's names), so the twin
and the board score a group from the layers alone. Shrinking the file uses the tensor
positions (files.tflite_shrink).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np

from prune8_host.errors import FileFormatError, ModelError
from prune8_host.twin.channels import Member

from .tflite import TfliteModel, schema

# Operators whose output channel c is a function of input channel c alone.
PASS_THROUGH = frozenset((
    "RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1", "LOGISTIC", "TANH", "HARD_SWISH",
    "LEAKY_RELU", "PRELU", "QUANTIZE", "DEQUANTIZE", "AVERAGE_POOL_2D", "MAX_POOL_2D",
    "L2_POOL_2D", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "ABS", "NEG"))
# Elementwise operators of two inputs (broadcast over space): their inputs' channel c and
# their output's channel c are one.
ELEMENTWISE = frozenset(("ADD", "SUB", "MUL", "MAXIMUM", "MINIMUM", "SQUARED_DIFFERENCE"))
# Operators that keep the flat order of their input: the channel of a position follows
# from it (a flatten, a squeeze).
SAME_ORDER = frozenset(("RESHAPE", "SQUEEZE", "EXPAND_DIMS"))
REDUCERS = frozenset(("MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD"))
PADDING = frozenset(("PAD", "PADV2"))


@functools.lru_cache(maxsize=None)
def operator_names() -> dict[int, str]:
    """TFLite's builtin operator code -> name, from TFLM's schema."""
    return {code: name for name, code in vars(schema().BuiltinOperator).items()
            if not name.startswith("_")}


@dataclass
class Op:
    index: int
    kind: str                 # the builtin operator's name ("CONV_2D"), or "CUSTOM:name"
    inputs: tuple             # tensor indices; -1 for an optional input left out
    outputs: tuple
    options: object           # the options table (object API) or None


@dataclass
class Graph:
    """The main subgraph of a .tflite, through TFLM's schema object API."""
    tm: TfliteModel
    model: object             # schema ModelT: what tflite_shrink edits and writes back
    ops: list
    inputs: tuple
    outputs: tuple
    producer: dict = field(default_factory=dict)    # tensor -> op index
    consumers: dict = field(default_factory=dict)   # tensor -> [op index]
    layer_of: dict = field(default_factory=dict)    # (op index) -> layer name (weights)

    @property
    def tensors(self) -> list:
        return self.model.subgraphs[0].tensors

    def shape(self, t: int) -> tuple:
        s = self.tensors[t].shape
        return tuple(int(d) for d in s) if s is not None else ()

    def name(self, t: int) -> str:
        n = self.tensors[t].name
        return n.decode(errors="replace") if isinstance(n, bytes) else str(n or f"#{t}")

    def const(self, t: int) -> np.ndarray | None:
        """The data of a constant tensor (raw bytes, uint8), or None."""
        b = self.model.buffers[self.tensors[t].buffer]
        data = getattr(b, "data", None)
        return None if data is None or len(data) == 0 else np.asarray(data, np.uint8)

    def is_const(self, t: int) -> bool:
        return self.const(t) is not None

    def int32s(self, t: int) -> np.ndarray:
        return self.const(t).view("<i4").astype(np.int64)


def read_graph(tm: TfliteModel) -> Graph:
    """The main subgraph of a parsed .tflite (files.tflite.parse has checked every index)."""
    fb = schema()
    try:
        model = fb.ModelT.InitFromPackedBuf(tm.data, 0)
    except Exception as e:  # noqa: BLE001 - a table the reader did not walk is damaged
        raise FileFormatError(f"{tm.path}: damaged TFLite flatbuffer ({e})") from None
    codes = [max(int(c.builtinCode), int(c.deprecatedBuiltinCode))
             for c in model.operatorCodes]
    customs = [(c.customCode or b"").decode(errors="replace") for c in model.operatorCodes]
    names = operator_names()
    sub = model.subgraphs[0]
    ops = []
    for k, o in enumerate(sub.operators or []):
        code = codes[o.opcodeIndex]
        kind = names.get(code, f"operator {code}")
        if kind == "CUSTOM":
            kind = f"CUSTOM:{customs[o.opcodeIndex]}"
        ops.append(Op(k, kind, tuple(int(i) for i in (o.inputs if o.inputs is not None else ())),
                      tuple(int(i) for i in (o.outputs if o.outputs is not None else ())),
                      o.builtinOptions))
    g = Graph(tm, model, ops, tuple(int(i) for i in sub.inputs),
              tuple(int(i) for i in sub.outputs))
    for op in ops:
        for t in op.outputs:
            g.producer[t] = op.index
        for t in op.inputs:
            if t >= 0:
                g.consumers.setdefault(t, []).append(op.index)
    for name, p in tm.placements.items():
        for sg, k in p.operators:
            if sg == 0:
                g.layer_of[k] = name
    return g


# --- channel groups ---------------------------------------------------------------------

@dataclass
class Group:
    number: int
    channels: int
    tensors: tuple            # activation tensors carrying the group's channels
    members: list             # Member
    blocked: str = ""         # why the group cannot be pruned ("" when it can)
    positions: dict = field(default_factory=dict)   # tensor -> group channel per position

    @property
    def prunable(self) -> bool:
        return not self.blocked

    def producers(self) -> list:
        return [m for m in self.members if m.role == "rows"]


# Bounds of the walk, which a damaged file's shapes would otherwise set (one bit flip
# gave an input 16,777,232 values wide, and model info ran for minutes): a tensor wider
# than this carries no channels prune8 maps (a flattened activation of a microcontroller
# model is thousands wide), and a graph with more positions in all is refused.
MAX_TENSOR_POSITIONS = 1 << 20
MAX_POSITIONS = 1 << 21


def _unmapped(shape: tuple) -> str:
    """Why an activation of this shape carries no channels the walk maps, or ""."""
    if not shape:
        return "scalar"
    if min(shape) < 1:
        return f"of shape {list(shape)}"
    if shape[-1] > MAX_TENSOR_POSITIONS:
        return f"{shape[-1]:,} wide (prune8 maps at most {MAX_TENSOR_POSITIONS:,})"
    return ""


class _Nodes:
    """Union-find over (tensor, last-dimension position)."""

    def __init__(self, g: Graph):
        self.base: dict[int, int] = {}
        n = 0
        for t in range(len(g.tensors)):
            if not g.is_const(t) and not _unmapped(g.shape(t)):
                self.base[t] = n
                n += g.shape(t)[-1]
        if n > MAX_POSITIONS:
            raise ModelError(f"{g.tm.path}: the model's activations have {n:,} positions "
                             f"in their last dimensions, more than prune8 maps into "
                             f"channel groups ({MAX_POSITIONS:,})")
        self.parent = np.arange(n)

    def id(self, t: int, p) -> np.ndarray:
        return self.base[t] + np.asarray(p)

    def find(self, i: int) -> int:
        parent = self.parent
        root = i
        while parent[root] != root:
            root = parent[root]
        while parent[i] != root:
            parent[i], i = root, parent[i]
        return int(root)

    def join(self, a, b) -> None:
        for x, y in zip(np.atleast_1d(a).tolist(), np.atleast_1d(b).tolist()):
            rx, ry = self.find(x), self.find(y)
            if rx != ry:
                self.parent[max(rx, ry)] = min(rx, ry)


class _Coupling:
    """Walks the operators once: joins coupled nodes, notes what each layer's rows and
    columns read, and why a tensor blocks its group."""

    def __init__(self, g: Graph):
        self.g = g
        self.nodes = _Nodes(g)
        self.blocked: dict[int, str] = {}
        self.rows: list = []      # (layer, tensor): row r of layer <-> position r of tensor
        self.cols: list = []      # (layer, tensor, column -> position array)

    def block(self, t: int, why: str) -> None:
        if t in self.nodes.base:
            self.blocked.setdefault(t, why)

    def act(self, t: int) -> bool:
        return t in self.nodes.base

    def last(self, t: int) -> int:
        return self.g.shape(t)[-1]

    def same(self, a: int, b: int) -> None:
        if self.last(a) != self.last(b):
            self.block(a, "a channel count that changes where it should not")
            self.block(b, "a channel count that changes where it should not")
            return
        p = np.arange(self.last(a))
        self.nodes.join(self.nodes.id(a, p), self.nodes.id(b, p))

    def run(self) -> None:
        g = self.g
        for t in g.inputs:
            self.block(t, f"it carries the model's input {g.name(t)!r}")
        for t in g.outputs:
            self.block(t, f"it reaches the model's output {g.name(t)!r}")
        for op in g.ops:
            self.op(op)

    def op(self, op: Op) -> None:
        g, kind = self.g, op.kind
        ins = [t for t in op.inputs if t >= 0 and self.act(t)]
        outs = [t for t in op.outputs if self.act(t)]
        layer = g.layer_of.get(op.index)
        bad = self._damaged(op)
        if bad:  # a damaged file: the channels of this operator are nobody's
            return self._opaque(op, f"{kind} with {bad}")
        if kind in ("CONV_2D", "FULLY_CONNECTED", "DEPTHWISE_CONV_2D"):
            if layer is None:  # weights prune8 does not read (float, computed, ...)
                return self._opaque(op, f"{kind} without int8 constant weights")
            if len(g.tm.placements[layer].operators) > 1:
                return self._opaque(op, f"{kind} whose weights {layer!r} another operator "
                                        f"shares")
        if kind == "CONV_2D":
            x, y = op.inputs[0], op.outputs[0]
            self.rows.append((layer, y))
            cin = self.last(x)
            w_in = g.shape(op.inputs[1])[3]
            if w_in != cin:  # a grouped convolution
                return self._opaque(op, f"a grouped CONV_2D ({cin} input channels, weights "
                                        f"for {w_in})")
            kk = g.shape(op.inputs[1])[1] * g.shape(op.inputs[1])[2]
            # the 2-D view's column of (kh, kw, c) is (kh*kw_n + kw)*cin + c
            cols = np.arange(kk * cin).reshape(kk, cin).T
            self.cols.append((layer, x, cols))
        elif kind == "FULLY_CONNECTED":
            x, y = op.inputs[0], op.outputs[0]
            self.rows.append((layer, y))
            n_in = g.shape(op.inputs[1])[1]
            lx = self.last(x)
            if lx == n_in:
                self.cols.append((layer, x, np.arange(n_in)[:, None]))
            elif n_in % lx == 0 and math.prod(g.shape(x)[1:]) == n_in:  # flattens its input
                self.cols.append((layer, x, np.arange(n_in).reshape(-1, lx).T))
            else:
                self.block(x, f"FULLY_CONNECTED {layer!r} reads it as {n_in} values per "
                              f"row, which prune8 does not map to its {lx} channels")
        elif kind == "DEPTHWISE_CONV_2D":
            x, y = op.inputs[0], op.outputs[0]
            cin, cout = self.last(x), self.last(y)
            if cin == cout:
                self.same(x, y)
                self.rows.append((layer, y))
            elif cin == 1:  # a convolution of one channel: each output channel its own
                self.rows.append((layer, y))
            else:
                self._opaque(op, f"DEPTHWISE_CONV_2D with depth multiplier {cout // cin} "
                                 f"over {cin} channels")
        elif kind in PASS_THROUGH:
            if ins and outs:
                self.same(ins[0], outs[0])
        elif kind in ELEMENTWISE:
            y = op.outputs[0]
            for t in op.inputs[:2]:
                if t < 0:
                    continue
                if self.act(t):
                    if self.last(t) == self.last(y):
                        self.same(t, y)
                    else:
                        self.block(y, f"{kind} broadcasts a {self.last(t)}-channel input")
                elif g.shape(t) and g.shape(t)[-1] not in (1, self.last(y)):
                    self.block(y, f"{kind} reads a constant prune8 cannot slice")
        elif kind in SAME_ORDER:
            if ins and outs:
                self._reshape(op, ins[0], outs[0])
        elif kind in REDUCERS:
            x, y = op.inputs[0], op.outputs[0]
            axes = g.int32s(op.inputs[1]) if g.is_const(op.inputs[1]) else None
            rank = len(g.shape(x))
            if axes is None or any(int(a) % rank == rank - 1 for a in axes):
                self._opaque(op, f"{kind} over the channel axis")
            else:
                self.same(x, y)
        elif kind in PADDING:
            x, y = op.inputs[0], op.outputs[0]
            pads = g.int32s(op.inputs[1]) if g.is_const(op.inputs[1]) else None
            if pads is None or pads.reshape(-1, 2)[-1].any():
                self._opaque(op, f"{kind} of the channel axis")
            else:
                self.same(x, y)
        elif kind == "CONCATENATION":
            self._concat(op)
        else:
            self._opaque(op, f"{kind}, which prune8 does not see through")

    def _damaged(self, op: Op) -> str:
        """What is wrong with op's tensors for the walk below, or "": an activation has
        a channel axis (a scalar has none); a convolution's input, weights and output
        are 4-D, a FULLY_CONNECTED's input, weights and output are there, its weights
        2-D."""
        g = self.g
        rank = {"CONV_2D": 4, "DEPTHWISE_CONV_2D": 4, "FULLY_CONNECTED": 2}.get(op.kind)
        for k, t in enumerate((*op.inputs, *op.outputs)):
            if t < 0:
                continue
            shape = g.shape(t)
            if not g.is_const(t):
                why = _unmapped(shape)  # an activation: what _Nodes left out
            elif not shape:
                # a constant scalar may be an operand (ADD's addend, MEAN's axis), not an
                # output, a layer's input or a piece of a concatenation
                why = "scalar" if (k >= len(op.inputs) or op.kind == "CONCATENATION"
                                   or (k == 0 and rank is not None)) else ""
            else:
                why = f"of shape {list(shape)}" if min(shape) < 1 else ""
            if why == "scalar":
                return f"a scalar {g.name(t)!r} where channels go"
            if why:
                return f"{g.name(t)!r} {why}"
        # the operands the walk reads by position (x, y; a layer's weights, an axis or
        # padding operand) are there
        needs = 2 if rank is not None or op.kind in REDUCERS | PADDING else 1
        if op.kind in ELEMENTWISE | REDUCERS | PADDING or rank is not None or \
                op.kind == "CONCATENATION":
            if len(op.inputs) < needs or min(op.inputs[:needs]) < 0 or not op.outputs \
                    or op.outputs[0] < 0:
                return "an input or output missing"
        if rank is None:
            return ""
        shaped = (op.inputs[1],) if rank == 2 else (op.inputs[0], op.inputs[1], op.outputs[0])
        for t in shaped:
            if len(g.shape(t)) != rank:
                return f"a {len(g.shape(t))}-D {g.name(t)!r} where a {rank}-D tensor goes"
        return ""

    def _opaque(self, op: Op, why: str) -> None:
        for t in (*op.inputs, *op.outputs):
            if t >= 0:
                self.block(t, why)

    def _reshape(self, op: Op, x: int, y: int) -> None:
        lx, ly = self.last(x), self.last(y)
        if lx == ly:
            return self.same(x, y)
        ids = self.nodes.id
        if ly % lx == 0:    # a flatten: position p of y is channel p % lx of x
            p = np.arange(ly)
            self.nodes.join(ids(y, p), ids(x, p % lx))
        elif lx % ly == 0:  # the other way
            p = np.arange(lx)
            self.nodes.join(ids(x, p), ids(y, p % ly))
        else:
            self._opaque(op, f"{op.kind} from {lx} to {ly} positions splits channels")

    def _concat(self, op: Op) -> None:
        g = self.g
        y = op.outputs[0]
        rank = len(g.shape(y))
        axis = int(getattr(op.options, "axis", 0)) % rank if rank else 0
        off = 0
        for t in op.inputs:
            if axis != rank - 1:
                if self.act(t):
                    self.same(t, y)
                continue
            n = g.shape(t)[-1]
            if self.act(t):
                p = np.arange(n)
                self.nodes.join(self.nodes.id(t, p), self.nodes.id(y, off + p))
            else:  # a constant slice: its channels are no layer's; keep them
                self.block(y, "CONCATENATION of a constant along the channel axis")
            off += n


@dataclass
class Reader:
    """A layer's operator reading an activation tensor: cols[p] are the columns of the
    layer's 2-D view that read position p of the tensor's last dimension."""
    layer: str
    tensor: int
    cols: np.ndarray


def channel_groups(g: Graph) -> list[Group]:
    """The coupled channel groups of a graph (module docstring), in the order of the
    first tensor that carries each; a group's channels are numbered in the order of
    the lowest node that holds them (a producer's rows, in the usual case)."""
    return analyse(g)[0]


def analyse(g: Graph) -> tuple[list[Group], list[Reader]]:
    """(channel_groups, every layer's reading of an activation tensor)."""
    c = _Coupling(g)
    c.run()
    nodes = c.nodes
    roots = np.array([nodes.find(i) for i in range(nodes.parent.size)], np.int64)
    # group = channels sharing a tensor: union-find over channel roots through tensors
    group_of = {int(r): int(r) for r in np.unique(roots)}

    def gfind(r):
        while group_of[r] != r:
            group_of[r] = group_of[group_of[r]]
            r = group_of[r]
        return r

    for t, base in nodes.base.items():
        rs = np.unique(roots[base:base + g.shape(t)[-1]])
        first = gfind(int(rs[0]))
        for r in rs[1:].tolist():
            other = gfind(r)
            if other != first:
                group_of[max(first, other)] = min(first, other)
                first = min(first, other)
    channels_of: dict[int, list] = {}
    for r in np.unique(roots).tolist():  # ascending: the lowest node first
        channels_of.setdefault(gfind(r), []).append(r)
    tensors_of: dict[int, list] = {}
    for t, base in sorted(nodes.base.items(), key=lambda kv: kv[1]):
        tensors_of.setdefault(gfind(int(roots[base])), []).append(t)
    groups = []
    for number, (key, chans) in enumerate(sorted(channels_of.items())):
        channel = {r: i for i, r in enumerate(chans)}
        tensors = tuple(tensors_of.get(key, ()))
        positions = {t: np.array([channel[int(r)] for r in
                                  roots[nodes.base[t]:nodes.base[t] + c.last(t)]])
                     for t in tensors}
        members = []
        twice = ""
        for layer, t in c.rows:
            if t in tensors:
                pos = positions[t]
                if np.unique(pos).size != pos.size:
                    twice = f"two rows of layer {layer!r} are one channel"
                members.append(Member(layer, "rows", _inverse(pos, len(chans))))
        for layer, t, cols in c.cols:
            if t in tensors:
                members.append(Member(layer, "cols", _columns(cols, positions[t],
                                                              len(chans))))
        why = next((f"tensor {g.name(t)!r}: {c.blocked[t]}" for t in tensors
                    if t in c.blocked), twice)
        if not why:
            made = np.zeros(len(chans), bool)
            for m in members:
                if m.role == "rows":
                    made |= m.index >= 0
            if not made.all():
                why = "some of its channels are made by no layer prune8 prunes"
        groups.append(Group(number, len(chans), tensors, members, why, positions))
    return groups, [Reader(layer, t, cols) for layer, t, cols in c.cols]


def _inverse(pos: np.ndarray, n: int) -> np.ndarray:
    """Row of a layer per group channel (-1: the layer has no row for it); pos[r] is the
    group channel of row r."""
    out = np.full(n, -1, np.int64)
    out[pos[::-1]] = np.arange(pos.size)[::-1]  # the first row of a channel
    return out


def _columns(cols: np.ndarray, pos: np.ndarray, n: int) -> np.ndarray:
    """Columns per group channel: cols[p] are the columns reading position p."""
    per = [[] for _ in range(n)]
    for p, ch in enumerate(pos.tolist()):
        per[ch].extend(np.asarray(cols[p]).tolist())
    width = max((len(x) for x in per), default=0)
    out = np.full((n, width), -1, np.int64)
    for ch, x in enumerate(per):
        out[ch, :len(x)] = sorted(x)
    return out


def groups_of(tm: TfliteModel) -> list[Group]:
    """The channel groups of a parsed .tflite (a ModelError for what cannot be mapped)."""
    if len(tm.placements) == 0:
        raise ModelError(f"{tm.path}: no layers")
    return channel_groups(read_graph(tm))
