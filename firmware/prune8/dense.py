# int8 inference: TensorFlow Lite Micro's fully connected layer, bit for bit, on MicroPython.
#
#   acc    = bias[r] + sum_c (x[c] - in_zp) * w[r, c]
#   out[r] = clamp(MultiplyByQuantizedMultiplier(acc, M, shift) + out_zp, lo, 127)
#
# with lo = max(-128, out_zp) for a fused ReLU and -128 otherwise (docs/spec.md §8.3;
# the calibration statistic: §8.7). The host twin is prune8_host.twin.dense.
#
# MultiplyByQuantizedMultiplier multiplies a 32-bit accumulator by a 31-bit multiplier:
# a 62-bit product. On MicroPython every integer of 2**30 or more is a heap-allocated big
# int, so the product is formed here in 15-bit limbs, and every intermediate of forward()
# and of the calibration accumulator stays below 2**30: they allocate nothing (measured by
# prune8_host/suite/scripts/test_dense_alloc.py; the bounds are also checked on CPython by
# tests/firmware/test_dense.py, which runs this file with every arithmetic result instrumented).
#
# The domain that keeps those bounds (docs/spec.md §8.4), checked when a layer is built
# or loaded:
#   rows, cols <= 4096: |sum_c (x - in_zp) * w| <= 255 * 128 * 4096 < 2**27
#   |bias| < 2**29:     |acc| < 2**29 + 2**27 < 2**30
#   M = 0 or 2**30 <= M < 2**31 (what QuantizeMultiplier makes), -31 <= shift <= 30

from array import array

from . import check, errors, quant_params

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

_MASK = const(0x7FFF)          # one 15-bit limb; B = 2**15 below
SAT = const(0x20000000)        # 2**29: a requantized value this large or larger is reported
                               # as +-SAT (the int8 output clamps long before)
MAX_CALIB = const(32767)       # images per calibration: 255 * 32767 * 127 < 2**30
MAX_UNITS = errors.MAX_UNITS_LIMIT

# S8[u] = the int8 value of raw byte u. A value v in -128..-1 read from an array('b')
# indexes S8[256 + v] through negative indexing, which is v again, so a bytearray (raw
# two's complement) and an array('b') are read alike without a branch per value.
S8 = array("b", bytes(256))
for _u in range(256):
    S8[_u] = _u - 256 if _u > 127 else _u


def high_mul(u, m2, m1, m0, neg):
    """floor((u * M + 2**30 - neg) / 2**31), for 0 <= u < 2**30 and
    M = m2 * 2**30 + m1 * 2**15 + m0 < 2**31 (m2 <= 1, m1 and m0 < 2**15).

    This is |SaturatingRoundingDoublingHighMul(x, M)| for |x| = u and neg = (x < 0):
    gemmlowp adds a nudge of 2**30 (x >= 0) or 1 - 2**30 (x < 0) to x * M and divides
    by 2**31 truncating toward zero, which on the magnitude is this floor. The sum
    u * M + K (K = 2**30 - neg) is built column by column in base B = 2**15; each line
    says why its value stays below 2**30. The result is below 2**30 because
    u * M + K < (2**30 - 1) * (2**31 - 1) + 2**30 < 2**61.
    """
    u0 = u & _MASK
    u1 = u >> 15                     # < B, as u < 2**30
    k = _MASK if neg else 0          # K = 2**30 - 1 = (B-1)*B + (B-1), or 2**30 = 1*B**2
    t = u0 * m0 + k                  # <= (B-1)**2 + (B-1) < B**2; digit 0 only carries
    t = u0 * m1 + k + (t >> 15)      # <= (B-1)**2 + 2(B-1) = B**2 - 1
    c = t >> 15                      # < B
    t = u1 * m0 + (t & _MASK)        # <= (B-1)**2 + (B-1); digit 1 only carries too
    c += t >> 15                     # < 2B
    t = u1 * m1 + (c & _MASK)        # <= (B-1)**2 + (B-1)
    c = (c >> 15) + (t >> 15)        # <= 1 + (B-1) = B
    t = (t & _MASK) + u0 * m2 + (0 if neg else 1)   # <= 2B - 1 (m2 <= 1)
    d2 = t & _MASK                   # digit 2 (weight B**2 = 2**30)
    c += t >> 15                     # <= B + 1
    t = u1 * m2 + c                  # <= 2B: digit 3 (2**45) in the low 15 bits, digit 4 above
    # sum >> 31 = d4 * 2**29 + d3 * 2**14 + (d2 >> 1): digits 0, 1 and d2's low bit make
    # less than 2**31 together. d4 <= 1 since the result is below 2**30.
    return ((t >> 15) << 29) + ((t & _MASK) << 14) + (d2 >> 1)


