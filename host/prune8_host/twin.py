"""The NumPy twin of the prune8 firmware: the bit-exact host reference.

Every function implements a rule of SPEC.md (and docs/spec-decisions.md) with
vectorized NumPy; loops run over chunks of a million weights, never over weights.
Errors are the firmware's own classes and messages (`prune8.errors`), raised in
the same order as on the board:

    option names -> sparsity -> inputs (dtype, empty, shape, activations,
    capacity) -> min_keep -> min_score

Scores come back in the shape of `w` (`np.int16`; row/column L1 as `np.int32`);
masks are `np.uint32` words, bit i % 32 of word i // 32, 1 = keep.
"""

from __future__ import annotations

import numpy as np

from prune8 import errors

__all__ = [
    "TIES", "METHODS", "MAX_SCORE",
    "to_bp", "resolve_bp", "magnitude_scores", "gradient_scores", "mincut_scores", "row_scores",
    "col_scores", "prune_mask", "apply_mask", "prune_rows", "prune_cols", "mask_stats",
    "mask_from_keep", "mask_to_keep", "threshold",
    "l2_scores", "random_scores", "wanda_sumsq", "wanda_scores", "block_scores", "nm_mask",
    "sparsity_at", "score_stats", "top_k", "max_blocks",
]

TIES = ("exact", "strict")
METHODS = ("auto", "bubble", "select")
MAX_SCORE = 32767
_CHUNK = 1 << 20  # weights per block: bounds temporaries to a few MB


# -- argument checks ------------------------------------------------------------

def _is_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def _check_options(tie, method) -> None:
    if not isinstance(tie, str) or tie not in TIES:
        raise errors.option("tie", tie, TIES)
    if not isinstance(method, str) or method not in METHODS:
        raise errors.option("method", method, METHODS)


def to_bp(s) -> int:
    """Float (or 0/1) sparsity -> basis points, SPEC.md "Numbers".

    A `np.float32` is converted in float32 arithmetic, exactly as on the ESP32.
    """
    if isinstance(s, (bool, np.bool_)) or not isinstance(s, (int, float, np.integer, np.floating)):
        raise errors.sparsity_type(s)
    if _is_int(s):
        if s < 0 or s > 1:
            raise errors.sparsity_range(s)
        return int(s) * errors.MAX_BP
    if s != s or s < 0 or s > 1:
        raise errors.sparsity_range(s)
    x = s * 10000  # stays float32 for np.float32 (NEP 50: the int is weak)
    bp = int(x + 0.5)
    if abs(x - bp) > 0.01:
        raise errors.sparsity_not_whole_bp(s)
    return bp


def resolve_bp(sparsity, sparsity_bp) -> int:
    if sparsity is None and sparsity_bp is None:
        raise errors.sparsity_missing()
    if sparsity is not None and sparsity_bp is not None:
        raise errors.sparsity_both()
    if sparsity_bp is not None:
        if not _is_int(sparsity_bp) or not 0 <= sparsity_bp <= errors.MAX_BP:
            raise errors.sparsity_bp_value(sparsity_bp)
        return int(sparsity_bp)
    return to_bp(sparsity)


def _int8(x, what: str) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype != np.int8:
        raise errors.dtype(what, a.dtype.name)
    return a


def _limits(profile):
    """(max_weights, max_units) from a BoardProfile, a board name, or a pair; None = no limit."""
    if profile is None:
        return None
    if isinstance(profile, str):
        from prune8_host.boards import load_board
        profile = load_board(profile)
    if isinstance(profile, tuple):
        return int(profile[0]), int(profile[1])
    return int(profile.max_weights), int(profile.max_units)


def _check_shape(n: int, rows, cols) -> tuple[int, int]:
    if not (_is_int(rows) and _is_int(cols)) or rows < 1 or cols < 1:
        raise errors.bad_shape(rows, cols)
    if rows * cols != n:
        raise errors.shape_mismatch(n, int(rows), int(cols))
    return int(rows), int(cols)


def _check_capacity(limits, n: int, rows=None, cols=None) -> None:
    if limits is None:
        return
    max_weights, max_units = limits
    if n > max_weights:
        raise errors.capacity_weights(n, max_weights)
    if rows is not None and rows > max_units:
        raise errors.capacity_units("rows", rows, max_units)
    if cols is not None and cols > max_units:
        raise errors.capacity_units("cols", cols, max_units)


