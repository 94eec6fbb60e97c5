"""Accuracy back without retraining (docs/recovery.md): the consumers of removed channels
rewritten before the shrink, so the small model stays close to the dense one.

Every recovery returns the dense model with some consumers' weights, per-channel scales
and int32 biases rewritten; `files.tflite_shrink.shrink` then removes the channels as
usual. A consumer is a CONV_2D or FULLY_CONNECTED layer that reads a removed channel.

- `none`: nothing rewritten. The shrink folds each removed channel's constant (its value
  in the channel-zeroed model) into the consumers' biases.
- `bias`: each consumer's mean output shift on the calibration inputs, rounded, added to
  its int32 bias (the best constant correction: never worse than `none` on them).
- `lsq`: each consumer's kept weights and bias refitted by least squares (ridge-damped)
  so that, on the inputs it reads in the pruned model, its accumulator matches the dense
  model's; then requantized per output channel in the model's own scheme (per channel, or
  one scale for a per-tensor layer): the new scale maps the largest refitted weight to
  127, so nothing saturates; the bias is re-expressed in the new scale.
- `merge` (data-free, Kim et al., NeurIPS 2020): a removed channel whose producer row
  (weights and bias, in real units) points the way of a kept one's, cos >= MERGE_MIN_COS,
  is carried by that kept channel: its consumers' columns are added, times the ratio of
  the two, to the kept channel's columns. Only where that is sound: one producer makes
  the group's channels (no residual ADD, no depthwise in between), with no activation or
  a ReLU (positively homogeneous).

`bias` and `lsq` go consumer by consumer in graph order; each is fitted on the inputs it
reads in the model pruned and recovered so far (the channel-zeroed model, run by TFLM),
against the dense model's accumulator on the same sampled rows, so earlier layers'
errors are corrected too (He, Zhang & Sun, 2017). The objective, reported per layer, is
the squared error of the consumer's real-valued accumulator (before requantization and
activation) over the sampled rows, relative to the dense one's energy. A fit that comes
out worse than a simpler recovery on that objective (quantization can do that) falls back
to the simpler one, and says so.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

from prune8_host.errors import ModelError, UsageError

from .calibration import MAX_ROWS, calibrate, pack_model
from .graph import Graph, Group, Reader, analyse, read_graph
from .tflite import TfliteModel, parse
from .tflite_shrink import channel_zeroed, keep_positions, keep_rows

RECOVERIES = ("none", "bias", "lsq", "merge")
NEEDS_DATA = ("bias", "lsq")
RIDGES = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)   # lsq dampings tried (relative to X^T X's diagonal)
CLAMP_ROUNDS = 2
HOLD_OUT = 4              # every 4th calibration row judges the damping, unseen by the fit
MERGE_MIN_COS = 0.8       # producer rows at least this aligned are merged
_MERGEABLE_ACTIVATIONS = (0, 1)   # fused activation NONE, RELU


@dataclass
class _Output:
    """A layer's int8 output as TFLM makes it from the real accumulator (in units of the
    input scale): requantized, offset by the zero point, clamped to the activation's
    range; `real` gives it back in real units, what the objective compares."""
    s_in: float
    s_out: float
    zp: int
    lo: int
    hi: int

    def real(self, acc: np.ndarray) -> np.ndarray:
        q = np.clip(np.round(acc * (self.s_in / self.s_out)) + self.zp, self.lo, self.hi)
        return (q - self.zp) * self.s_out


@dataclass
class LayerFix:
    """What recovery did to one consumer."""
    layer: str
    applied: str                                   # none, bias, lsq or merge
    errors: dict = field(default_factory=dict)     # recovery -> relative objective
    merged: int = 0                                # channels merged into kept ones
    note: str = ""


@dataclass
class Recovery:
    method: str
    data: bytes                                    # the dense model, consumers rewritten
    layers: list = field(default_factory=list)     # LayerFix per consumer rewritten or not

    def summary(self) -> str:
        if self.method == "none":
            return "recovery: none (removed channels' constants folded into the biases)"
        done: dict = {}
        for f in self.layers:
            done.setdefault(f.applied, []).append(f.layer)
        parts = [f"{k} on {len(v)} layer(s)" for k, v in done.items()]
        fell = [f"{f.layer}: {f.note}" for f in self.layers if f.note]
        return (f"recovery: {self.method} ({', '.join(parts) or 'nothing to recover'})"
                + (f"; {'; '.join(fell)}" if fell else ""))


def default_recovery(has_data: bool) -> str:
    return "lsq" if has_data else "merge"


def recover(tm: TfliteModel, keeps: dict[int, np.ndarray], method: str,
            images: np.ndarray | None = None, max_rows: int = MAX_ROWS) -> Recovery:
    """The dense model with the consumers of the channels `keeps` removes rewritten by
    `method` (module docstring); `images` (int8 calibration inputs) for bias and lsq."""
    if method not in RECOVERIES:
        raise UsageError(f"recovery must be one of {', '.join(RECOVERIES)}, got {method!r}")
    if method in NEEDS_DATA and (images is None or len(images) == 0):
        raise UsageError(f"--recover {method} needs calibration inputs (--data or --calib "
                         f"with an 'images' array); without data use --recover merge or none")
    if method == "none" or all(k.all() for k in keeps.values()):
        return Recovery(method, tm.data)  # nothing removed: nothing to make up for
    g = read_graph(tm)
    groups, readers = analyse(g)
    keep_pos = keep_positions(groups, keeps)
    consumers = sorted((r for r in readers if r.tensor in keep_pos
                        and not keep_pos[r.tensor].all()
                        and len(tm.placements[r.layer].operators) == 1),
                       key=lambda r: tm.placements[r.layer].operators[0][1])
    model = copy.deepcopy(g.model)
    editor = LayerParams(g, model)
    if method == "merge":
        fixes = _merge(g, groups, keeps, consumers, editor)
    else:
        fixes = _fit_all(tm, groups, keeps, keep_pos, consumers, editor, method, images,
                         max_rows)
    data = pack_model(model)
    return Recovery(method, data, fixes)


# -- bias and lsq, fitted consumer by consumer ------------------------------------------

def _fit_all(tm, groups, keeps, keep_pos, consumers: list[Reader], editor: LayerParams,
             method: str, images, max_rows: int) -> list[LayerFix]:
    # the consumers, and every depthwise layer after the first pruned one (its kept
    # channels read inputs the prune moved: each channel's bias is corrected)
    rows = keep_rows(groups, keeps)
    start = min((tm.placements[n].operators[0][1] for n in rows), default=0)
    depthwise = [n for n, p in tm.placements.items() if p.op == "DEPTHWISE_CONV_2D"
                 and len(p.operators) == 1 and p.subgraph == 0
                 and p.operators[0][1] >= start]
    todo = sorted([(tm.placements[r.layer].operators[0][1], r.layer, r) for r in consumers]
                  + [(tm.placements[n].operators[0][1], n, None) for n in depthwise],
                  key=lambda t: t[0])
    dense = calibrate(tm, images, [name for _, name, _ in todo], max_rows)
    fixes = []
    for _, name, r in todo:
        current = parse(channel_zeroed(parse(pack_model(editor.model), tm.path), rows),
                        tm.path)
        now = calibrate(current, images, [name], max_rows)[name]
        before = dense[name]
        if r is None:
            fixes.append(_fit_depthwise(editor, name, before.rows, now.rows, before.zp,
                                        method, rows.get(name)))
            continue
        gone = np.zeros(editor.cols(name), bool)
        gone[np.asarray(r.cols)[~keep_pos[r.tensor]].reshape(-1)] = True
        fixes.append(_fit(editor, name, before.rows, now.rows, before.zp, gone, method,
                          rows.get(name)))
    return fixes


@dataclass
class _Problem:
    """One layer to refit: its inputs in the pruned model (`xp`, centred), the dense
    model's accumulator on the same rows (`target`, real units), and the objective (module
    docstring) over the output channels that stay (`live`)."""
    layer: str
    w: np.ndarray
    b: np.ndarray
    s: np.ndarray
    out: _Output
    xp: np.ndarray
    target: np.ndarray
    forward: object           # (inputs, weights) -> accumulators, as the layer computes
    live: np.ndarray

    def __post_init__(self):
        self.want = self.out.real(self.target)[:, self.live]     # the dense int8 output
        self.energy = float((self.want ** 2).sum()) or 1.0

    def acc(self, w, b) -> np.ndarray:
        return self.forward(self.xp, w.astype(np.float64)) + b

    def error(self, wq, bq, sq) -> float:
        got = self.out.real(self.acc(wq, bq) * sq)[:, self.live]
        return float(((got - self.want) ** 2).sum()) / self.energy


def _problem(editor: LayerParams, layer: str, dense_rows, rows, zp: int, forward,
             kept_rows) -> tuple[_Problem, LayerFix, dict]:
    """The layer's problem, its objective as it stands ("none") and with its mean shift
    folded into the bias ("bias"): (problem, fix so far, {recovery: (w, b, s)})."""
    w, b, s = editor.get(layer)
    live = np.ones(w.shape[0], bool) if kept_rows is None else kept_rows[:w.shape[0]]
    target = (forward(dense_rows.astype(np.float64) - zp, w.astype(np.float64)) + b) * s
    p = _Problem(layer, w, b, s, editor.output(layer), rows.astype(np.float64) - zp,
                 target, forward, live)
    shift = np.round((target / s - p.acc(w, b)).mean(axis=0)).astype(np.int64)
    cand = {"bias": (w, b + shift, s)}
    fix = LayerFix(layer, "none", {"none": p.error(w, b, s)})
    fix.errors["bias"] = p.error(*cand["bias"])
    return p, fix, cand


def _matmul(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    return x @ w.T                                       # (rows, cols) x (out, cols)


def _per_channel(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    return np.einsum("nct,ct->nc", x, w)                 # (rows, channels, taps)


def _fit_depthwise(editor: LayerParams, layer: str, dense_rows, rows, zp: int, method: str,
                   kept_rows) -> LayerFix:
    """A depthwise layer after the prune: each channel's mean output shift folded into its
    bias, for bias and lsq alike (its taps are kept: refitting a channel's 9 taps did no
    better on the held-out digits than the shift, docs/recovery.md)."""
    _, fix, cand = _problem(editor, layer, dense_rows, rows, zp, _per_channel, kept_rows)
    return _choose(editor, fix, cand, method)


def _fit(editor: LayerParams, layer: str, dense_rows, rows, zp: int, gone: np.ndarray,
         method: str, kept_rows=None) -> LayerFix:
    """A consumer (CONV_2D, FULLY_CONNECTED) refitted; `kept_rows` are its output channels
    that stay, when it makes pruned channels itself (the others do not count)."""
    p, fix, cand = _problem(editor, layer, dense_rows, rows, zp, _matmul, kept_rows)
    if method == "lsq":
        ridge = _ridge(p.xp, p.target, p.acc(p.w, p.b) * p.s, gone)
        if ridge is None:
            fix.note = ("lsq would not generalise (on the calibration rows held out of "
                        "the fit it did worse than bias)")
        else:
            cand["lsq"] = _lsq(p.xp, p.target, p.s, gone, editor.per_channel(layer), ridge,
                               p.out)
            fix.errors["lsq"] = p.error(*cand["lsq"])
    return _choose(editor, fix, cand, method)


def _choose(editor: LayerParams, fix: LayerFix, cand: dict, method: str) -> LayerFix:
    """Apply the recovery asked for, or the simplest one it is not better than."""
    best = "none"
    for name in ("bias", "lsq"):  # each only when it is no worse than the simpler ones
        if name in fix.errors and fix.errors[name] <= fix.errors[best] \
                and _fits_int32(cand[name][1]):
            best = name
    if best != method and not fix.note and method in fix.errors:
        fix.note = (f"{method} fell back to {best} (objective {fix.errors[method]:.3g} vs "
                    f"{fix.errors[best]:.3g} on the calibration rows)")
    fix.applied = best
    if best != "none":
        editor.set(fix.layer, *cand[best])
    return fix


def _design(xp: np.ndarray, gone: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(kept columns, [xp_kept, 1]): the least squares' inputs, the bias as the last."""
    kept = np.flatnonzero(~gone)
    return kept, np.hstack([xp[:, kept], np.ones((len(xp), 1))])


