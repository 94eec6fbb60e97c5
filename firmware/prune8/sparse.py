# Sparse int8 inference: a dense layer run straight from its packed form (docs/sparse.md;
# docs/spec.md §9.7, §8.3).
#
# SparseDense has the interface of dense.Dense (rows, cols, in_zp, out_zp, forward), so a
# dense.Network chains it. forward() accumulates, per output row, bias[r] plus the
# products of the stored non-zero weights with (x - in_zp), then requantizes exactly as
# dense.Dense does (dense.requantize_rows, the same clamp): the outputs are those of the
# dense kernel on the same pruned weights, whatever the format. A zero weight adds
# nothing to a row's sum, so skipping it changes no integer. Allocates nothing per call.
#
# Each part of a payload (mask bits, indices, values, COO entries) is read in order
# through a tiles.Stream: held in RAM when the payload is small, read a chunk at a time
# from the packed file when it is bigger than a tile (docs/streaming.md), by the same
# kernel loops.

import struct
from array import array

from . import dense, errors, kernels, quant_params
from .formats import BIAS, MULT, QUANT_CHANNEL, SHIFT
from .packed_format import (
    COO_ENTRY,
    COO_ENTRY_WIDE,
    PACKED_FORMATS,
    PACKED_HEAD,
    PACKED_MAGIC,
    PACKED_RECORD,
)
from .tiles import Stream

_REC_SIZE = struct.calcsize(PACKED_RECORD)
_COO = struct.calcsize(COO_ENTRY)            # u16 row, u16 column, int8 value
_COO_WIDE = struct.calcsize(COO_ENTRY_WIDE)  # u32 row, u32 column, int8 value


