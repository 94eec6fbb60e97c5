# The hot loops of int8 inference as @micropython.viper functions (docs/kernels.md;
# docs/spec.md §12): the same arguments, results and side effects as the portable ones
# they stand in for (dense.py, sparse.py's row sums), loaded by prune8.kernels when
# prune8.dense is imported and the viper kernels run (viper.py has pruning's).
#
# Viper integers are machine words: 32-bit on an ESP32, 64-bit on the unix port. Every
# value below stays under 2**31 by construction; the bound is written beside each
# product and sum. ptr32 loads are zero-extended on a 64-bit port, so a signed int32 is
# read back through an offset (below); int8 and int16 values are read unsigned and made
# signed by hand.

import micropython

# -- int8 inference (prune8.dense, prune8.stored_dense, prune8.sparse) ----------------------
# A signed int32 x with |x| < 2**30 has bit 30 equal to its sign. Read back, it is made
# whole by v |= ~(2**30 - 1) when that bit is set: the same value whether the load
# sign-extended (32-bit) or zero-extended (64-bit). (Constants stay below 2**30, the
# ESP32's small ints: viper treats a bigger literal as an object.)

@micropython.viper
def dot(w, off: int, xs, c0: int, count: int) -> int:
    # sum_j xs[c0 + j] * w[off + j]: |xs| <= 255, |w| <= 128, count <= 4096: < 2**27
    pw = ptr8(w)
    px = ptr16(xs)
    s = 0
    for j in range(count):
        v = pw[off + j]
        if v > 127:
            v -= 256
        x = px[c0 + j]
        if x > 32767:
            x -= 65536
        s += x * v
    return s


@micropython.viper
def dense_acc(w, xs, bias, rows: int, cols: int, acc):
    # acc[r] = bias[r] + the row's dot: |bias| < 2**29, |dot| < 2**27, so |acc| < 2**30
    pw = ptr8(w)
    px = ptr16(xs)
    pb = ptr32(bias)
    pa = ptr32(acc)
    i = 0
    for r in range(rows):
        s = pb[r]
        if (s >> 30) & 1:
            s |= ~0x3FFFFFFF
        for c in range(cols):
            v = pw[i]
            if v > 127:
                v -= 256
            x = px[c]
            if x > 32767:
                x -= 65536
            s += x * v
            i += 1
        pa[r] = s


@micropython.viper
def requantize_rows(acc, m2, m1, m0, left, right, out, out_zp: int, lo: int):
    # dense.requantize and dense.high_mul in machine words: each line's bound is the one
    # written in dense.high_mul (every value below 2**31); the result is within +-2**29
    pa = ptr32(acc)
    p2 = ptr8(m2)
    p1 = ptr16(m1)
    p0 = ptr16(m0)
    pl = ptr8(left)
    pr = ptr8(right)
    po = ptr8(out)
    n = int(len(out))
    for r in range(n):
        a = pa[r]                                       # |acc| < 2**30
        if (a >> 30) & 1:
            a |= ~0x3FFFFFFF
        b2 = p2[r]
        b1 = p1[r]
        b0 = p0[r]
        q = 0
        if b2 or b1 or b0:
            neg = a < 0
            u = -a if neg else a
            sh = pl[r]
            sat = 0
            if sh:
                if u >> (30 - sh):
                    sat = 1
                else:
                    u <<= sh                                    # < 2**30
            if sat:
                q = 0x20000000
            else:
                u0 = u & 0x7FFF
                u1 = u >> 15
                k = 0x7FFF if neg else 0
                t = u0 * b0 + k
                t = u0 * b1 + k + (t >> 15)
                c = t >> 15
                t = u1 * b0 + (t & 0x7FFF)
                c += t >> 15
                t = u1 * b1 + (c & 0x7FFF)
                c = (c >> 15) + (t >> 15)
                t = (t & 0x7FFF) + u0 * b2 + (0 if neg else 1)
                d2 = t & 0x7FFF
                c += t >> 15
                t = u1 * b2 + c
                q = ((t >> 15) << 29) + ((t & 0x7FFF) << 14) + (d2 >> 1)
                rs = pr[r]
                if rs:
                    q = (q >> rs) + ((q >> (rs - 1)) & 1)
                if q > 0x20000000:
                    q = 0x20000000
            if neg:
                q = -q
        v = q + out_zp
        if v < lo:
            v = lo
        elif v > 127:
            v = 127
        po[r] = v & 255


