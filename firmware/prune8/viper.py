# The hot loops of pruning as @micropython.viper functions (docs/kernels.md; docs/spec.md
# §12): the same arguments, results and side effects as the portable kernels they stand
# in for (scores.py, select.py, mask.py, patterns.py, tiles.py), chosen at the first
# Pruner() by prune8.kernels where the port has the native emitter (stock ESP32
# firmware does). Inference's are viper_dense.py's, loaded with prune8.dense: a prune
# does not hold them.
#
# Viper integers are machine words: 32-bit on an ESP32, 64-bit on the unix port. Every
# value below stays under 2**31 by construction; the bound is written beside each
# product and sum. ptr32 loads are zero-extended on a 64-bit port, so a signed int32 is
# read back through an offset (viper_dense.py says how); int8 and int16 values are
# read unsigned and made signed by hand.
#
# Every caller passes buffers (bytearray, bytes, array, memoryview): the Pruner copies
# anything else into its own arrays first.

import micropython

# -- scores (prune8.scores) ------------------------------------------------------------

@micropython.viper
def magnitude(w, n: int, out):
    pw = ptr8(w)
    po = ptr16(out)
    for i in range(n):
        v = pw[i]
        po[i] = (256 - v) if v > 127 else v          # |int8| <= 128


@micropython.viper
def l2(w, n: int, out):
    pw = ptr8(w)
    po = ptr16(out)
    for i in range(n):
        v = pw[i]
        if v > 127:
            v = 256 - v
        po[i] = v * v                                 # <= 16384


@micropython.viper
def gradient(w, a, n: int, cols: int, out, c: int):
    pw = ptr8(w)
    pa = ptr8(a)
    po = ptr16(out)
    for i in range(n):
        v = pw[i]
        if v > 127:
            v = 256 - v
        j = i if cols == 0 else c
        x = pa[j]
        if x > 127:
            x = 256 - x
        po[i] = (v * x) >> 4                          # 128 * 128 = 2**14
        if cols:
            c += 1
            if c == cols:
                c = 0


@micropython.viper
def add_l1(w, count: int, r: int, c: int, cols: int, row_acc, col_acc):
    pw = ptr8(w)
    pr = ptr32(row_acc)
    pc = ptr32(col_acc)
    acc = pr[r]                                       # sums <= 128 * 4096 = 2**19
    for i in range(count):
        v = pw[i]
        if v > 127:
            v = 256 - v
        acc += v
        pc[c] += v
        c += 1
        if c == cols:
            pr[r] = acc
            acc = 0
            c = 0
            r += 1
    if c:
        pr[r] = acc


@micropython.viper
def row_l1(w, rows: int, cols: int, out):
    pw = ptr8(w)
    po = ptr32(out)
    i = 0
    for r in range(rows):
        acc = 0                                       # <= 128 * 4096
        for _ in range(cols):
            v = pw[i]
            acc += (256 - v) if v > 127 else v
            i += 1
        po[r] = acc


@micropython.viper
def col_l1(w, rows: int, cols: int, out):
    pw = ptr8(w)
    po = ptr32(out)
    for c in range(cols):
        po[c] = 0
    i = 0
    for _ in range(rows):
        for c in range(cols):
            v = pw[i]
            po[c] += (256 - v) if v > 127 else v      # <= 128 * 4096
            i += 1


@micropython.viper
def mincut_tile(w, count: int, r: int, c: int, cols: int, row_flow, col_flow, out):
    pw = ptr8(w)
    pr = ptr32(row_flow)
    pc = ptr32(col_flow)
    po = ptr16(out)
    rf = pr[r]
    last = count - 1
    for i in range(count):
        f = pc[c]
        if rf < f:
            f = rf                                    # a flow <= 128 * 4096 = 2**19
        v = pw[i]
        if v > 127:
            v = 256 - v
        s = (v * f) >> 10                             # <= 2**7 * 2**19 = 2**26
        po[i] = s if s < 32767 else 32767
        c += 1
        if c == cols:
            c = 0
            r += 1
            if i < last:
                rf = pr[r]


@micropython.viper
def random(n: int, seed: int, out) -> int:
    po = ptr16(out)
    x = seed                                          # < 2**30
    for i in range(n):
        lo = 29925 * (x & 0x7FFF) + 12345             # < 2**15 * 2**15 + 2**14 < 2**31
        hi = 29925 * (x >> 15) + (lo >> 15)           # < 2**30 + 2**16 < 2**31
        x = ((hi & 0x7FFF) << 15) | (lo & 0x7FFF)     # < 2**30
        po[i] = hi & 0x7FFF
    return x