def requantize(acc, m2, m1, m0, left, right):
    """MultiplyByQuantizedMultiplier(acc, M, shift) of TFLM (double rounding), where
    left = max(shift, 0), right = max(-shift, 0), |acc| < 2**30 and M (in limbs, see
    high_mul) is 0 or in 2**30..2**31-1. Exact when the result is within +-(SAT - 1);
    a result of magnitude SAT or more comes back as +-SAT.
    """
    if m2 == 0 and m1 == 0 and m0 == 0:
        return 0                     # SRDHM(x, 0) = 0 for every x
    neg = acc < 0
    u = -acc if neg else acc
    if left:
        if u >> (30 - left):
            # |acc * 2**left| >= 2**30 (TFLM's int32 product may even overflow: prune8
            # saturates it) and M >= 2**30, so |SRDHM| >= 2**60 / 2**31 = 2**29 = SAT.
            return -SAT if neg else SAT
        u <<= left                   # < 2**30: the shifted accumulator, exactly
    q = high_mul(u, m2, m1, m0, neg)
    if right:
        # RoundingDivideByPOT rounds half away from zero: on the magnitude, half up.
        # (q + 2**(right-1)) >> right without forming 2**30 when right == 31.
        q = (q >> right) + ((q >> (right - 1)) & 1)
    if q > SAT:
        q = SAT                      # one contract for both paths: beyond 2**29 is +-SAT
    return -q if neg else q


def multiplier_limbs(multiplier):
    """(m2, m1, m0) of a multiplier 0 or 2**30..2**31-1 (may build a big int: setup only)."""
    quant_params.multiplier(multiplier)
    return multiplier >> 30, (multiplier >> 15) & _MASK, multiplier & _MASK


class Requant:
    """A layer's requantization, per output channel (row): the multiplier as 15-bit limbs
    (see high_mul) and the shift split into its left and right parts. `multiplier` and
    `shift` are one integer for every row (per tensor), or a sequence of one per row (per
    channel); every multiplier is checked, then every shift."""

    def __init__(self, rows, multiplier, shift):
        # (a sequence is a list, tuple or array: MicroPython's builtins have no __len__
        # attribute to test for)
        per_m = isinstance(multiplier, (list, tuple, array))
        per_s = isinstance(shift, (list, tuple, array))
        if per_m and len(multiplier) != rows:
            raise errors.dense_length("multiplier", len(multiplier), rows)
        if per_s and len(shift) != rows:
            raise errors.dense_length("shift", len(shift), rows)
        self.m2 = bytearray(rows)
        self.m1 = array("H", bytes(2 * rows))
        self.m0 = array("H", bytes(2 * rows))
        self.left = bytearray(rows)
        self.right = bytearray(rows)
        for r in range(rows):
            self.m2[r], self.m1[r], self.m0[r] = multiplier_limbs(
                multiplier[r] if per_m else multiplier)
        for r in range(rows):
            s = shift[r] if per_s else shift
            quant_params.int_in("shift", s, -31, 30)
            self.left[r] = s if s > 0 else 0
            self.right[r] = -s if s < 0 else 0

    def __call__(self, acc, r):
        """MultiplyByQuantizedMultiplier(acc, M[r], shift[r]) (+-SAT beyond 2**29)."""
        return requantize(acc, self.m2[r], self.m1[r], self.m0[r], self.left[r],
                          self.right[r])


