# Sparse inference allocates nothing: SparseDense.forward from every packed format, with
# the collector disabled, leaves gc.mem_alloc() where it was. The layers are built here
# from packed payloads of a 32 x 64 layer with a quarter of its weights kept.
import struct
from array import array

from prune8 import dense
from prune8.protocol import COO_ENTRY
from prune8.sparse import SparseDense

ROWS, COLS = 32, 64
N = ROWS * COLS
w = bytearray(N)
for i in range(N):
    if (i * 7) % 4 == 0:
        w[i] = (i * 37 + 11) & 255 or 1
bias = [(r * 97) % 2000 - 1000 for r in range(ROWS)]
nz = [i for i in range(N) if w[i]]

bits = bytearray(((N + 31) >> 5) << 2)
for i in nz:
    bits[i >> 3] |= 1 << (i & 7)
native = bytes(bits) + bytes(w[i] for i in nz)
ptr = [0]
for r in range(ROWS):
    ptr.append(ptr[-1] + sum(1 for i in nz if i // COLS == r))
csr = b"".join(struct.pack("<H", v) for v in ptr) + \
    b"".join(struct.pack("<H", i % COLS) for i in nz) + bytes(w[i] for i in nz)
coo = b"".join(struct.pack(COO_ENTRY, i // COLS, i % COLS, w[i] - 256 if w[i] > 127 else w[i])
               for i in nz)
blocks = [(r, c) for r in range(0, ROWS, 2) for c in range(0, COLS, 2)]
bbits = bytearray(((len(blocks) + 31) >> 5) << 2)
bvals = bytearray()
for b, (r, c) in enumerate(blocks):
    vals = [w[(r + dr) * COLS + c + dc] for dr in range(2) for dc in range(2)]
    if any(vals):
        bbits[b >> 3] |= 1 << (b & 7)
        bvals += bytes(vals)
block = bytes(bbits) + bytes(bvals)

x = bytearray(COLS)
for c in range(COLS):
    x[c] = (c * 13) & 255
ref = dense.Dense(ROWS, COLS, 1 << 30, -7, -128, 3, True)
ref.load(w, bias)
want = array("b", bytes(ROWS))
ref.forward(x, want)
for fmt, payload, nnz, br, bc in (("dense", bytes(w), len(nz), 0, 0),
                                  ("native", native, len(nz), 0, 0),
                                  ("csr", csr, len(nz), 0, 0), ("coo", coo, len(nz), 0, 0),
                                  ("block", block, len(nz), 2, 2)):
    layer = SparseDense(fmt, ROWS, COLS, nnz, br, bc, payload, 1 << 30, -7, -128, 3, 1, bias)
    out = array("b", bytes(ROWS))
    alloc, dt, problem = measure(lambda: layer.forward(x, out))  # noqa: F821 - measure.py
    if out != want:
        print("CASE sparse-%s FAIL outputs differ from the dense kernel" % fmt)
    else:
        print("CASE sparse-%s %s us=%d alloc=%d" % (fmt, verdict(alloc, problem), dt,  # noqa: F821
                                                    alloc))