@micropython.viper
def scaled_tile(w, count: int, r: int, c: int, cols: int, mults, out):
    pw = ptr8(w)
    pm = ptr32(mults)
    po = ptr16(out)
    m = pm[r]                                         # 0..32768
    last = count - 1
    for i in range(count):
        v = pw[i]
        if v > 127:
            v = 256 - v
        s = (v * m) >> 7                              # <= 2**7 * 2**15 = 2**22
        po[i] = s if s < 32767 else 32767
        c += 1
        if c == cols:
            c = 0
            r += 1
            if i < last:
                m = pm[r]


@micropython.viper
def wanda_norms(sumsq, cols: int, norms):
    # scores.isqrt per column, bit by bit: every value below 2**30 (sums < 2**30)
    ps = ptr32(sumsq)
    pn = ptr32(norms)
    for c in range(cols):
        v = ps[c]
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
        pn[c] = res


@micropython.viper
def wanda_tile(w, count: int, c: int, cols: int, norms, out):
    pw = ptr8(w)
    pn = ptr32(norms)
    po = ptr16(out)
    for i in range(count):
        v = pw[i]
        if v > 127:
            v = 256 - v
        s = (v * pn[c]) >> 4                          # <= 2**7 * 2**15 = 2**22
        po[i] = s if s < 32767 else 32767
        c += 1
        if c == cols:
            c = 0


@micropython.viper
def add_squares(acc, x, count: int, col: int, cols: int) -> int:
    pa = ptr32(acc)
    px = ptr8(x)
    for i in range(count):
        v = px[i]
        if v > 127:
            v = 256 - v
        v *= v                                        # <= 2**14
        s = pa[col]                                   # <= 2**30 - 1
        pa[col] = 0x3FFFFFFF if s > 0x3FFFFFFF - v else s + v
        col += 1
        if col == cols:
            col = 0
    return col