def _ridge_solve(a: np.ndarray, y: np.ndarray, ridge: float) -> np.ndarray:
    """theta minimising |a theta - y|^2 plus the ridge on every coefficient but the last
    (the bias), relative to the mean diagonal of the inputs' Gram matrix."""
    k = a.shape[1] - 1
    gram = a.T @ a
    damp = ridge * float(np.trace(gram[:-1, :-1])) / max(k, 1)
    gram[np.arange(k), np.arange(k)] += damp + 1e-9
    return np.linalg.solve(gram, a.T @ y)


def _solve(xp: np.ndarray, target: np.ndarray, gone: np.ndarray, ridge: float):
    """(kept columns, real weight rows, real bias) fitting `target` from the kept
    columns of `xp` (_ridge_solve)."""
    kept, a = _design(xp, gone)
    theta = _ridge_solve(a, target, ridge)             # (kept + 1, out), real units
    return kept, theta[:-1].T, theta[-1]


def _ridge(xp: np.ndarray, target: np.ndarray, now: np.ndarray, gone: np.ndarray):
    """The damping that does best on a quarter of the calibration rows held out of the
    fit, or None when even the best does worse there than the bias shift (fitted on the
    same rows) on `now`, the layer's output as it stands: too few rows for its columns,
    and the fit would learn the calibration set rather than the layer."""
    held = np.arange(len(xp)) % HOLD_OUT == HOLD_OUT - 1
    if held.sum() < 2 or (~held).sum() < 2:
        return None
    shift = (target[~held] - now[~held]).mean(axis=0)
    best, best_err = None, float(((target[held] - now[held] - shift) ** 2).sum())
    for ridge in RIDGES:
        kept, coef, icpt = _solve(xp[~held], target[~held], gone, ridge)
        err = float(((xp[held][:, kept] @ coef.T + icpt - target[held]) ** 2).sum())
        if err < best_err:
            best, best_err = ridge, err
    return best