def _layer(w, rows, cols, profile) -> tuple[np.ndarray, int, int]:
    """Validate an int8 layer given as (w, rows, cols); returns (flat w, rows, cols)."""
    w = _int8(w, "weights")
    if w.size == 0:
        raise errors.empty("weights")
    rows, cols = _check_shape(w.size, rows, cols)
    _check_capacity(_limits(profile), w.size, rows, cols)
    return w.reshape(-1), rows, cols


def _check_min_keep(min_keep, n: int) -> int:
    if not _is_int(min_keep) or not 0 <= min_keep <= n:
        raise errors.min_keep(min_keep, n)
    return int(min_keep)


def _check_min_score(min_score) -> int:
    if not _is_int(min_score) or not 0 <= min_score <= errors.MAX_SMALL:
        raise errors.min_score(min_score)
    return int(min_score)


# -- scores ---------------------------------------------------------------------

def _abs16(w: np.ndarray) -> np.ndarray:
    s = w.astype(np.int16)
    return np.abs(s, out=s)


def magnitude_scores(w, *, profile=None) -> np.ndarray:
    """|w| as int16 (0..128), in the shape of w."""
    w = _int8(w, "weights")
    if w.size == 0:
        raise errors.empty("weights")
    _check_capacity(_limits(profile), w.size)
    return _abs16(w)


def gradient_scores(w, a, cols=None, *, profile=None) -> np.ndarray:
    """Gradient proxy |w * a| >> 4 as int16 (0..1024).

    `a` holds one activation per weight, or one per input column (length `cols`,
    broadcast down the rows). A 2-D `w` gives `cols` when it is not passed.
    """
    w = _int8(w, "weights")
    a = _int8(a, "activations")
    n = w.size
    if n == 0:
        raise errors.empty("weights")
    if cols is None and w.ndim == 2:
        cols = w.shape[1]
    if cols is not None:
        if not _is_int(cols) or cols < 1:
            raise errors.bad_cols(cols)
        cols = int(cols)
        if n % cols:
            raise errors.cols_mismatch(n, cols)
    if a.size == n:
        aa = _abs16(a).reshape(w.shape)
    elif cols is not None and a.size == cols:
        aa = _abs16(a).reshape(-1)
    else:
        raise errors.activations_mismatch(a.size, n, cols)
    _check_capacity(_limits(profile), n, None, cols)
    if aa.shape != w.shape:  # one per column: broadcast down the rows
        out = (_abs16(w).reshape(-1, cols) * aa).reshape(w.shape)
    else:
        out = _abs16(w) * aa
    out >>= 4  # |w| * |a| <= 128 * 128 = 16384 fits int16
    return out


