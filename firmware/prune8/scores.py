# Scorers (docs/spec.md §2). Each writes into a caller-owned buffer and allocates
# nothing: the loops index bytearrays and arrays and only form small ints.
#
# A score that depends on where a weight sits (its row's flow or multiplier, its
# column's activation or norm) has a *_tile form that starts at row r, column c of a
# layer of `cols` columns, so a layer streamed from flash (prune8.stream) is scored
# tile by tile with the very loop that scores a layer held whole (r = c = 0).

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

_MAX_SCORE = const(32767)

# ABS[u] = |int8(u)| for a raw byte u in 0..255. A signed value v in -128..-1 (from an
# array('b')) indexes ABS[256 + v] through negative indexing, which is |v| too, so one
# table serves bytearray and array('b') weights without a branch per weight.
ABS = bytearray(256)
for _u in range(256):
    ABS[_u] = _u if _u < 128 else 256 - _u


def magnitude(w, n, out):
    """out[i] = |w[i]| (0..128)."""
    t = ABS
    for i in range(n):
        out[i] = t[w[i]]


def gradient(w, a, n, cols, out, c=0):
    """out[i] = |w[i] * a| >> 4 (0..1024); a per weight (cols=0) or per column, the
    first weight in column c."""
    t = ABS
    if cols == 0:
        for i in range(n):
            out[i] = (t[w[i]] * t[a[i]]) >> 4
        return
    for i in range(n):
        out[i] = (t[w[i]] * t[a[c]]) >> 4
        c += 1
        if c == cols:
            c = 0


def row_l1(w, rows, cols, out):
    """out[r] = sum_c |w[r, c]| (at most 128 * cols)."""
    t = ABS
    i = 0
    for r in range(rows):
        acc = 0
        for _ in range(cols):
            acc += t[w[i]]
            i += 1
        out[r] = acc


def col_l1(w, rows, cols, out):
    """out[c] = sum_r |w[r, c]| (at most 128 * rows)."""
    t = ABS
    for c in range(cols):
        out[c] = 0
    i = 0
    for _ in range(rows):
        for c in range(cols):
            out[c] += t[w[i]]
            i += 1


def add_l1(w, count, r, c, cols, row_acc, col_acc):
    """row_acc[r] += |w| and col_acc[c] += |w| for count weights from row r, column c:
    a tile's share of the row and column L1 norms (each at most 128 * 4096 < 2**30)."""
    t = ABS
    acc = row_acc[r]
    for i in range(count):
        v = t[w[i]]
        acc += v
        col_acc[c] += v
        c += 1
        if c == cols:
            row_acc[r] = acc
            acc = 0
            c = 0
            r += 1
    if c:
        row_acc[r] = acc


def mincut(w, rows, cols, row_flow, col_flow, out):
    """out[r*cols+c] = min(32767, (|w| * min(col_flow[c], row_flow[r])) >> 10)."""
    row_l1(w, rows, cols, row_flow)
    col_l1(w, rows, cols, col_flow)
    mincut_tile(w, rows * cols, 0, 0, cols, row_flow, col_flow, out)


def mincut_tile(w, count, r, c, cols, row_flow, col_flow, out):
    """mincut's scores of count weights from row r, column c, given the layer's flows."""
    t = ABS
    rf = row_flow[r]
    last = count - 1
    for i in range(count):
        f = col_flow[c]
        if rf < f:
            f = rf
        s = (t[w[i]] * f) >> 10  # <= 128 * 128 * 4096 = 2**26: a small int
        out[i] = s if s < _MAX_SCORE else _MAX_SCORE
        c += 1
        if c == cols:
            c = 0
            r += 1
            if i < last:  # the next row's flow (row r may be one past the last row)
                rf = row_flow[r]


def l2(w, n, out):
    """out[i] = w[i] * w[i] (0..16384)."""
    t = ABS
    for i in range(n):
        v = t[w[i]]
        out[i] = v * v


# Random scores: an LCG modulo 2**30 (docs/spec.md §2.6). The multiply is done in
# 15-bit halves: a * half < 2**30, so the state and every product stay small ints.
_LCG_A = const(29925)
_LCG_C = const(12345)
_MASK15 = const(0x7FFF)


