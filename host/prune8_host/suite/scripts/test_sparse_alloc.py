# Sparse inference allocates nothing: SparseDense.forward from every packed format, with
# the collector disabled, leaves gc.mem_alloc() where it was. The layers are built here
# from packed payloads of a 32 x 64 layer with a quarter of its weights kept. The script
# runs in the board's heap budget, counted from boot: one format's payload is built (in
# place, without lists of indices) and dropped before the next.
import gc
import struct
from array import array

from prune8 import dense
from prune8.packed_format import COO_ENTRY
from prune8.sparse import SparseDense

ROWS, COLS = 32, 64
N = ROWS * COLS
w = bytearray(N)
nnz = 0
for i in range(N):
    if (i * 7) % 4 == 0:
        w[i] = (i * 37 + 11) & 255 or 1
        nnz += 1
bias = [(r * 97) % 2000 - 1000 for r in range(ROWS)]


def native():
    # keep bits (whole 32-bit words), then the kept values in order
    nwords = (N + 31) >> 5
    out = bytearray(4 * nwords + nnz)
    k = 4 * nwords
    for i in range(N):
        if w[i]:
            out[i >> 3] |= 1 << (i & 7)
            out[k] = w[i]
            k += 1
    return out


def csr():
    # ROWS + 1 row pointers, then a u16 column per kept value, then the values
    out = bytearray(2 * (ROWS + 1) + 3 * nnz)
    cols_at, vals_at = 2 * (ROWS + 1), 2 * (ROWS + 1) + 2 * nnz
    k = 0
    for i in range(N):
        if i % COLS == 0:
            struct.pack_into("<H", out, 2 * (i // COLS), k)
        if w[i]:
            struct.pack_into("<H", out, cols_at + 2 * k, i % COLS)
            out[vals_at + k] = w[i]
            k += 1
    struct.pack_into("<H", out, 2 * ROWS, k)
    return out


def coo():
    size = struct.calcsize(COO_ENTRY)
    out = bytearray(size * nnz)
    k = 0
    for i in range(N):
        if w[i]:
            struct.pack_into(COO_ENTRY, out, k, i // COLS, i % COLS,
                             w[i] - 256 if w[i] > 127 else w[i])
            k += size
    return out


def block():
    # 2 x 2 blocks in row-major order: keep bits, then each kept block's 4 values
    nblocks = (ROWS // 2) * (COLS // 2)
    head = ((nblocks + 31) >> 5) << 2
    kept = 0
    for b in range(nblocks):
        r, c = 2 * (b // (COLS // 2)), 2 * (b % (COLS // 2))
        if w[r * COLS + c] or w[r * COLS + c + 1] or w[(r + 1) * COLS + c] or \
                w[(r + 1) * COLS + c + 1]:
            kept += 1
    out = bytearray(head + 4 * kept)
    k = head
    for b in range(nblocks):
        r, c = 2 * (b // (COLS // 2)), 2 * (b % (COLS // 2))
        vals = (w[r * COLS + c], w[r * COLS + c + 1], w[(r + 1) * COLS + c],
                w[(r + 1) * COLS + c + 1])
        if vals[0] or vals[1] or vals[2] or vals[3]:
            out[b >> 3] |= 1 << (b & 7)
            for v in vals:
                out[k] = v
                k += 1
    return out


x = bytearray(COLS)
for c in range(COLS):
    x[c] = (c * 13) & 255
ref = dense.Dense(ROWS, COLS, 1 << 30, -7, -128, 3, True)
ref.load(w, bias)
want = array("b", range(ROWS))
ref.forward(x, want)
ref = None
for fmt, make, br, bc in (("dense", bytes, 0, 0), ("native", native, 0, 0),
                          ("csr", csr, 0, 0), ("coo", coo, 0, 0), ("block", block, 2, 2)):
    layer = SparseDense(fmt, ROWS, COLS, nnz, br, bc, make(w) if fmt == "dense" else make(),
                        1 << 30, -7, -128, 3, 1, bias)
    out = array("b", range(ROWS))
    alloc, dt, problem = measure(lambda: layer.forward(x, out))  # noqa: F821 - measure.py
    if out != want:
        print("CASE sparse-%s FAIL outputs differ from the dense kernel" % fmt)
    else:
        print("CASE sparse-%s %s us=%d alloc=%d" % (fmt, verdict(alloc, problem), dt,  # noqa: F821
                                                    alloc))
    layer = None
    gc.collect()