def _flows(aw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return aw.sum(axis=1, dtype=np.int64), aw.sum(axis=0, dtype=np.int64)


def mincut_scores(w, rows, cols, *, profile=None) -> np.ndarray:
    """Min-cut edge importance: min(32767, (|w| * min(col_flow, row_flow)) >> 10)."""
    shape = np.shape(w)
    flat, rows, cols = _layer(w, rows, cols, profile)
    aw = _abs16(flat).reshape(rows, cols)
    row_flow, col_flow = _flows(aw)
    # The product is at most 128 * min(max flow); use int32 while that fits.
    bound = 128 * int(min(row_flow.max(), col_flow.max()))
    wide = np.int32 if bound < 2**31 else np.int64
    row_flow, col_flow = row_flow.astype(wide), col_flow.astype(wide)
    out = np.empty((rows, cols), np.int16)
    step = max(1, _CHUNK // cols)
    for r0 in range(0, rows, step):  # blocks of rows: temporaries stay small
        blk = slice(r0, r0 + step)
        m = np.minimum(row_flow[blk, None], col_flow[None, :])
        m *= aw[blk]
        m >>= 10
        np.minimum(m, MAX_SCORE, out=m)
        out[blk] = m
    return out.reshape(shape)


def row_scores(w, rows, cols, *, profile=None) -> np.ndarray:
    """L1 norm of each row (output neuron), int32, not saturated."""
    flat, rows, cols = _layer(w, rows, cols, profile)
    return _abs16(flat).reshape(rows, cols).sum(axis=1, dtype=np.int32)


def col_scores(w, rows, cols, *, profile=None) -> np.ndarray:
    """L1 norm of each column (input), int32, not saturated."""
    flat, rows, cols = _layer(w, rows, cols, profile)
    return _abs16(flat).reshape(rows, cols).sum(axis=0, dtype=np.int32)


# -- threshold and mask -----------------------------------------------------------

def threshold(scores: np.ndarray, pos: int) -> int:
    """The value at position `pos` of the scores sorted ascending.

    np.partition is an O(n) introselect; on int16 scores it beats a histogram here.
    """
    s = scores.reshape(-1)
    return int(np.partition(s, pos)[pos])


def _tie_cut(s: np.ndarray, t: int, count: int) -> int:
    """Index just past the `count`-th entry equal to t (ascending index order)."""
    seen = 0
    for i in range(0, s.size, _CHUNK):
        eq = s[i:i + _CHUNK] == t
        m = int(np.count_nonzero(eq))
        if seen + m >= count:
            return i + int(np.flatnonzero(eq)[count - seen - 1]) + 1
        seen += m
    raise AssertionError("fewer ties than counted")  # unreachable: ties <= count(s == t)


def _kept(s: np.ndarray, k: int, tie: str, min_score: int) -> np.ndarray:
    """Boolean keep flags: the k lowest scores pruned (tie rule), then those < min_score."""
    n = s.size
    if k <= 0:  # nothing pruned by rank; only min_score can prune
        return s >= min_score
    t = threshold(s, k - 1 if tie == "exact" else min(k, n - 1))
    if min_score > t:  # every entry below min_score goes, ties at t included
        return s >= min_score
    keep = s >= t
    if tie == "exact":
        ties = k - (n - int(np.count_nonzero(keep)))  # k minus the count below t
        if ties > 0:
            cut = _tie_cut(s, t, ties)
            keep[:cut] &= s[:cut] != t
    return keep


def mask_from_keep(keep) -> np.ndarray:
    """Boolean keep flags -> mask words (uint32, SPEC layout, bits past n = 0)."""
    keep = np.asarray(keep, dtype=bool).reshape(-1)
    packed = np.packbits(keep, bitorder="little")
    buf = np.zeros(4 * ((keep.size + 31) // 32), np.uint8)
    buf[:packed.size] = packed
    return buf.view("<u4").astype(np.uint32)


def mask_to_keep(words, n: int) -> np.ndarray:
    """Mask words -> boolean keep flags of length n (checks the word count and stray bits)."""
    if not _is_int(n) or n < 1:
        raise errors.empty("mask")
    words = np.asarray(words)
    if not np.issubdtype(words.dtype, np.integer):
        raise errors.dtype_words(words.dtype.name)
    if words.ndim != 1 or words.size != (n + 31) // 32:
        raise errors.words_mismatch(words.size, n)
    if words.size and (int(words.min()) < 0 or int(words.max()) > 0xFFFFFFFF):
        raise errors.dtype_words(words.dtype.name)
    bits = np.unpackbits(words.astype("<u4").view(np.uint8), bitorder="little")
    if bits[n:].any():
        raise errors.stray_bits(n)
    return bits[:n].astype(bool)


def _k(n: int, bp: int, min_keep: int) -> int:
    return min(n * bp // errors.MAX_BP, n - min_keep)


def prune_mask(scores, sparsity=None, *, sparsity_bp=None, tie="exact", min_keep=1,
               min_score=0, method="auto", profile=None) -> np.ndarray:
    """Mask words that prune the k lowest scores, k = min(n * bp // 10000, n - min_keep).

    `method` is checked like the board's; every method gives the same threshold.
    """
    _check_options(tie, method)
    bp = resolve_bp(sparsity, sparsity_bp)
    s = np.asarray(scores).reshape(-1)
    if not np.issubdtype(s.dtype, np.integer):
        raise errors.dtype_scores(s.dtype.name)
    if s.size == 0:
        raise errors.empty("scores")
    lo = int(s.min())
    hi = int(s.max()) if s.dtype.itemsize > 2 else 0  # int16 cannot exceed MAX_SMALL
    if lo < 0 or hi > errors.MAX_SMALL:
        raise errors.score_range(lo, int(s.max()))
    _check_capacity(_limits(profile), s.size)
    min_keep = _check_min_keep(min_keep, s.size)
    min_score = _check_min_score(min_score)
    return mask_from_keep(_kept(s, _k(s.size, bp, min_keep), tie, min_score))


def apply_mask(w, words, *, profile=None) -> np.ndarray:
    """A copy of w with every weight whose mask bit is 0 set to 0."""
    w = _int8(w, "weights")
    if w.size == 0:
        raise errors.empty("weights")
    _check_capacity(_limits(profile), w.size)
    keep = mask_to_keep(words, w.size)
    out = w.copy()
    out.reshape(-1)[~keep] = 0
    return out


def _prune_units(axis, w, rows, cols, sparsity, sparsity_bp, tie, min_keep, method, profile):
    _check_options(tie, method)
    bp = resolve_bp(sparsity, sparsity_bp)
    flat, rows, cols = _layer(w, rows, cols, profile)
    units = rows if axis == 0 else cols
    min_keep = _check_min_keep(min_keep, units)
    aw = _abs16(flat).reshape(rows, cols)
    scores = aw.sum(axis=1 - axis, dtype=np.int32)
    keep = _kept(scores, _k(units, bp, min_keep), tie, 0)
    out = np.array(w, copy=True)
    view = out.reshape(rows, cols)
    if axis == 0:
        view[~keep, :] = 0
    else:
        view[:, ~keep] = 0
    return mask_from_keep(keep), out


def prune_rows(w, rows, cols, sparsity=None, *, sparsity_bp=None, tie="exact", min_keep=1,
               method="auto", profile=None):
    """Structured pruning of whole rows (output neurons) by L1 norm.

    Returns (keep_words over rows, pruned copy of w).
    """
    return _prune_units(0, w, rows, cols, sparsity, sparsity_bp, tie, min_keep, method, profile)


def prune_cols(w, rows, cols, sparsity=None, *, sparsity_bp=None, tie="exact", min_keep=1,
               method="auto", profile=None):
    """Structured pruning of whole columns (inputs) by L1 norm.

    Returns (keep_words over columns, pruned copy of w).
    """
    return _prune_units(1, w, rows, cols, sparsity, sparsity_bp, tie, min_keep, method, profile)


def mask_stats(words, n) -> dict:
    """{'n', 'pruned', 'kept', 'sparsity_bp'} of a mask over n entries."""
    keep = mask_to_keep(words, n)
    kept = int(np.count_nonzero(keep))
    pruned = int(n) - kept
    return {"n": int(n), "pruned": pruned, "kept": kept,
            "sparsity_bp": pruned * errors.MAX_BP // int(n)}


# -- more scores, patterns and schedules (docs/spec-decisions.md) ------------------------

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
    if not _is_int(n) or n < 0:
        raise errors.bad_count("random scores", n)
    if n == 0:
        raise errors.empty("random scores")
    _check_capacity(_limits(profile), int(n))
    if not _is_int(seed) or not 0 <= seed <= errors.MAX_SMALL:
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
    x = _int8(samples, "activations")
    if x.ndim == 1:
        x = x.reshape(1, -1)
    sq = x.astype(np.int64) ** 2
    # Saturation is sticky on the board: once a running sum would pass the limit it stays
    # at the limit; a plain cumulative sum reaches the limit at the same sample.
    return np.minimum(sq.sum(axis=0), errors.MAX_SMALL).astype(np.int64)


def _isqrt(v: np.ndarray) -> np.ndarray:
    r = np.floor(np.sqrt(v.astype(np.float64))).astype(np.int64)
    r -= (r * r > v)             # float sqrt can be one too high or too low near squares
    r += ((r + 1) * (r + 1) <= v)
    return r


def wanda_scores(w, col_sumsq, rows, cols, *, profile=None) -> np.ndarray:
    """Wanda: min(32767, (|w| * isqrt(col_sumsq[c])) >> 4) as int16."""
    shape = np.shape(w)
    flat, rows, cols = _layer(w, rows, cols, profile)
    ss = np.asarray(col_sumsq)
    if ss.ndim != 1 or ss.size != cols:
        raise errors.sumsq_mismatch(int(ss.size), cols)
    if not np.issubdtype(ss.dtype, np.integer):
        bad = next(i for i, v in enumerate(ss.tolist()) if not _is_int(v))
        raise errors.sumsq_value(ss.tolist()[bad], bad)
    out_of_range = np.flatnonzero((ss < 0) | (ss > errors.MAX_SMALL))
    if out_of_range.size:
        i = int(out_of_range[0])
        raise errors.sumsq_value(int(ss[i]), i)
    norms = _isqrt(ss.astype(np.int64))
    s = (_abs16(flat).reshape(rows, cols).astype(np.int32) * norms.astype(np.int32)) >> 4
    return np.minimum(s, MAX_SCORE).astype(np.int16).reshape(shape)


def max_blocks(profile) -> int | None:
    """The board's block capacity: max(max_units, max_weights // 4)."""
    limits = _limits(profile)
    return None if limits is None else max(limits[1], limits[0] // 4)


def block_scores(w, rows, cols, br, bc, *, profile=None) -> np.ndarray:
    """L1 sum of each br x bc block (int32), blocks row-major over the block grid."""
    flat, rows, cols = _layer(w, rows, cols, profile)
    if not (_is_int(br) and _is_int(bc)) or br < 1 or bc < 1:
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
    aw = _abs16(flat).reshape(rows // br, br, cols // bc, bc)
    return aw.sum(axis=(1, 3), dtype=np.int32).reshape(-1)


def nm_mask(scores, rows, cols, n, m) -> np.ndarray:
    """N:M mask words: in each group of m along a row keep the n highest (ties: lower index)."""
    if not (_is_int(n) and _is_int(m)) or not 1 <= n <= m <= 32:
        raise errors.nm_values(n, m)
    s = np.asarray(scores).reshape(-1)
    if not np.issubdtype(s.dtype, np.integer):
        raise errors.dtype_scores(s.dtype.name)
    if s.size == 0:
        raise errors.empty("scores")
    rows, cols = _check_shape(s.size, rows, cols)
    if cols % m:
        raise errors.nm_cols(cols, int(m))
    groups = s.astype(np.int64).reshape(-1, int(m))
    # rank within each group: stable sort on -score keeps the lower index first on ties
    order = np.argsort(-groups, axis=1, kind="stable")
    keep = np.zeros_like(groups, dtype=bool)
    np.put_along_axis(keep, order[:, :int(n)], True, axis=1)
    return mask_from_keep(keep.reshape(-1))


MAX_STEPS = 100000


def sparsity_at(step, steps, final_bp, initial_bp=0) -> int:
    """Zhu & Gupta's cubic schedule in integer basis points (board-identical)."""
    if not _is_int(steps) or not 1 <= steps <= MAX_STEPS:
        raise errors.schedule_steps(steps, MAX_STEPS)
    if not _is_int(step) or not 0 <= step <= steps:
        raise errors.schedule_step(step, steps)
    for bp in (final_bp, initial_bp):
        if not _is_int(bp) or not 0 <= bp <= errors.MAX_BP:
            raise errors.sparsity_bp_value(bp)
    r = (steps - step) * 10000 // steps
    r3 = (r * r // 10000) * r // 10000
    return int(final_bp + (initial_bp - final_bp) * r3 // 10000)


def score_stats(scores) -> dict:
    """min, max, mean, median and (population) standard deviation of scores."""
    s = np.asarray(scores).reshape(-1)
    if not np.issubdtype(s.dtype, np.integer):
        raise errors.dtype_scores(s.dtype.name)
    if s.size == 0:
        raise errors.empty("scores")
    f = s.astype(np.float64)
    return {"n": int(s.size), "min": int(s.min()), "max": int(s.max()),
            "mean": float(f.mean()), "median": float(np.median(f)), "std": float(f.std())}


def top_k(scores, k) -> np.ndarray:
    """Indices of the k highest scores, highest first; equal scores by lower index."""
    s = np.asarray(scores).reshape(-1)
    if not _is_int(k) or not 0 <= k <= s.size:
        raise ValueError(f"k must be an integer in 0..{s.size}; got {k!r}")
    return np.argsort(-s.astype(np.int64), kind="stable")[:int(k)]