class Dense:
    """One int8 fully connected layer of a fixed shape, as TFLM computes it.

    d = Dense(rows, cols, multiplier, shift, in_zp, out_zp, relu)
    d.load(w, bias)        # or fill d.w (array('b'), row-major) and d.bias (array('i'))
    d.forward(x, out)      # x: cols int8 values; out: rows int8 values (array('b') or
                           # bytearray, two's complement); allocates nothing
    The pruner works on d.w in place: p.magnitude(d.w); p.apply(d.w, p.mask(0.5)).
    """

    def __init__(self, rows, cols, multiplier, shift, in_zp, out_zp, relu=False):
        # multiplier, shift: per tensor (ints) or per output channel (a sequence per row)
        if not (check.is_int(rows) and check.is_int(cols)) \
                or not (1 <= rows <= MAX_UNITS and 1 <= cols <= MAX_UNITS):
            raise errors.dense_shape(rows, cols)
        self.rq = Requant(rows, multiplier, shift)
        quant_params.int_in("in_zp", in_zp, -128, 127)
        quant_params.int_in("out_zp", out_zp, -128, 127)
        if relu is not True and relu is not False:
            raise errors.quant_relu(relu)
        self.rows = rows
        self.cols = cols
        self.multiplier = multiplier
        self.shift = shift
        self.in_zp = in_zp
        self.out_zp = out_zp
        self.relu = relu
        self.lo = (out_zp if out_zp > -128 else -128) if relu else -128
        self.w = array("b", bytes(rows * cols))    # weights, row r = output neuron r
        self.bias = array("i", bytes(4 * rows))
        self._xs = array("h", bytes(2 * cols))     # x - in_zp, -255..255
        self._acc = array("i", bytes(4 * rows))    # each row's accumulator

    def __repr__(self):
        return "Dense(%d x %d, multiplier=%d, shift=%d, in_zp=%d, out_zp=%d, relu=%r)" % (
            self.rows, self.cols, self.multiplier, self.shift, self.in_zp, self.out_zp,
            self.relu)

    def load(self, w, bias):
        """Copy weights (rows * cols int8: bytearray, bytes, array('b') or a memoryview)
        and biases (rows integers, |bias| < 2**29). Checks all before writing anything."""
        check.int8_buffer(w, "weights")
        n = self.rows * self.cols
        if len(w) != n:
            raise errors.dense_length("weights", len(w), n)
        if len(bias) != self.rows:
            raise errors.dense_length("bias", len(bias), self.rows)
        for r in range(self.rows):
            b = bias[r]
            if not check.is_int(b) or b < -SAT or b >= SAT:
                raise errors.quant_bias(b, r)
        dst = self.w
        t = S8
        for i in range(n):
            dst[i] = t[w[i]]
        for r in range(self.rows):
            self.bias[r] = bias[r]

    def requantize(self, acc, r=0):
        """MultiplyByQuantizedMultiplier(acc, row r's multiplier and shift), +-SAT beyond
        2**29."""
        return self.rq(acc, r)

    def forward(self, x, out):
        """out[r] = the layer's int8 output r for input x. Allocates nothing."""
        cols = self.cols
        rows = self.rows
        if len(x) != cols:
            raise errors.dense_length("input", len(x), cols)
        if len(out) != rows:
            raise errors.dense_length("output", len(out), rows)
        xs = self._xs
        t = S8
        zp = self.in_zp
        for c in range(cols):
            xs[c] = t[x[c]] - zp
        acc = self._acc
        dense_acc(self.w, xs, self.bias, rows, cols, acc)
        rq = self.rq
        requantize_rows(acc, rq.m2, rq.m1, rq.m0, rq.left, rq.right, out, self.out_zp,
                        self.lo)


def dot(w, off, xs, c0, count):
    """sum_j xs[c0 + j] * w[off + j] over count int8 weights (w an array('b'), or raw
    bytes read through S8): at most 255 * 128 * 4096 < 2**27 (a kernel: prune8.kernels
    may put prune8.viper's in its place)."""
    t = S8
    s = 0
    for j in range(count):
        s += xs[c0 + j] * t[w[off + j]]
    return s


def dense_acc(w, xs, bias, rows, cols, acc):
    """acc[r] = bias[r] + row r's dot product with xs: |acc| < 2**30 (see top). A
    kernel, as dot and requantize_rows are: prune8.kernels may put prune8.viper's in
    their place."""
    i = 0
    for r in range(rows):
        acc[r] = bias[r] + dot(w, i, xs, 0, cols)
        i += cols


def requantize_rows(acc, m2, m1, m0, left, right, out, out_zp, lo):
    """out[r] = the int8 output of accumulator acc[r] (bias included): row r's
    requantization (a Requant's limbs and shifts), plus out_zp, clamped to lo..127
    (written as a raw byte into a bytearray). Every kernel ends here: Dense.forward,
    and those that sum a row in pieces (prune8.sparse, prune8.stored_dense)."""
    raw = isinstance(out, bytearray)
    for r in range(len(out)):
        v = requantize(acc[r], m2[r], m1[r], m0[r], left[r], right[r]) + out_zp
        if v < lo:
            v = lo
        elif v > 127:
            v = 127
        out[r] = v & 255 if raw else v