@micropython.viper
def native_sums(bits, vals, xs, bias, rows: int, cols: int, acc):
    # acc[r] = bias[r] + the row's sum over the weights the bits keep (|acc| < 2**30)
    pb = ptr8(bits)
    pv = ptr8(vals)
    px = ptr16(xs)
    pz = ptr32(bias)
    ps = ptr32(acc)
    i = 0
    k = 0
    for r in range(rows):
        s = pz[r]
        if (s >> 30) & 1:
            s |= ~0x3FFFFFFF
        for c in range(cols):
            if (pb[i >> 3] >> (i & 7)) & 1:
                v = pv[k]
                if v > 127:
                    v -= 256
                x = px[c]
                if x > 32767:
                    x -= 65536
                s += x * v
                k += 1
            i += 1
        ps[r] = s


@micropython.viper
def csr_sums(ptr, idx, vals, xs, bias, rows: int, wide: int, acc):
    p16 = ptr16(ptr)
    p32 = ptr32(ptr)
    i16 = ptr16(idx)
    i32 = ptr32(idx)
    pv = ptr8(vals)
    px = ptr16(xs)
    pz = ptr32(bias)
    ps = ptr32(acc)
    for r in range(rows):
        a = p32[r] if wide else p16[r]
        b = p32[r + 1] if wide else p16[r + 1]
        s = pz[r]
        if (s >> 30) & 1:
            s |= ~0x3FFFFFFF
        for j in range(a, b):
            c = i32[j] if wide else i16[j]
            v = pv[j]
            if v > 127:
                v -= 256
            x = px[c]
            if x > 32767:
                x -= 65536
            s += x * v
        ps[r] = s


@micropython.viper
def coo_sums(entries, nnz: int, xs, bias, rows: int, wide: int, acc):
    # acc is read back while it grows: |acc| < 2**30 throughout (see the note above)
    pe = ptr8(entries)
    px = ptr16(xs)
    pz = ptr32(bias)
    ps = ptr32(acc)
    for r in range(rows):
        ps[r] = pz[r]
    q = 0
    for _ in range(nnz):
        if wide:  # indices < 2**24: the top bytes are 0
            r = pe[q] | (pe[q + 1] << 8) | (pe[q + 2] << 16)
            c = pe[q + 4] | (pe[q + 5] << 8) | (pe[q + 6] << 16)
            v = pe[q + 8]
            q += 9
        else:
            r = pe[q] | (pe[q + 1] << 8)
            c = pe[q + 2] | (pe[q + 3] << 8)
            v = pe[q + 4]
            q += 5
        if v > 127:
            v -= 256
        x = px[c]
        if x > 32767:
            x -= 65536
        s = ps[r]
        if (s >> 30) & 1:
            s |= ~0x3FFFFFFF
        ps[r] = s + x * v


@micropython.viper
def block_sums(bits, vals, xs, bias, rows: int, cols: int, br: int, bc: int, acc):
    pb = ptr8(bits)
    pv = ptr8(vals)
    px = ptr16(xs)
    pz = ptr32(bias)
    ps = ptr32(acc)
    for r in range(rows):
        ps[r] = pz[r]
    gc = cols // bc
    k = 0
    for blk in range((rows // br) * gc):
        if (pb[blk >> 3] >> (blk & 7)) & 1:
            r0 = (blk // gc) * br
            c0 = (blk % gc) * bc
            for r in range(r0, r0 + br):
                s = ps[r]
                if (s >> 30) & 1:
                    s |= ~0x3FFFFFFF
                for c in range(c0, c0 + bc):
                    v = pv[k]
                    if v > 127:
                        v -= 256
                    x = px[c]
                    if x > 32767:
                        x -= 65536
                    s += x * v
                    k += 1
                ps[r] = s