def _lsq(xp: np.ndarray, target: np.ndarray, s: np.ndarray, gone: np.ndarray,
         per_channel: bool, ridge: float, out: _Output):
    """Kept weights and bias refitted (ridge least squares, real units), then refitted
    again per output channel on the rows the layer's activation (`out`) does not clamp
    away (where the dense output and the fit are both at the clamp, any value past it is
    as good: a ReLU's dead rows do not pull the fit), and requantized."""
    kept, a = _design(xp, gone)
    theta = _ridge_solve(a, target, ridge)
    coef, icpt = theta[:-1].T, theta[-1]
    lo = (out.lo - out.zp - 0.5) * out.s_out / out.s_in  # accumulators clamped to lo
    hi = (out.hi - out.zp + 0.5) * out.s_out / out.s_in
    for _ in range(CLAMP_ROUNDS):
        pred = a[:, :-1] @ coef.T + icpt
        for i in range(coef.shape[0]):
            dead = ((target[:, i] <= lo) & (pred[:, i] <= lo)) | \
                   ((target[:, i] >= hi) & (pred[:, i] >= hi))
            if (~dead).sum() <= len(kept):
                continue
            one = _ridge_solve(a[~dead], target[~dead, i], ridge)
            coef[i], icpt[i] = one[:-1], one[-1]
    big = np.abs(coef).max(axis=1)
    if not per_channel:
        big = np.full_like(big, big.max())
    scale = np.where(big > 0, big / 127.0, s)           # real value of one weight step
    scale = scale.astype(np.float32).astype(np.float64)  # as the file stores it
    wq = np.zeros((coef.shape[0], gone.size), np.int8)
    wq[:, kept] = np.clip(np.round(coef / scale[:, None]), -127, 127).astype(np.int8)
    bq = np.round(icpt / scale).astype(np.int64)
    return wq, bq, scale