def random(n, seed, out):
    """out[i] = top 15 bits of the (i+1)-th LCG state after `seed`. Returns the last
    state: the seed that continues the sequence in the next tile."""
    x = seed
    for i in range(n):
        lo = _LCG_A * (x & _MASK15) + _LCG_C
        hi = _LCG_A * (x >> 15) + (lo >> 15)
        x = ((hi & _MASK15) << 15) | (lo & _MASK15)
        out[i] = hi & _MASK15
    return x


def scaled(w, rows, cols, mults, out):
    """out[r*cols+c] = min(32767, (|w| * mults[r]) >> 7): |w| in units of the largest
    scale's (docs/spec.md §2.8)."""
    scaled_tile(w, rows * cols, 0, 0, cols, mults, out)


def scaled_tile(w, count, r, c, cols, mults, out):
    """scaled's scores of count weights from row r, column c."""
    t = ABS
    m = mults[r]
    last = count - 1
    for i in range(count):
        s = (t[w[i]] * m) >> 7  # <= 128 * 32768 = 2**22: a small int
        out[i] = s if s < _MAX_SCORE else _MAX_SCORE
        c += 1
        if c == cols:
            c = 0
            r += 1
            if i < last:
                m = mults[r]


def isqrt(v):
    """floor(sqrt(v)) for 0 <= v < 2**30, bit by bit: every value stays below 2**30."""
    res = 0
    bit = 1 << 28
    while bit > v:
        bit >>= 2
    while bit:
        if v >= res + bit:
            v -= res + bit
            res = (res >> 1) + bit
        else:
            res >>= 1
        bit >>= 2
    return res


_MAX_SUM = const(0x3FFFFFFF)


def add_squares(acc, x, count, col, cols):
    """acc[c] += x*x for count int8 values of x, the first at column `col` (wrapping at
    cols); each sum saturates at 2**30 - 1 instead of growing into a big int.
    Returns the column after the last value."""
    t = ABS
    for i in range(count):
        v = t[x[i]]
        v *= v
        s = acc[col]
        acc[col] = _MAX_SUM if s > _MAX_SUM - v else s + v
        col += 1
        if col == cols:
            col = 0
    return col


def wanda_norms(sumsq, cols, norms):
    """norms[c] = isqrt(sumsq[c]): Wanda's per-column activation norms."""
    for c in range(cols):
        norms[c] = isqrt(sumsq[c])


def wanda(w, rows, cols, sumsq, norms, out):
    """out[r*cols+c] = min(32767, (|w| * isqrt(sumsq[c])) >> 4); norms is scratch."""
    wanda_norms(sumsq, cols, norms)
    wanda_tile(w, rows * cols, 0, cols, norms, out)


def wanda_tile(w, count, c, cols, norms, out):
    """wanda's scores of count weights from column c, given the norms."""
    t = ABS
    for i in range(count):
        s = (t[w[i]] * norms[c]) >> 4  # <= 128 * 32767 >> 4: a small int
        out[i] = s if s < _MAX_SCORE else _MAX_SCORE
        c += 1
        if c == cols:
            c = 0


def block_l1(w, rows, cols, br, bc, out):
    """out[b] = sum of |w| over block b of br x bc, blocks row-major over the grid."""
    t = ABS
    gc = cols // bc
    nb = (rows // br) * gc
    for b in range(nb):
        out[b] = 0
    for r in range(rows):
        base = (r // br) * gc
        i = r * cols
        for c in range(cols):
            out[base + c // bc] += t[w[i]]
            i += 1


def add_blocks(w, off, count, c, cols, bc, acc):
    """acc[c // bc] += |w| for count weights w[off:off + count] of one block row (a band
    of br rows), the first in column c: a tile's share of the band's block sums."""
    t = ABS
    for i in range(off, off + count):
        acc[c // bc] += t[w[i]]
        c += 1
        if c == cols:
            c = 0


# the viper kernels take over these names where chosen (prune8.kernels)
from . import kernels as _kernels  # noqa: E402

_kernels.bind(__name__)