def dense_tiles(stream, tiled, xs, acc, rows, cols):
    """acc[r] += sum_c xs[c] * w[r, c] over a layer's weights read from `stream` (a
    tiles.Stream of int8), zeroed first by `tiled` (a TiledMask, or None)."""
    stream.rewind()
    n = rows * cols
    i0 = 0
    while i0 < n:
        m = stream.more()
        w = stream.buf
        if tiled is not None:
            tiled.zero(w, 0, m, i0)
        i = 0
        while i < m:  # the tile's pieces of rows; |sum| < 2**30 (see top)
            r = (i0 + i) // cols
            c = (i0 + i) - r * cols
            k = cols - c if cols - c < m - i else m - i
            acc[r] += dot(w, i, xs, c, k)
            i += k
        i0 += m


class ColumnStats:
    """The gradient proxy's activation statistic, accumulated over calibration inputs.

    For each input column c: sums[c] = sum over images of |x[c] - zp|; result() makes
    a[c] = (127 * sums[c] + max // 2) // max, with max = the largest sum (0 when it is 0):
    int8 activations 0..127 for twin.gradient_scores / Pruner.gradient
    (docs/spec.md §8.7).
    """

    def __init__(self, cols):
        if not check.is_int(cols) or not 1 <= cols <= MAX_UNITS:
            raise errors.dense_shape(1, cols)
        self.cols = cols
        self.sums = array("i", bytes(4 * cols))
        self.count = 0

    def reset(self):
        for c in range(self.cols):
            self.sums[c] = 0
        self.count = 0

    def add(self, x, zp):
        """Accumulate one input (cols int8 values) whose zero point is zp. Allocates nothing."""
        cols = self.cols
        if len(x) != cols:
            raise errors.dense_length("input", len(x), cols)
        if self.count >= MAX_CALIB:
            raise errors.calib_full(MAX_CALIB)
        s = self.sums
        t = S8
        for c in range(cols):
            v = t[x[c]] - zp             # -255..255
            s[c] += v if v >= 0 else -v  # <= 255 * 32767 < 2**23
        self.count += 1

    def result(self, out):
        """Write the statistic (0..127) into out (cols entries) and return out."""
        cols = self.cols
        if len(out) != cols:
            raise errors.dense_length("activations", len(out), cols)
        s = self.sums
        top = 0
        for c in range(cols):
            if s[c] > top:
                top = s[c]
        half = top >> 1
        for c in range(cols):
            # 127 * sum + half <= 127 * 255 * 32767 + 2**22 < 2**30
            out[c] = (s[c] * 127 + half) // top if top else 0
        return out


class Network:
    """Dense layers in a chain, with every layer's output buffer and calibration
    accumulator allocated here, once.

    net = Network([fc1, fc2]); logits = net.forward(x); k = net.predict(x)
    net.forward(x, True) also accumulates each layer's input into net.stats[i];
    net.stats[i].result(a) then gives layer i's gradient-proxy activations.
    """

    def __init__(self, layers):
        for i in range(1, len(layers)):
            prev, d = layers[i - 1], layers[i]
            if d.cols != prev.rows:
                raise errors.chain_mismatch(i, "cols", d.cols, prev.rows)
            if d.in_zp != prev.out_zp:
                raise errors.chain_mismatch(i, "in_zp", d.in_zp, prev.out_zp)
        self.layers = tuple(layers)
        self.outs = tuple(array("b", bytes(d.rows)) for d in layers)
        self.stats = tuple(ColumnStats(d.cols) for d in layers)

    def close(self):
        """Close the files of layers run from flash (prune8.stored_dense, prune8.sparse)."""
        for d in self.layers:
            if hasattr(d, "close"):
                d.close()

    def forward(self, x, calibrate=False):
        """The last layer's int8 outputs (the network's own buffer). Allocates nothing."""
        inp = x
        for i in range(len(self.layers)):
            d = self.layers[i]
            if calibrate:
                self.stats[i].add(inp, d.in_zp)
            out = self.outs[i]
            d.forward(inp, out)
            inp = out
        return inp

    def predict(self, x):
        """Index of the largest output (the lowest index among equals)."""
        out = self.forward(x)
        best = 0
        for j in range(1, len(out)):
            if out[j] > out[best]:
                best = j
        return best


# the viper kernels take over these names where chosen (prune8.kernels)
from . import kernels as _kernels  # noqa: E402

_kernels.bind(__name__)