def _fits_int32(b: np.ndarray) -> bool:
    return bool((np.abs(b) < 2 ** 31 - 1).all())


# -- merge, data-free ---------------------------------------------------------------------

def _merge(g: Graph, groups: list[Group], keeps: dict, consumers: list[Reader],
           editor: LayerParams) -> list[LayerFix]:
    fixes: dict[str, LayerFix] = {r.layer: LayerFix(r.layer, "none") for r in consumers}
    for grp in groups:
        keep = keeps.get(grp.number)
        if keep is None or keep.all():
            continue
        makers = grp.producers()
        if len(makers) != 1 or g.tm.placements[makers[0].layer].op == "DEPTHWISE_CONV_2D":
            for r in consumers:
                if r.tensor in grp.positions and not fixes[r.layer].note:
                    fixes[r.layer].note = (f"group {grp.number} not merged (its channels "
                                           f"are made by more than one layer)")
            continue
        maker = makers[0]
        op = g.ops[g.tm.placements[maker.layer].operators[0][1]]
        act = int(getattr(op.options, "fusedActivationFunction", 0) or 0)
        if act not in _MERGEABLE_ACTIVATIONS:
            continue
        pairs = _pairs(editor, maker, keep)
        if not pairs:
            continue
        for r in consumers:
            pos = grp.positions.get(r.tensor)
            if pos is None:
                continue
            w, b, s = editor.get(r.layer)
            acc = w.astype(np.float64)
            cols = np.asarray(r.cols)
            merged = 0
            for j, k, ratio in pairs:
                pj, pk = np.flatnonzero(pos == j), np.flatnonzero(pos == k)
                for a, c in zip(pj, pk):
                    acc[:, cols[c]] += ratio * acc[:, cols[a]]
                    acc[:, cols[a]] = 0
                merged += 1
            wq, sq = _requantize_grow(acc, s, editor.per_channel(r.layer))
            bq = np.round(b * s / sq).astype(np.int64)
            editor.set(r.layer, wq, bq, sq)
            fixes[r.layer].applied = "merge"
            fixes[r.layer].merged += merged
    return list(fixes.values())


