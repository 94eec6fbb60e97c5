# Sparse int8 inference: a dense layer run straight from its packed form (docs/sparse.md).
#
# SparseDense has the interface of dense.Dense (rows, cols, in_zp, out_zp, forward), so a
# dense.Network chains it. forward() accumulates, per output row, bias[r] plus the
# products of the stored non-zero weights with (x - in_zp), then requantizes exactly as
# dense.Dense does (dense.requantize, the same clamp): the outputs are those of the dense
# kernel on the same pruned weights, whatever the format. A zero weight adds nothing to
# a row's sum, so skipping it changes no integer. Allocates nothing per call.

import struct
from array import array

from . import dense, errors
from .protocol import (
    BIAS,
    COO_ENTRY,
    COO_ENTRY_WIDE,
    MULT,
    PACKED_FORMATS,
    PACKED_HEAD,
    PACKED_MAGIC,
    PACKED_RECORD,
    QUANT_CHANNEL,
    SHIFT,
)

_REC_SIZE = struct.calcsize(PACKED_RECORD)


class SparseDense:
    """One quantized layer from a packed record; forward(x, out) like dense.Dense."""

    def __init__(self, fmt, rows, cols, nnz, br, bc, payload, multiplier, shift, in_zp,
                 out_zp, relu, bias):
        # The same parameter checks (and errors) as a dense layer of this shape.
        self._dense = dense.Dense(rows, cols, multiplier, shift, in_zp, out_zp, bool(relu)) \
            if fmt == "dense" else None
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
        wide = rows * cols > 65536
        idx = "I" if wide else "H"
        iw = 4 if wide else 2
        n = rows * cols
        if fmt == "dense":
            self._dense.load(payload, self.bias)
        elif fmt == "native":
            nb = ((n + 31) >> 5) << 2
            self.bits = bytes(payload[:nb])
            self.vals = array("b", payload[nb:nb + nnz])
        elif fmt == "csr":
            self.ptr = array(idx, payload[:iw * (rows + 1)])
            self.idx = array(idx, payload[iw * (rows + 1):iw * (rows + 1 + nnz)])
            self.vals = array("b", payload[iw * (rows + 1 + nnz):])
        elif fmt == "coo":
            rec = 2 * iw + 1
            self.r = array(idx, bytes(iw * nnz))
            self.c = array(idx, bytes(iw * nnz))
            self.vals = array("b", bytes(nnz))
            code = COO_ENTRY_WIDE if wide else COO_ENTRY
            for k in range(nnz):
                self.r[k], self.c[k], self.vals[k] = struct.unpack_from(code, payload, k * rec)
        elif fmt == "block":
            nb = (rows // br) * (cols // bc)
            nbytes = ((nb + 31) >> 5) << 2
            self.bits = bytes(payload[:nbytes])
            self.vals = array("b", payload[nbytes:])
        else:
            raise ValueError("unknown packed format %r" % (fmt,))

    def __repr__(self):
        return "SparseDense(%s, %d x %d, nnz=%d)" % (self.format, self.rows, self.cols,
                                                    self.nnz)

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
        # one name per line: MicroPython builds a tuple for multiple assignment of more
        # than three names, which would allocate on every call
        xs = self._xs
        acc = self._acc
        t = dense.S8
        zp = self.in_zp
        for c in range(cols):
            xs[c] = t[x[c]] - zp
        for r in range(rows):
            acc[r] = self.bias[r]
        fmt = self.format
        vals = self.vals
        if fmt == "native":
            # Walk the mask a byte (8 weights) at a time where a whole byte lies in one
            # row, skipping all-zero bytes: the pruned weights cost one test per 8.
            bits = self.bits
            k = 0
            i = 0
            for r in range(rows):
                s = acc[r]
                c = 0
                while c < cols:
                    if not (i & 7) and c + 8 <= cols:
                        b = bits[i >> 3]
                        if b:
                            d = c
                            while b:
                                if b & 1:
                                    s += xs[d] * vals[k]
                                    k += 1
                                b >>= 1
                                d += 1
                        c += 8
                        i += 8
                    else:
                        if (bits[i >> 3] >> (i & 7)) & 1:
                            s += xs[c] * vals[k]
                            k += 1
                        c += 1
                        i += 1
                acc[r] = s
        elif fmt == "csr":
            ptr, idx = self.ptr, self.idx
            for r in range(rows):
                s = acc[r]
                for j in range(ptr[r], ptr[r + 1]):
                    s += xs[idx[j]] * vals[j]
                acc[r] = s
        elif fmt == "coo":
            rr, cc = self.r, self.c
            for k in range(self.nnz):
                acc[rr[k]] += xs[cc[k]] * vals[k]
        else:  # block: the dense values of each non-zero block, in block order
            bits = self.bits
            br, bc = self.br, self.bc
            gc = cols // bc
            k = 0
            for b in range((rows // br) * gc):
                if (bits[b >> 3] >> (b & 7)) & 1:
                    r0 = (b // gc) * br
                    c0 = (b % gc) * bc
                    for r in range(r0, r0 + br):
                        s = acc[r]
                        for c in range(c0, c0 + bc):
                            s += xs[c] * vals[k]
                            k += 1
                        acc[r] = s
        rq = self.rq
        m2 = rq.m2
        m1 = rq.m1
        m0 = rq.m0
        left = rq.left
        right = rq.right
        out_zp, lo = self.out_zp, self.lo
        raw = isinstance(out, bytearray)
        for r in range(rows):
            v = dense.requantize(acc[r], m2[r], m1[r], m0[r], left[r], right[r]) + out_zp
            if v < lo:
                v = lo
            elif v > 127:
                v = 127
            out[r] = v & 255 if raw else v


def read_packed(path):
    """[(name, SparseDense)] of a packed model file, loaded layer by layer."""
    layers = []
    with open(path, "rb") as f:
        if f.read(len(PACKED_MAGIC)) != PACKED_MAGIC:
            raise ValueError("%s is not a prune8 packed model" % path)
        count = struct.unpack(PACKED_HEAD, f.read(struct.calcsize(PACKED_HEAD)))[0]
        for _ in range(count):
            name = f.read(f.read(1)[0]).decode()
            (fmt, rows, cols, nnz, br, bc, size, quant, mult, shift, in_zp, out_zp,
             relu) = struct.unpack(PACKED_RECORD, f.read(_REC_SIZE))
            if not quant:
                raise ValueError("packed layer %r has no int8 inference parameters" % name)
            raw = f.read(4 * rows)
            bias = [struct.unpack_from(BIAS, raw, 4 * r)[0] for r in range(rows)]
            if quant == QUANT_CHANNEL:  # per-channel multipliers and shifts follow
                raw = f.read(5 * rows)
                mult = [struct.unpack_from(MULT, raw, 4 * r)[0] for r in range(rows)]
                shift = [struct.unpack_from(SHIFT, raw, 4 * rows + r)[0] for r in range(rows)]
            layers.append((name, SparseDense(PACKED_FORMATS[fmt], rows, cols, nnz, br, bc,
                                             f.read(size), mult, shift, in_zp, out_zp,
                                             relu, bias)))
    return layers
