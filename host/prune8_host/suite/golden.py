"""Golden vectors: cases computed by the twin, for the board to check itself against.

Like the test vectors TensorFlow Lite Micro and CMSIS-NN generate on the host for their
kernels: every scorer, both tie rules, every threshold method, rows and columns, edge
cases at 1 weight and full capacity, and every error, each with the expected scores,
mask and pruned weights (or the expected error class and message).

File format (read on the board by scripts/test_golden.py): GOLDEN_MAGIC, GOLDEN_HEAD
(case count), then per case GOLDEN_CASE (header length), the header (JSON), then the
blobs the header lists, in order (prune8.protocol).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field

import numpy as np

from prune8 import errors
from prune8.formats import GOLDEN_CASE, GOLDEN_HEAD, GOLDEN_MAGIC
from prune8_host import twin
from prune8_host.twin import scorers
from prune8_host.twin.scorers import (
    ACT_COLS,
    ACTIVATIONS,
    BLOCK,
    COLS,
    COUNT,
    MULTS,
    ROWS,
    SEED,
    SUMSQ,
    WEIGHTS,
)


@dataclass
class Case:
    name: str
    op: str                      # a scorer, or prune_rows / prune_cols
    w: np.ndarray                # int8, flat
    rows: int | None = None
    cols: int | None = None
    a: np.ndarray | None = None  # activations (gradient)
    grad_cols: int | None = None  # cols= passed to gradient (None: per weight)
    mask: dict | None = None     # mask()/prune_rows() keyword arguments
    buffer: str = "bytearray"    # how the board holds w: bytearray or array
    cap: tuple[int, int] = (2048, 64)
    extra: dict = field(default_factory=dict)  # seed, sumsq, block, nm, schedule args
    blobs: dict = field(default_factory=dict)
    expect: object = "ok"        # "ok" or [error class name, message, "score"|"mask"]

    def header(self) -> dict:
        return {"name": self.name, "op": self.op, "rows": self.rows, "cols": self.cols,
                "grad_cols": self.grad_cols, "mask": self.mask, "buffer": self.buffer,
                "cap": list(self.cap), "expect": self.expect, "extra": self.extra,
                "blobs": [[k, len(v)] for k, v in self.blobs.items()]}


def _error(e: Exception, stage: str) -> list:
    return [type(e).__name__, str(e), stage]


def _inputs(c: Case) -> dict:
    """A case's kernel inputs, by the scorer table's names (scorers.py)."""
    x = c.extra
    return {WEIGHTS: c.w, ROWS: c.rows, COLS: c.cols, ACTIVATIONS: c.a, ACT_COLS: c.grad_cols,
            COUNT: x.get("n"), SEED: x.get("seed"), SUMSQ: x.get("sumsq"),
            MULTS: x.get("mults"), BLOCK: x.get("block")}


def compute(c: Case) -> Case:
    """Fill the expected blobs (or the expected error) of a case with the twin."""
    c.blobs = {"w": c.w.tobytes()}
    if c.a is not None:
        c.blobs["a"] = c.a.tobytes()
    if c.op == "schedule":  # extra: steps, final, initial, at (the steps to evaluate)
        x = c.extra
        try:
            x["values"] = [twin.sparsity_at(t, x["steps"], x["final"], x["initial"])
                           for t in x["at"]]
        except errors.Prune8Error as e:
            c.expect = _error(e, "score")
        return c
    if c.op in ("prune_rows", "prune_cols"):
        fn = twin.prune_rows if c.op == "prune_rows" else twin.prune_cols
        try:
            words, pruned = fn(c.w, c.rows, c.cols, profile=c.cap, **c.mask)
        except errors.Prune8Error as e:
            c.expect = _error(e, "mask")
            return c
        c.blobs["mask"] = words.astype("<u4").tobytes()
        c.blobs["applied"] = pruned.tobytes()
        return c
    scorer = scorers.find(c.op)
    try:
        s = scorer.score(_inputs(c), profile=c.cap).reshape(-1)
    except errors.Prune8Error as e:
        c.expect = _error(e, "score")
        return c
    c.blobs["scores"] = s.astype("<i2" if scorer.per_weight else "<i4").tobytes()
    if c.mask is None:
        return c
    try:
        if "nm" in c.extra:
            words = twin.nm_mask(s, c.rows, c.cols, *c.extra["nm"])
        elif "channel" in c.extra:
            words = twin.prune_mask_channels(s, c.rows, c.cols, **c.mask)
        else:
            words = twin.prune_mask(s, **c.mask)
    except errors.Prune8Error as e:
        c.expect = _error(e, "mask")
        return c
    c.blobs["mask"] = words.astype("<u4").tobytes()
    if scorer.per_weight:
        c.blobs["applied"] = twin.apply_mask(c.w, words).tobytes()
    return c


def _values(rng, n: int, kind: str) -> np.ndarray:
    if kind == "full":
        v = rng.integers(-128, 128, n)
    elif kind == "ties":
        v = rng.choice(rng.integers(-128, 128, 3), n)
    else:  # "extremes"
        v = rng.choice([-128, 127, 0, -1], n)
    return v.astype(np.int8)


def generate(seed: int = 8, max_weights: int = 2048, max_units: int = 64) -> list[Case]:
    """The case list: deterministic for a seed and a capacity."""
    rng = np.random.default_rng(seed)
    cap = (max_weights, max_units)
    full_cols = max_units
    full_rows = max(1, min(max_units, max_weights // full_cols))
    shapes = [(1, 1), (3, 5), (8, 8), (16, 33), (full_rows, full_cols)]
    cases: list[Case] = []

    def add(**kw):
        cases.append(compute(Case(cap=cap, **kw)))

    # Every scorer x shape x value mix, with a mask drawn over ties, methods and options.
    for scorer in scorers.TABLE:
        for rows, cols in shapes:
            for kind in ("full", "ties", "extremes"):
                w = _values(rng, rows * cols, kind)
                extra, a, grad_cols = _draw_inputs(rng, scorer, rows, cols,
                                                   twin.max_blocks(cap))
                mask = {"sparsity_bp": int(rng.choice([0, 1, 2500, 5000, 9999, 10000])),
                        "tie": str(rng.choice(twin.TIES)),
                        "method": str(rng.choice(twin.SELECTIONS)),
                        "min_keep": int(rng.choice([0, 1, 1, 3])),
                        "min_score": int(rng.choice([0, 0, 0, 2, 40]))}
                units = scorers.unit_count(scorer.unit, rows, cols, extra.get("block"))
                mask["min_keep"] = min(mask["min_keep"], units)
                add(name=f"{scorer.name}-{rows}x{cols}-{kind}", op=scorer.name, w=w, rows=rows,
                    cols=cols, a=a, grad_cols=grad_cols, mask=mask, extra=extra,
                    buffer=str(rng.choice(["bytearray", "array"])))
    # Per-channel masks: the same k in every row, over per-weight scorers.
    for op in ("magnitude", "scaled", "mincut"):
        for rows, cols in shapes[1:]:
            for kind in ("full", "ties"):
                w = _values(rng, rows * cols, kind)
                extra = {"channel": True}
                if op == "scaled":
                    extra["mults"] = [int(v) for v in rng.integers(0, 32769, rows)]
                mask = {"sparsity_bp": int(rng.choice([0, 2500, 5000, 9999, 10000])),
                        "tie": str(rng.choice(twin.TIES)),
                        "method": str(rng.choice(twin.SELECTIONS)),
                        "min_keep": min(cols, int(rng.choice([0, 1, 3]))),
                        "min_score": int(rng.choice([0, 0, 2, 40]))}
                add(name=f"channel-{op}-{rows}x{cols}-{kind}", op=op, w=w, rows=rows,
                    cols=cols, mask=mask, extra=extra,
                    buffer=str(rng.choice(["bytearray", "array"])))
    # N:M patterns over a per-weight scorer.
    for n_, m_ in ((2, 4), (1, 4), (3, 8)):
        for rows, cols in ((1, 8), (8, 16), (full_rows, full_cols)):
            add(name=f"nm-{n_}-{m_}-{rows}x{cols}", op="l2", w=_values(rng, rows * cols, "ties"),
                rows=rows, cols=cols, mask={}, extra={"nm": [n_, m_]})
    # The schedule at every step of a few walks.
    for steps, final, initial in ((10, 9000, 0), (7, 5000, 2000), (3, 0, 8000),
                                  (100, 10000, 0)):
        add(name=f"schedule-{steps}-{final}-{initial}", op="schedule", w=np.zeros(1, np.int8),
            extra={"steps": steps, "final": final, "initial": initial,
                   "at": list(range(steps + 1))})
    # Threshold methods agree at full capacity (bubble at n = max_weights included).
    w = _values(rng, full_rows * full_cols, "ties")
    for method in twin.SELECTIONS:
        for tie in twin.TIES:
            add(name=f"method-{method}-{tie}-full", op="magnitude", w=w, rows=full_rows,
                cols=full_cols, mask={"sparsity_bp": 3333, "tie": tie, "method": method})
    # Structured pruning, rows and columns.
    for op in ("prune_rows", "prune_cols"):
        for rows, cols in shapes[1:]:
            for bp in (0, 5000, 10000):
                add(name=f"{op}-{rows}x{cols}-{bp}", op=op, w=_values(rng, rows * cols, "ties"),
                    rows=rows, cols=cols,
                    mask={"sparsity_bp": bp, "tie": "exact", "min_keep": 1, "method": "auto"})
    # Every error of docs/spec.md §6.1, with its exact message.
    w8 = _values(rng, 8, "full")
    bad = [
        ("empty", dict(op="magnitude", w=np.zeros(0, np.int8))),
        ("empty-layer", dict(op="mincut", w=np.zeros(0, np.int8), rows=0, cols=0)),
        ("shape-mismatch", dict(op="mincut", w=w8, rows=3, cols=3)),
        ("bad-shape", dict(op="rows", w=w8, rows=0, cols=8)),
        ("activations-per-weight", dict(op="gradient", w=w8, a=w8[:5])),
        ("activations-per-column", dict(op="gradient", w=w8, a=w8[:3], grad_cols=4)),
        ("cols-not-dividing", dict(op="gradient", w=w8, a=w8[:3], grad_cols=3)),
        ("capacity-weights", dict(op="magnitude", w=np.ones(max_weights + 1, np.int8))),
        ("capacity-rows", dict(op="mincut", w=np.ones(max_units + 1, np.int8),
                               rows=max_units + 1, cols=1)),
        ("capacity-cols", dict(op="cols", w=np.ones(max_units + 1, np.int8), rows=1,
                               cols=max_units + 1)),
        ("sparsity-range", dict(op="magnitude", w=w8, mask={"sparsity": 1.5})),
        ("sparsity-bp", dict(op="magnitude", w=w8, mask={"sparsity_bp": 10001})),
        ("sparsity-missing", dict(op="magnitude", w=w8, mask={})),
        ("sparsity-both", dict(op="magnitude", w=w8, mask={"sparsity": 0.5,
                                                           "sparsity_bp": 5000})),
        ("sparsity-not-whole", dict(op="magnitude", w=w8, mask={"sparsity": 0.12345})),
        ("min-keep", dict(op="magnitude", w=w8, mask={"sparsity_bp": 5000, "min_keep": 9})),
        ("min-keep-negative", dict(op="magnitude", w=w8, mask={"sparsity_bp": 5000,
                                                               "min_keep": -1})),
        ("min-score", dict(op="magnitude", w=w8, mask={"sparsity_bp": 5000, "min_score": -1})),
        ("tie-name", dict(op="magnitude", w=w8, mask={"sparsity_bp": 5000, "tie": "loose"})),
        ("method-name", dict(op="magnitude", w=w8, mask={"sparsity_bp": 5000,
                                                         "method": "quick"})),
        ("rows-min-keep", dict(op="prune_rows", w=w8, rows=2, cols=4,
                               mask={"sparsity_bp": 5000, "min_keep": 3})),
        ("cols-tie", dict(op="prune_cols", w=w8, rows=2, cols=4,
                          mask={"sparsity_bp": 5000, "tie": "x"})),
        ("random-seed", dict(op="random", w=w8, extra={"n": 8, "seed": 2**30})),
        ("random-empty", dict(op="random", w=w8, extra={"n": 0, "seed": 1})),
        ("wanda-sums", dict(op="wanda", w=w8, rows=2, cols=4,
                            extra={"sumsq": [1, 2, 3]})),
        ("wanda-sum-range", dict(op="wanda", w=w8, rows=2, cols=4,
                                 extra={"sumsq": [1, -2, 3, 4]})),
        ("blocks-fit", dict(op="blocks", w=w8, rows=2, cols=4, extra={"block": [3, 2]})),
        ("blocks-size", dict(op="blocks", w=w8, rows=2, cols=4, extra={"block": [0, 2]})),
        ("nm-values", dict(op="l2", w=w8, rows=2, cols=4, mask={}, extra={"nm": [3, 2]})),
        ("nm-cols", dict(op="l2", w=w8, rows=2, cols=4, mask={}, extra={"nm": [1, 3]})),
        ("schedule-step", dict(op="schedule", w=w8, extra={"steps": 2, "final": 5000,
                                                          "initial": 0, "at": [3]})),
        ("schedule-steps", dict(op="schedule", w=w8, extra={"steps": 0, "final": 5000,
                                                           "initial": 0, "at": [0]})),
        ("schedule-bp", dict(op="schedule", w=w8, extra={"steps": 4, "final": 10001,
                                                        "initial": 0, "at": [1]})),
        ("scaled-count", dict(op="scaled", w=w8, rows=2, cols=4, extra={"mults": [1]})),
        ("scaled-range", dict(op="scaled", w=w8, rows=2, cols=4,
                              extra={"mults": [1, 32769]})),
        ("channel-unit-scores", dict(op="rows", w=w8, rows=2, cols=4, extra={"channel": True},
                                     mask={"sparsity_bp": 5000})),
        ("channel-min-keep", dict(op="magnitude", w=w8, rows=2, cols=4,
                                  extra={"channel": True},
                                  mask={"sparsity_bp": 5000, "min_keep": 5})),
        ("channel-shape", dict(op="magnitude", w=w8, rows=3, cols=3, extra={"channel": True},
                               mask={"sparsity_bp": 5000})),
        ("channel-tie", dict(op="magnitude", w=w8, rows=2, cols=4, extra={"channel": True},
                             mask={"sparsity_bp": 5000, "tie": "x"})),
    ]
    for name, kw in bad:
        add(name=f"error-{name}", **kw)
        assert cases[-1].expect != "ok", name
    return cases


def _draw_inputs(rng, scorer: scorers.Scorer, rows: int, cols: int, max_blocks: int):
    """Random inputs for what a scorer needs besides the weights and the shape, drawn in
    the order of its needs: (extra, activations, grad_cols) of its case."""
    extra, a, grad_cols = {}, None, None
    for need in scorer.needs:
        if need == COUNT:
            extra["n"] = rows * cols
        elif need == SEED:
            extra["seed"] = int(rng.integers(0, 2**30))
        elif need == ACTIVATIONS:  # one per column or one per weight, then their values
            grad_cols = cols if rng.integers(2) == 1 else None
            a = _values(rng, grad_cols or rows * cols, "full")
        elif need == SUMSQ:
            extra["sumsq"] = errors_free_sumsq(rng, cols)
        elif need == MULTS:
            extra["mults"] = [int(v) for v in rng.choice([0, 1, 12345, 32767, 32768], rows)]
        elif need == BLOCK:
            block = [_divisor(rng, rows), _divisor(rng, cols)]
            too_many = scorers.unit_count("block", rows, cols, block) > max_blocks
            extra["block"] = [rows, cols] if too_many else block
    return extra, a, grad_cols


def errors_free_sumsq(rng, cols: int) -> list[int]:
    """Sums of squares as the board would accumulate them: 0..2**30-1, extremes included."""
    pick = rng.integers(0, 4, cols)
    vals = np.where(pick == 0, 0, np.where(pick == 1, errors.MAX_SMALL,
                                           rng.integers(0, 40 * 16384, cols)))
    return [int(v) for v in vals]


def _divisor(rng, size: int) -> int:
    return int(rng.choice([d for d in range(1, min(size, 8) + 1) if size % d == 0]))


def write(path, cases: list[Case]) -> int:
    """Write the golden file; returns its size."""
    out = bytearray(GOLDEN_MAGIC + struct.pack(GOLDEN_HEAD, len(cases)))
    for c in cases:
        head = json.dumps(c.header(), separators=(",", ":")).encode()
        out += struct.pack(GOLDEN_CASE, len(head)) + head
        for blob in c.blobs.values():
            out += blob
    with open(path, "wb") as f:
        f.write(out)
    return len(out)