def _pairs(editor: LayerParams, maker, keep: np.ndarray) -> list[tuple[int, int, float]]:
    """(removed channel, kept channel, ratio) for every removed channel whose producer
    row is within MERGE_MIN_COS of a kept one's (real units, bias included)."""
    w, b, s = editor.get(maker.layer)
    own = maker.index >= 0
    rows = np.full(keep.size, -1)
    rows[maker.index[own]] = np.flatnonzero(own)
    vec = np.hstack([w.astype(np.float64), b[:, None].astype(np.float64)]) * s[:, None]
    norms = np.linalg.norm(vec, axis=1)
    kept_ch = [k for k in np.flatnonzero(keep) if rows[k] >= 0 and norms[rows[k]] > 0]
    out = []
    for j in np.flatnonzero(~keep):
        if rows[j] < 0 or norms[rows[j]] == 0 or not kept_ch:
            continue
        vj = vec[rows[j]]
        cos = [float(vj @ vec[rows[k]]) / (norms[rows[j]] * norms[rows[k]]) for k in kept_ch]
        best = int(np.argmax(cos))
        if cos[best] >= MERGE_MIN_COS:
            k = kept_ch[best]
            out.append((int(j), int(k), float(vj @ vec[rows[k]]) / norms[rows[k]] ** 2))
    return out


def _requantize_grow(acc: np.ndarray, s: np.ndarray, per_channel: bool):
    """int8 weights for real-valued accumulator weights `acc` (in steps of scale s): the
    scale grows only where a weight would pass 127."""
    big = np.abs(acc).max(axis=1)
    if not per_channel:
        big = np.full_like(big, big.max())
    grow = np.maximum(big / 127.0, 1.0)
    sq = (s * grow).astype(np.float32).astype(np.float64)
    wq = np.clip(np.round(acc * s[:, None] / sq[:, None]), -127, 127).astype(np.int8)
    return wq, sq