class SparseDense:
    """One quantized layer from a packed record; forward(x, out) like dense.Dense.

    payload: the record's bytes; or None, and f, offset, size: the open packed file,
    where the payload starts in it and its length, read `chunk` bytes at a time."""

    def __init__(self, fmt, rows, cols, nnz, br, bc, payload, multiplier, shift, in_zp,
                 out_zp, relu, bias, f=None, offset=0, size=0, chunk=2048):
        # The same parameter checks (and errors) as a dense layer of this shape.
        held = payload is not None
        self._dense = dense.Dense(rows, cols, multiplier, shift, in_zp, out_zp, bool(relu)) \
            if fmt == "dense" and held else None
        if self._dense is None:
            if not (1 <= rows <= dense.MAX_UNITS and 1 <= cols <= dense.MAX_UNITS):
                raise errors.dense_shape(rows, cols)
            quant_params.int_in("in_zp", in_zp, -128, 127)
            quant_params.int_in("out_zp", out_zp, -128, 127)
        self.rq = self._dense.rq if self._dense is not None else \
            dense.Requant(rows, multiplier, shift)
        self.format = fmt
        self.rows, self.cols, self.nnz = rows, cols, nnz
        self.in_zp, self.out_zp, self.relu = in_zp, out_zp, bool(relu)
        self.bias = array("i", bytes(4 * rows))
        for r in range(rows):
            b = bias[r]
            if b < -dense.SAT or b >= dense.SAT:
                raise errors.quant_bias(b, r)
            self.bias[r] = b
        self.lo = (out_zp if out_zp > -128 else -128) if relu else -128
        self._xs = array("h", bytes(2 * cols))
        self._acc = array("i", bytes(4 * rows))
        self.br, self.bc = br, bc
        self.f = f
        n = rows * cols
        wide = n > 65536
        self.wide = wide
        idx = "I" if wide else "H"
        iw = 4 if wide else 2
        # (start, length) of the payload's parts, in bytes
        if fmt == "dense":
            if held:
                self._dense.load(payload, self.bias)
                return
            self.vals = self._part("b", 1, chunk, offset, n)
        elif fmt == "native":
            nb = ((n + 31) >> 5) << 2
            self.bits = self._part("B", 1, chunk, offset, nb, payload, 0)
            self.vals = self._part("b", 1, chunk, offset + nb, nnz, payload, nb)
        elif fmt == "csr":
            head = iw * (rows + 1)
            if held:
                self.ptr = array(idx, payload[:head])
            else:
                self.ptr = array(idx, bytes(head))
                f.seek(offset)
                f.readinto(self.ptr)
            each = chunk // iw  # indices and values are read in step
            self.idx = self._part(idx, iw, each, offset + head, nnz, payload, head)
            self.vals = self._part("b", 1, each, offset + head + iw * nnz, nnz, payload,
                                   head + iw * nnz)
        elif fmt == "coo":
            rec = _COO_WIDE if wide else _COO
            self.entries = self._part("B", 1, (chunk // rec) * rec, offset, rec * nnz,
                                      payload, 0)
        elif fmt == "block":
            nb = (rows // br) * (cols // bc)
            nbytes = ((nb + 31) >> 5) << 2
            self.bits = self._part("B", 1, chunk, offset, nbytes, payload, 0)
            if held:
                size = len(payload)
            self.vals = self._part("b", 1, chunk, offset + nbytes, size - nbytes, payload,
                                   nbytes)
        else:
            raise errors.packed_format(fmt)

    def _part(self, code, size, chunk, offset, count, payload=None, start=0):
        """A Stream over count items of the payload: held (a copy of payload's bytes
        start .. start + size * count), or read from the file."""
        if payload is not None:
            s = Stream(code, size, 0)
            s.hold(array(code, payload[start:start + size * count]))
        else:
            s = Stream(code, size, chunk)
            s.start(self.f, offset, count)
        return s

    def __repr__(self):
        return "SparseDense(%s, %d x %d, nnz=%d%s)" % (
            self.format, self.rows, self.cols, self.nnz, ", from flash" if self.f else "")

    def close(self):
        if self.f is not None:
            self.f.close()

    def forward(self, x, out):
        """out[r] = the layer's int8 output r for input x. Allocates nothing."""
        if self._dense is not None:
            self._dense.forward(x, out)
            return
        rows, cols = self.rows, self.cols
        if len(x) != cols:
            raise errors.dense_length("input", len(x), cols)
        if len(out) != rows:
            raise errors.dense_length("output", len(out), rows)
        xs = self._xs
        acc = self._acc
        t = dense.S8
        zp = self.in_zp
        for c in range(cols):
            xs[c] = t[x[c]] - zp
        fmt = self.format
        rq = self.rq
        fast = kernels.VIPER  # the viper kernels' row sums, while they run
        if fast is not None and self.f is None and fmt != "dense":
            self._fast_sums(fast, xs, acc)
            dense.requantize_rows(acc, rq.m2, rq.m1, rq.m0, rq.left, rq.right, out,
                                  self.out_zp, self.lo)
            return
        for r in range(rows):
            acc[r] = self.bias[r]
        if fmt == "native":
            self._native(xs, acc)
        elif fmt == "csr":
            self._csr(xs, acc)
        elif fmt == "coo":
            self._coo(xs, acc)
        elif fmt == "block":
            self._block(xs, acc)
        else:
            dense.dense_tiles(self.vals, None, xs, acc, rows, cols)
        dense.requantize_rows(acc, rq.m2, rq.m1, rq.m0, rq.left, rq.right, out, self.out_zp,
                              self.lo)

    def _fast_sums(self, fast, xs, acc):
        """acc[r] = bias[r] + row r's sum, by the viper kernels (a held payload)."""
        fmt = self.format
        b = self.bias
        if fmt == "native":
            fast.native_sums(self.bits.buf, self.vals.buf, xs, b, self.rows, self.cols, acc)
        elif fmt == "csr":
            fast.csr_sums(self.ptr, self.idx.buf, self.vals.buf, xs, b, self.rows, self.wide,
                          acc)
        elif fmt == "coo":
            fast.coo_sums(self.entries.buf, self.nnz, xs, b, self.rows, self.wide, acc)
        else:
            fast.block_sums(self.bits.buf, self.vals.buf, xs, b, self.rows, self.cols,
                            self.br, self.bc, acc)

    def _native(self, xs, acc):
        # Walk the mask a byte (8 weights) at a time, skipping all-zero bytes where the
        # whole byte lies in one row: the pruned weights cost one test per 8.
        bits = self.bits
        vals = self.vals
        bits.rewind()
        vals.rewind()
        bb = bits.buf
        vb = vals.buf
        be = bits.end
        ve = vals.end
        bj = 0
        k = 0
        rows = self.rows
        cols = self.cols
        r = 0
        c = 0
        s = acc[0]
        while r < rows:
            if bj == be:
                be = bits.more()
                bj = 0
            b = bb[bj]
            bj += 1
            if c + 8 <= cols:
                d = c
                while b:
                    if b & 1:
                        if k == ve:
                            ve = vals.more()
                            k = 0
                        s += xs[d] * vb[k]
                        k += 1
                    b >>= 1
                    d += 1
                c += 8
                if c == cols:
                    acc[r] = s
                    r += 1
                    c = 0
                    if r < rows:
                        s = acc[r]
            else:
                for _ in range(8):
                    if b & 1:
                        if k == ve:
                            ve = vals.more()
                            k = 0
                        s += xs[c] * vb[k]
                        k += 1
                    b >>= 1
                    c += 1
                    if c == cols:
                        acc[r] = s
                        r += 1
                        c = 0
                        if r == rows:
                            break
                        s = acc[r]

    def _csr(self, xs, acc):
        ptr = self.ptr
        idx = self.idx
        vals = self.vals
        idx.rewind()
        vals.rewind()
        ib = idx.buf
        vb = vals.buf
        e = idx.end
        q = 0
        for r in range(self.rows):
            s = acc[r]
            for _ in range(ptr[r], ptr[r + 1]):
                if q == e:
                    e = idx.more()
                    vals.more()
                    q = 0
                s += xs[ib[q]] * vb[q]
                q += 1
            acc[r] = s

    def _coo(self, xs, acc):
        # Entries decoded by hand (COO_ENTRY / COO_ENTRY_WIDE, little-endian): struct
        # would build a tuple per entry.
        ent = self.entries
        ent.rewind()
        b = ent.buf
        e = ent.end
        q = 0
        t = dense.S8
        wide = self.wide
        for _ in range(self.nnz):
            if q == e:
                e = ent.more()
                q = 0
            if wide:  # indices < 2**24 (rows, cols <= 4096): no byte above bit 23 is set
                r = b[q] | (b[q + 1] << 8) | (b[q + 2] << 16) | (b[q + 3] << 24)
                c = b[q + 4] | (b[q + 5] << 8) | (b[q + 6] << 16) | (b[q + 7] << 24)
                v = t[b[q + 8]]
                q += 9
            else:
                r = b[q] | (b[q + 1] << 8)
                c = b[q + 2] | (b[q + 3] << 8)
                v = t[b[q + 4]]
                q += 5
            acc[r] += xs[c] * v

    def _block(self, xs, acc):
        # The dense values of each non-zero block, in block order.
        bits = self.bits
        vals = self.vals
        bits.rewind()
        vals.rewind()
        bb = bits.buf
        vb = vals.buf
        be = bits.end
        ve = vals.end
        bj = 0
        k = 0
        byte = 0
        br, bc = self.br, self.bc
        gc = self.cols // bc
        for blk in range((self.rows // br) * gc):
            if not blk & 7:
                if bj == be:
                    be = bits.more()
                    bj = 0
                byte = bb[bj]
                bj += 1
            if (byte >> (blk & 7)) & 1:
                r0 = (blk // gc) * br
                c0 = (blk % gc) * bc
                for r in range(r0, r0 + br):
                    s = acc[r]
                    for c in range(c0, c0 + bc):
                        if k == ve:
                            ve = vals.more()
                            k = 0
                        s += xs[c] * vb[k]
                        k += 1
                    acc[r] = s


def read_packed(path, chunk=2048):
    """[(name, SparseDense)] of a packed model file, loaded layer by layer: a payload of
    up to `chunk` bytes into RAM, a bigger one read from the file as it runs (the file
    then stays open until the layers are closed)."""
    layers = []
    f = open(path, "rb")
    streamed = False
    ok = False
    try:
        if f.read(len(PACKED_MAGIC)) != PACKED_MAGIC:
            raise errors.not_packed(path)
        count = struct.unpack(PACKED_HEAD, f.read(struct.calcsize(PACKED_HEAD)))[0]
        for _ in range(count):
            name = f.read(f.read(1)[0]).decode()
            (fmt, rows, cols, nnz, br, bc, size, quant, mult, shift, in_zp, out_zp,
             relu) = struct.unpack(PACKED_RECORD, f.read(_REC_SIZE))
            if not quant:
                raise errors.packed_no_quant(name)
            raw = f.read(4 * rows)
            bias = [struct.unpack_from(BIAS, raw, 4 * r)[0] for r in range(rows)]
            if quant == QUANT_CHANNEL:  # per-channel multipliers and shifts follow
                raw = f.read(5 * rows)
                mult = [struct.unpack_from(MULT, raw, 4 * r)[0] for r in range(rows)]
                shift = [struct.unpack_from(SHIFT, raw, 4 * rows + r)[0] for r in range(rows)]
            at = f.tell()
            if size > chunk:
                layer = SparseDense(PACKED_FORMATS[fmt], rows, cols, nnz, br, bc, None, mult,
                                    shift, in_zp, out_zp, relu, bias, f, at, size, chunk)
                streamed = True
                f.seek(at + size)
            else:
                layer = SparseDense(PACKED_FORMATS[fmt], rows, cols, nnz, br, bc,
                                    f.read(size), mult, shift, in_zp, out_zp, relu, bias)
            layers.append((name, layer))
        ok = True
    finally:
        if not (ok and streamed):
            f.close()
    return layers
