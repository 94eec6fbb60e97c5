"""Scores (docs/spec.md §2): the twin of prune8.scores.

Vectorized NumPy; loops run over blocks of a million weights, never over weights.
Scores come back in the shape of `w` as np.int16; row, column and block L1 as np.int32.
"""

from __future__ import annotations

import numpy as np

from prune8 import errors

from . import check, threads

MAX_SCORE = 32767
ABS_BLOCK = 1 << 18  # weights per block of abs16: its int8 buffer stays in L2
MINCUT_BLOCK = 1 << 18  # weights per block of min-cut's int32 products (1 MB, in L2)
FLOW_ROWS = 256  # rows per block of the flows: 256 * 128 fits a uint16 column sum


def abs_u8(w: np.ndarray, out: np.ndarray) -> np.ndarray:
    """|w| of int8 weights as uint8, computed into the int8 buffer `out` (same size):
    abs(-128) wraps to -128 in int8, which is 128 read as uint8, so |w| is exact."""
    return np.abs(w, out=out).view(np.uint8)


def abs16(w: np.ndarray) -> np.ndarray:
    """|w| of int8 weights as int16, in w's shape. Taken in int8 block by block
    (abs_u8), then widened: one pass over the int16 output instead of a widening copy
    and an abs over it."""
    w = np.asarray(w)
    out = np.empty(w.shape, np.int16)
    flat, src = out.reshape(-1), w.reshape(-1)

    def part(b0, b1):
        buf = np.empty(min(src.size, ABS_BLOCK), np.int8)
        for i in range(b0 * ABS_BLOCK, min(src.size, b1 * ABS_BLOCK), ABS_BLOCK):
            c = src[i:i + ABS_BLOCK]
            flat[i:i + c.size] = abs_u8(c, buf[:c.size])

    threads.split(part, -(-src.size // ABS_BLOCK), src.size)
    return out


def magnitude_scores(w, *, profile=None) -> np.ndarray:
    """|w| as int16 (0..128), in the shape of w."""
    w = check.int8(w, "weights")
    if w.size == 0:
        raise errors.empty("weights")
    check.capacity(check.limits(profile), w.size)
    return abs16(w)


def gradient_scores(w, a, cols=None, *, profile=None) -> np.ndarray:
    """Gradient proxy |w * a| >> 4 as int16 (0..1024).

    `a` holds one activation per weight, or one per input column (length `cols`,
    broadcast down the rows). A 2-D `w` gives `cols` when it is not passed.
    """
    w = check.int8(w, "weights")
    a = check.int8(a, "activations")
    n = w.size
    if n == 0:
        raise errors.empty("weights")
    if cols is None and w.ndim == 2:
        cols = w.shape[1]
    if cols is not None:
        if not check.is_int(cols) or cols < 1:
            raise errors.bad_cols(cols)
        cols = int(cols)
        if n % cols:
            raise errors.cols_mismatch(n, cols)
    if a.size == n:
        aa = abs16(a).reshape(w.shape)
    elif cols is not None and a.size == cols:
        aa = abs16(a).reshape(-1)
    else:
        raise errors.activations_mismatch(a.size, n, cols)
    check.capacity(check.limits(profile), n, None, cols)
    if aa.shape != w.shape:  # one per column: broadcast down the rows
        out = (abs16(w).reshape(-1, cols) * aa).reshape(w.shape)
    else:
        out = abs16(w) * aa
    out >>= 4  # |w| * |a| <= 128 * 128 = 16384 fits int16
    return out


def _parallel(fn, rows: int, cols: int, step: int) -> list:
    """fn(r0, r1) over row ranges that start on multiples of step (threads.split)."""
    blocks = -(-rows // step)
    return threads.split(lambda b0, b1: fn(b0 * step, min(rows, b1 * step)), blocks,
                         rows * cols)


def _abs_rows(flat: np.ndarray, cols: int, r0: int, r1: int, buf: np.ndarray) -> np.ndarray:
    """|w| of rows r0..r1 as uint8 (abs_u8), in buf."""
    return abs_u8(flat[r0 * cols:r1 * cols], buf[:(r1 - r0) * cols]).reshape(r1 - r0, cols)


def _flows(flat: np.ndarray, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column sums of |w| (int64), block by block of FLOW_ROWS rows: a block's
    column sums fit uint16 (FLOW_ROWS * 128 <= 65535), the cheapest accumulator."""
    row_flow = np.empty(rows, np.int64)

    def part(r0, r1):
        col = np.zeros(cols, np.int64)
        buf = np.empty(min(r1 - r0, FLOW_ROWS) * cols, np.int8)
        for r in range(r0, r1, FLOW_ROWS):
            a = _abs_rows(flat, cols, r, min(r1, r + FLOW_ROWS), buf)
            row_flow[r:r + a.shape[0]] = a.sum(axis=1, dtype=np.int64 if cols >= 1 << 24
                                                else np.int32)
            col += a.sum(axis=0, dtype=np.uint16)
        return col

    return row_flow, sum(_parallel(part, rows, cols, FLOW_ROWS))


def mincut_scores(w, rows, cols, *, profile=None) -> np.ndarray:
    """Min-cut edge importance: min(32767, (|w| * min(col_flow, row_flow)) >> 10)."""
    shape = np.shape(w)
    flat, rows, cols = check.layer(w, rows, cols, profile)
    row_flow, col_flow = _flows(flat, rows, cols)
    # The product is at most 128 * min(max flow); use int32 while that fits.
    bound = 128 * int(min(row_flow.max(), col_flow.max()))
    wide = np.int32 if bound < 2**31 else np.int64
    row_flow, col_flow = row_flow.astype(wide), col_flow.astype(wide)
    out = np.empty((rows, cols), np.int16)
    step = max(1, MINCUT_BLOCK // cols)

    def part(r0, r1):  # blocks of rows: the temporaries stay in cache
        m = np.empty((min(step, r1 - r0), cols), wide)
        buf = np.empty(m.size, np.int8)
        # NumPy's minimum is several times faster array-to-array than against a scalar
        # or a broadcast row: the column flows and the cap are spelled out per block.
        col_block = np.broadcast_to(col_flow, m.shape).copy()
        cap = np.full(m.shape, MAX_SCORE, wide)
        for r in range(r0, r1, step):
            a = _abs_rows(flat, cols, r, min(r1, r + step), buf)
            h = a.shape[0]
            mb = m[:h]
            np.minimum(col_block[:h], row_flow[r:r + h, None], out=mb)
            np.multiply(mb, a, out=mb)
            np.right_shift(mb, 10, out=mb)
            np.minimum(mb, cap[:h], out=mb)
            out[r:r + h] = mb

    _parallel(part, rows, cols, step)
    return out.reshape(shape)


def row_scores(w, rows, cols, *, profile=None) -> np.ndarray:
    """L1 norm of each row (output neuron), int32, not saturated."""
    flat, rows, cols = check.layer(w, rows, cols, profile)
    return abs16(flat).reshape(rows, cols).sum(axis=1, dtype=np.int32)


def col_scores(w, rows, cols, *, profile=None) -> np.ndarray:
    """L1 norm of each column (input), int32, not saturated."""
    flat, rows, cols = check.layer(w, rows, cols, profile)
    return abs16(flat).reshape(rows, cols).sum(axis=0, dtype=np.int32)


def l2_scores(w, *, profile=None) -> np.ndarray:
    """Squared magnitude w * w as int16 (0..16384), in the shape of w."""
    s = magnitude_scores(w, profile=profile)
    s *= s  # 128 * 128 = 16384 fits int16
    return s


_LCG_A, _LCG_C, _LCG_M = 29925, 12345, 1 << 30
_LCG_BLOCK = 4096


def _lcg_jumps(k: int) -> tuple[np.ndarray, np.ndarray]:
    """A[j], C[j] with state[i + j] = A[j] * state[i] + C[j] (mod 2**30), j = 1..k."""
    a = np.empty(k, np.int64)
    c = np.empty(k, np.int64)
    aj, cj = 1, 0
    for j in range(k):  # k <= 4096 constants, computed once per call
        aj, cj = aj * _LCG_A % _LCG_M, (cj * _LCG_A + _LCG_C) % _LCG_M
        a[j], c[j] = aj, cj
    return a, c


def random_scores(n, seed, *, profile=None) -> np.ndarray:
    """The board's seeded LCG scores: top 15 bits of each of the n states after seed.

    Vectorized by jumping ahead in blocks: state[b + j] = A[j] * state[b] + C[j].
    """
    if not check.is_int(n) or n < 0:
        raise errors.bad_count("random scores", n)
    if n == 0:
        raise errors.empty("random scores")
    check.capacity(check.limits(profile), int(n))
    if not check.is_int(seed) or not 0 <= seed <= errors.MAX_SMALL:
        raise errors.seed_value(seed)
    n = int(n)
    a, c = _lcg_jumps(min(n, _LCG_BLOCK))
    out = np.empty(n, np.int16)
    x = int(seed)
    for b in range(0, n, a.size):
        states = (a * x + c) % _LCG_M
        k = min(a.size, n - b)
        out[b:b + k] = states[:k] >> 15
        x = int(states[-1])
    return out


def wanda_sumsq(samples) -> np.ndarray:
    """Per-column sums of x * x over int8 calibration samples (samples x cols), each
    saturated at 2**30 - 1, in the order the board adds them."""
    x = check.int8(samples, "activations")
    if x.ndim == 1:
        x = x.reshape(1, -1)
    sq = x.astype(np.int64) ** 2
    # Saturation is sticky on the board: once a running sum would pass the limit it stays
    # at the limit; a plain cumulative sum reaches the limit at the same sample.
    return np.minimum(sq.sum(axis=0), errors.MAX_SMALL).astype(np.int64)


def isqrt(v: np.ndarray) -> np.ndarray:
    r = np.floor(np.sqrt(v.astype(np.float64))).astype(np.int64)
    r -= (r * r > v)             # float sqrt can be one too high or too low near squares
    r += ((r + 1) * (r + 1) <= v)
    return r


def scale_multipliers(scales, rows: int) -> np.ndarray:
    """The scale-aware score's per-row multipliers (host only: from the file's float32
    scales): floor(scale_r / max(scale) * 32768 + 0.5), in float64, 0..32768. One
    scale (per tensor) gives 32768 for every row."""
    s = np.asarray(scales, np.float64).reshape(-1)
    if s.size not in (1, rows):
        raise errors.scale_mismatch(int(s.size), rows)
    bad = np.flatnonzero(~(np.isfinite(s) & (s > 0)))
    if bad.size:  # the row that holds it (row 0 for one per-tensor scale)
        raise errors.scale_value(float(s[bad[0]]), int(bad[0]))
    m = np.floor(s / s.max() * errors.MAX_SCALE + 0.5).astype(np.int64)
    return np.broadcast_to(m, (rows,)).copy()


def scaled_scores(w, mults, rows, cols, *, profile=None) -> np.ndarray:
    """Scale-aware magnitude: min(32767, (|w| * mults[r]) >> 7) as int16, mults the
    per-row multipliers (scale_multipliers) of a per-channel quantized layer."""
    shape = np.shape(w)
    flat, rows, cols = check.layer(w, rows, cols, profile)
    m = np.asarray(mults)
    if m.ndim != 1 or m.size != rows:
        raise errors.scale_mismatch(int(m.size), rows)
    if not np.issubdtype(m.dtype, np.integer):
        bad = next(i for i, v in enumerate(m.tolist()) if not check.is_int(v))
        raise errors.scale_value(m.tolist()[bad], bad)
    out_of_range = np.flatnonzero((m < 0) | (m > errors.MAX_SCALE))
    if out_of_range.size:
        r = int(out_of_range[0])
        raise errors.scale_value(int(m[r]), r)
    s = (abs16(flat).reshape(rows, cols).astype(np.int32) * m.astype(np.int32)[:, None]) >> 7
    return np.minimum(s, MAX_SCORE).astype(np.int16).reshape(shape)


def wanda_scores(w, col_sumsq, rows, cols, *, profile=None) -> np.ndarray:
    """Wanda: min(32767, (|w| * isqrt(col_sumsq[c])) >> 4) as int16."""
    shape = np.shape(w)
    flat, rows, cols = check.layer(w, rows, cols, profile)
    ss = np.asarray(col_sumsq)
    if ss.ndim != 1 or ss.size != cols:
        raise errors.sumsq_mismatch(int(ss.size), cols)
    if not np.issubdtype(ss.dtype, np.integer):
        bad = next(i for i, v in enumerate(ss.tolist()) if not check.is_int(v))
        raise errors.sumsq_value(ss.tolist()[bad], bad)
    out_of_range = np.flatnonzero((ss < 0) | (ss > errors.MAX_SMALL))
    if out_of_range.size:
        i = int(out_of_range[0])
        raise errors.sumsq_value(int(ss[i]), i)
    norms = isqrt(ss.astype(np.int64))
    s = (abs16(flat).reshape(rows, cols).astype(np.int32) * norms.astype(np.int32)) >> 4
    return np.minimum(s, MAX_SCORE).astype(np.int16).reshape(shape)


def max_blocks(profile) -> int | None:
    """The board's block capacity: max(max_units, max_weights // 4)."""
    limits = check.limits(profile)
    return None if limits is None else max(limits[1], limits[0] // 4)


def block_scores(w, rows, cols, br, bc, *, profile=None) -> np.ndarray:
    """L1 sum of each br x bc block (int32), blocks row-major over the block grid."""
    flat, rows, cols = check.layer(w, rows, cols, profile)
    if not (check.is_int(br) and check.is_int(bc)) or not (1 <= br <= errors.MAX_BLOCK
                                                           and 1 <= bc <= errors.MAX_BLOCK):
        raise errors.block_values(br, bc)
    if rows % br:
        raise errors.block_fit("rows", rows, int(br), "br")
    if cols % bc:
        raise errors.block_fit("cols", cols, int(bc), "bc")
    br, bc = int(br), int(bc)
    nb = (rows // br) * (cols // bc)
    limit = max_blocks(profile)
    if limit is not None and nb > limit:
        raise errors.capacity_blocks(nb, limit)
    aw = abs16(flat).reshape(rows // br, br, cols // bc, bc)
    return aw.sum(axis=(1, 3), dtype=np.int32).reshape(-1)