# -- reading and writing a layer's weights, scales and bias (object API) -----------------

class LayerParams:
    """A layer's int8 2-D weights, int32 bias and per-row scales in a model being edited
    (schema object API), and writing them back."""

    def __init__(self, g: Graph, model):
        self.g, self.model = g, model
        self.sub = model.subgraphs[0]

    def _op(self, layer: str):
        return self.g.ops[self.g.tm.placements[layer].operators[0][1]]

    def _buffer(self, t: int) -> np.ndarray:
        return np.asarray(self.model.buffers[self.sub.tensors[t].buffer].data, np.uint8)

    def cols(self, layer: str) -> int:
        return int(np.prod(self.g.shape(self._op(layer).inputs[1])[1:]))

    def output(self, layer: str) -> _Output:
        op = self._op(layer)
        qi = self.sub.tensors[op.inputs[0]].quantization
        qo = self.sub.tensors[op.outputs[0]].quantization
        s_out, zp = float(qo.scale[0]), int(qo.zeroPoint[0])
        act = int(getattr(op.options, "fusedActivationFunction", 0) or 0)
        lo, hi = -128, 127
        if act in (1, 2, 3):  # RELU, RELU_N1_TO_1, RELU6
            lo = max(lo, zp + (round(-1 / s_out) if act == 2 else 0))
        if act in (2, 3):
            hi = min(hi, zp + round((1 if act == 2 else 6) / s_out))
        return _Output(float(qi.scale[0]), s_out, zp, lo, hi)

    def per_channel(self, layer: str) -> bool:
        q = self.sub.tensors[self._op(layer).inputs[1]].quantization
        return len(q.scale) > 1

    def get(self, layer: str):
        op = self._op(layer)
        wt = op.inputs[1]
        shape = self.g.shape(wt)
        w = self._buffer(wt).view(np.int8)
        if op.kind == "DEPTHWISE_CONV_2D":  # (1, kh, kw, channels): a row per channel
            w = w.reshape(-1, shape[3]).T
            shape = (shape[3],)
        else:
            w = w.reshape(shape[0], -1)
        bias = op.inputs[2] if len(op.inputs) > 2 else -1
        if bias < 0:
            raise ModelError(f"layer {layer!r} has no bias tensor, which a recovery "
                             f"writes; --recover none removes the channels without one")
        b = self._buffer(bias).view("<i4").astype(np.int64)
        scale = np.asarray(self.sub.tensors[wt].quantization.scale, np.float64)
        return w, b, np.broadcast_to(scale, (shape[0],)).copy()

    def set(self, layer: str, w: np.ndarray, b: np.ndarray, s: np.ndarray) -> None:
        op = self._op(layer)
        wt, bias = op.inputs[1], op.inputs[2]
        if op.kind == "DEPTHWISE_CONV_2D":
            w = w.T
        self._store(wt, np.ascontiguousarray(w, np.int8))
        self._store(bias, b.astype("<i4"))
        qw = self.sub.tensors[wt].quantization
        per = len(qw.scale) > 1
        qw.scale = [float(x) for x in (s if per else s[:1])]
        qi = self.sub.tensors[op.inputs[0]].quantization
        qb = self.sub.tensors[bias].quantization
        if qb is not None and qb.scale is not None and len(qb.scale) and qi is not None:
            s_in = float(np.float32(qi.scale[0]))
            qb.scale = [float(np.float32(s_in) * np.float32(x)) for x in qw.scale]

    def _store(self, t: int, values: np.ndarray) -> None:
        """New bytes for a tensor in a buffer of its own (a shared buffer stays as the
        other tensors see it)."""
        fb_buffer = type(self.model.buffers[0])
        tensor = self.sub.tensors[t]
        users = sum(1 for x in self.sub.tensors if x.buffer == tensor.buffer)
        if users > 1:
            self.model.buffers.append(fb_buffer())
            tensor.buffer = len(self.model.buffers) - 1
        self.model.buffers[tensor.buffer].data = np.frombuffer(values.tobytes(), np.uint8)