@micropython.viper
def block_l1(w, rows: int, cols: int, br: int, bc: int, out):
    pw = ptr8(w)
    po = ptr32(out)
    gc = cols // bc
    nb = (rows // br) * gc
    for b in range(nb):
        po[b] = 0
    i = 0
    for r in range(rows):
        base = (r // br) * gc
        for c in range(cols):
            v = pw[i]
            po[base + c // bc] += (256 - v) if v > 127 else v   # <= 128 * 255 * 255
            i += 1


@micropython.viper
def add_blocks(w, off: int, count: int, c: int, cols: int, bc: int, acc):
    pw = ptr8(w)
    pa = ptr32(acc)
    for i in range(off, off + count):
        v = pw[i]
        pa[c // bc] += (256 - v) if v > 127 else v    # a block's sum <= 128 * 255 * 255
        c += 1
        if c == cols:
            c = 0


# -- threshold selection (prune8.select) --------------------------------------------------

@micropython.viper
def radix_count(src, off: int, n: int, hist, shift: int, top_shift: int, prefix: int):
    # top_shift 8: int16 weight scores (< 2**15); 24: int32 unit scores (< 2**30)
    ph = ptr32(hist)
    p16 = ptr16(src)
    p32 = ptr32(src)
    wide = top_shift != 8
    hi = shift + 8
    top = shift == top_shift
    for i in range(off, off + n):
        v = p32[i] if wide else p16[i]
        if top:
            ph[v >> shift] += 1
        elif (v >> hi) == prefix:
            ph[(v >> shift) & 255] += 1


@micropython.viper
def radix(src, n: int, pos: int, hist, top_shift: int, off: int) -> int:
    # select.radix whole: the passes, the bucket walk and the prefix in machine words
    ph = ptr32(hist)
    p16 = ptr16(src)
    p32 = ptr32(src)
    prefix = 0
    shift = top_shift
    end = off + n
    while True:
        for d in range(256):
            ph[d] = 0
        hi = shift + 8
        if top_shift == 8:  # int16 weight scores: one loop per pass, no test inside
            if shift == 8:
                for i in range(off, end):
                    ph[p16[i] >> 8] += 1
            else:
                for i in range(off, end):
                    v = p16[i]
                    if (v >> 8) == prefix:
                        ph[v & 255] += 1
        elif shift == top_shift:
            for i in range(off, end):
                ph[p32[i] >> shift] += 1
        else:
            for i in range(off, end):
                v = p32[i]
                if (v >> hi) == prefix:
                    ph[(v >> shift) & 255] += 1
        d = 0
        c = ph[0]
        while pos >= c:
            pos -= c
            d += 1
            c = ph[d]
        prefix = (prefix << 8) | d                    # < 2**31: scores are below 2**30
        if shift == 0:
            return prefix
        shift -= 8


@micropython.viper
def bubble(src, n: int, pos: int, scratch, off: int, wide: int) -> int:
    s16 = ptr16(src)
    s32 = ptr32(src)
    t16 = ptr16(scratch)
    t32 = ptr32(scratch)
    for i in range(n):
        if wide:
            t32[i] = s32[off + i]
        else:
            t16[i] = s16[off + i]
    end = n - 1
    while end > 0:
        swapped = 0
        for j in range(end):
            a = t32[j] if wide else t16[j]
            b = t32[j + 1] if wide else t16[j + 1]
            if a > b:
                if wide:
                    t32[j] = b
                    t32[j + 1] = a
                else:
                    t16[j] = b
                    t16[j + 1] = a
                swapped = 1
        if not swapped:
            break
        end -= 1
    return t32[pos] if wide else t16[pos]


@micropython.viper
def count_below(src, off: int, n: int, t: int, wide: int) -> int:
    p16 = ptr16(src)
    p32 = ptr32(src)
    k = 0
    for i in range(off, off + n):
        v = p32[i] if wide else p16[i]
        if v < t:
            k += 1
    return k


# -- masks (prune8.mask, prune8.patterns, prune8.tiles) ---------------------------------

@micropython.viper
def fill_bits(bits, src, off: int, start: int, count: int, t: int, ties: int, wide: int,
              counts) -> int:
    pb = ptr8(bits)
    p16 = ptr16(src)
    p32 = ptr32(src)
    pc = ptr32(counts)
    pruned = 0
    j = start >> 3
    bit = 1 << (start & 7)
    byte = pb[j] & (bit - 1)
    for i in range(off, off + count):
        s = p32[i] if wide else p16[i]
        if s < t:
            pruned += 1
        elif s == t and ties > 0:
            ties -= 1
            pruned += 1
        else:
            byte |= bit
        bit <<= 1
        if bit == 256:
            pb[j] = byte
            j += 1
            byte = 0
            bit = 1
    if bit != 1:
        pb[j] = byte
    pc[0] += pruned
    return ties


@micropython.viper
def apply_bits(bits, w, n: int):
    pb = ptr8(bits)
    pw = ptr8(w)
    for j in range((n + 7) >> 3):
        b = pb[j]
        if b != 255:
            base = j << 3
            end = n - base
            if end > 8:
                end = 8
            for k in range(end):
                if not (b >> k) & 1:
                    pw[base + k] = 0


@micropython.viper
def popcount(bits, n: int) -> int:
    pb = ptr8(bits)
    k = 0
    for j in range(n):
        b = pb[j]
        while b:
            b &= b - 1
            k += 1
    return k  # < 8 * 2**20: a small int


@micropython.viper
def nm_bits(bits, src, off: int, start: int, count: int, n: int, m: int, counts):
    pb = ptr8(bits)
    ps = ptr16(src)
    pc = ptr32(counts)
    pruned = 0
    d = start - off
    g = off
    end = off + count
    while g < end:
        for i in range(g, g + m):
            s = ps[i]
            better = 0
            for j in range(g, g + m):
                t = ps[j]
                if t > s or (t == s and j < i):
                    better += 1
            b = i + d
            if better < n:
                pb[b >> 3] |= 1 << (b & 7)
            else:
                pb[b >> 3] &= 255 ^ (1 << (b & 7))
                pruned += 1
        g += m
    pc[0] += pruned


@micropython.viper
def zero_tile(w, off: int, m: int, i0: int, bits, b0: int, unit: int, cols: int, br: int,
              bc: int, gc: int):
    # unit: tiles.WEIGHT 0, ROW 1, COL 2, BLOCK 3
    pw = ptr8(w)
    pb = ptr8(bits)
    r = i0 // cols
    c = i0 - r * cols
    for i in range(m):
        if unit == 0:
            u = i0 + i
        elif unit == 1:
            u = r
        elif unit == 2:
            u = c
        else:
            u = (r // br) * gc + c // bc
        if not (pb[(u >> 3) - b0] >> (u & 7)) & 1:
            pw[off + i] = 0
        c += 1
        if c == cols:
            c = 0
            r += 1
