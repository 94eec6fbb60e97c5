# The keep mask (docs/spec.md §4.1; loading §4.2, apply §4.3, stats §4.5, the exact and
# strict fill of §3.2-§3.4): bit i set = keep entry i, stored as little-endian uint32
# words, which on the board are plain bytes (bit i & 7 of byte i >> 3). Bits are set and
# cleared bytewise, so no 32-bit integer (a heap-allocated big int in MicroPython) is ever
# built on a hot path.

from array import array

from . import errors


def _nbytes(n):
    """Bytes in ceil(n / 32) little-endian uint32 words."""
    return ((n + 31) >> 5) << 2


class Mask:
    """A keep mask over n entries: Mask(n) starts with every entry kept.

    m.is_kept(i), m.keep(i), m.prune(i); m.n, m.pruned, m.kept, m.sparsity_bp;
    m.words() (uint32 list, for display), m.bytes() (the wire format), m.copy().
    """

    def __init__(self, n=0, capacity=None):
        if capacity is None:
            capacity = n
        self.capacity = capacity
        self._bits = bytearray(_nbytes(capacity))
        self._counts = array("i", bytes(4))  # the kernels' pruned count
        self.n = 0
        self.pruned = 0
        if n:
            self.keep_all(n)

    # -- building (allocation-free) ------------------------------------------------

    def keep_all(self, n):
        """Reset to n entries, all kept."""
        if n > self.capacity:
            raise errors.capacity_weights(n, self.capacity)
        bits = self._bits
        full = n >> 3
        for j in range(full):
            bits[j] = 255
        rest = full
        if n & 7:
            bits[rest] = (1 << (n & 7)) - 1
            rest += 1
        for j in range(rest, _nbytes(n)):
            bits[j] = 0
        self.n = n
        self.pruned = 0

    def fill(self, src, n, t, ties, wide=False):
        """Prune entries with src[i] < t, and the first `ties` entries equal to t (src:
        int16 scores, or int32 with wide)."""
        if n > self.capacity:
            raise errors.capacity_weights(n, self.capacity)
        self.pruned = 0
        self.fill_span(src, 0, 0, n, t, ties, wide)
        self.n = n
        self.clear_from(n)

    def fill_rows(self, src, rows, cols, ts, ties):
        """A per-channel fill over rows x cols entries: in row r, prune entries with
        src[i] < ts[r], and the first ties[r] entries equal to ts[r]."""
        self.pruned = 0
        i = 0
        for r in range(rows):
            self.fill_span(src, i, i, cols, ts[r], ties[r], False)
            i += cols
        self.n = i
        self.clear_from(i)

    def fill_span(self, src, off, start, count, t, ties, wide=False):
        """Bits start .. start + count - 1 from src[off:off + count]: pruned where the
        score is below t, and the first `ties` scores equal to t; kept otherwise. The bits
        of the byte holding `start` below it stay as they are, those above it must be 0.
        Adds the pruned entries to self.pruned and returns the ties not used (a tiled
        fill carries them into its next tile). src: int16 scores, or int32 with wide."""
        counts = self._counts
        counts[0] = 0
        ties = fill_bits(self._bits, src, off, start, count, t, ties, wide, counts)
        self.pruned += counts[0]
        return ties

    def clear_from(self, n):
        """Zero the bytes after entry n's (the stray bits of the last word)."""
        bits = self._bits
        for z in range((n + 7) >> 3, _nbytes(n)):
            bits[z] = 0

    def load(self, data, n):
        """Take n entries from wire bytes (ceil(n/32) little-endian words)."""
        if n > self.capacity:
            raise errors.capacity_weights(n, self.capacity)
        nb = _nbytes(n)
        if len(data) != nb:
            raise errors.words_mismatch(len(data) >> 2, n)
        for j in range(n >> 3, nb):  # the bytes that hold bits past n, which must be 0
            lo = j << 3
            if data[j] >> (n - lo if n > lo else 0):
                raise errors.stray_bits(n)
        bits = self._bits
        for j in range(nb):
            bits[j] = data[j]
        self.n = n
        self.pruned = n - popcount(bits, nb)

    def apply(self, w, n):
        """w[i] = 0 wherever bit i is 0 (n == self.n, checked by the caller)."""
        apply_bits(self._bits, w, n)

    # -- reading -------------------------------------------------------------------

    def _check_index(self, i):
        if i < 0 or i >= self.n:
            raise errors.index_range("mask index", i, self.n)

    def is_kept(self, i):
        self._check_index(i)
        return (self._bits[i >> 3] >> (i & 7)) & 1 == 1

    def keep(self, i):
        """Mark entry i kept."""
        self._check_index(i)
        if not self.is_kept(i):
            self._bits[i >> 3] |= 1 << (i & 7)
            self.pruned -= 1

    def prune(self, i):
        """Mark entry i pruned."""
        self._check_index(i)
        if self.is_kept(i):
            self._bits[i >> 3] &= 255 ^ (1 << (i & 7))
            self.pruned += 1

    @property
    def kept(self):
        return self.n - self.pruned

    @property
    def sparsity_bp(self):
        return self.pruned * 10000 // self.n if self.n else 0

    def stats(self):
        return {"n": self.n, "pruned": self.pruned, "kept": self.n - self.pruned,
                "sparsity_bp": self.sparsity_bp}

    def bytes(self):
        """The wire format: ceil(n/32) uint32 words, little-endian."""
        return bytes(self._bits[:_nbytes(self.n)])

    def words(self):
        """The mask as a list of uint32 words (builds big ints: for display only)."""
        b = self._bits
        return [b[j] | b[j + 1] << 8 | b[j + 2] << 16 | b[j + 3] << 24
                for j in range(0, _nbytes(self.n), 4)]

    def copy(self):
        """A mask of its own that the pruner's next call will not overwrite."""
        m = Mask(0, self.n)
        m.load(self._bits[:_nbytes(self.n)], self.n)
        return m

    def __len__(self):
        return self.n

    def __repr__(self):
        bp = self.sparsity_bp
        return "Mask(n=%d, pruned=%d, kept=%d, sparsity=%d.%02d%%)" % (
            self.n, self.pruned, self.n - self.pruned, bp // 100, bp % 100)


# -- kernels (prune8.kernels may put prune8.viper's in their place) ----------------------

def fill_bits(bits, src, off, start, count, t, ties, wide, counts):
    """Mask.fill_span's loop: bits start .. start + count - 1 from src[off:off + count];
    counts[0] += the pruned entries; returns the ties not used."""
    pruned = 0
    j = start >> 3
    bit = 1 << (start & 7)
    byte = bits[j] & (bit - 1)
    for i in range(off, off + count):
        s = src[i]
        if s < t:
            pruned += 1
        elif s == t and ties > 0:
            ties -= 1
            pruned += 1
        else:
            byte |= bit
        bit <<= 1
        if bit == 256:
            bits[j] = byte
            j += 1
            byte = 0
            bit = 1
    if bit != 1:
        bits[j] = byte
    counts[0] += pruned
    return ties


def popcount(bits, n):
    # The set bits of bytes bits[0:n]: the firmware's one bit count (the kept entries of
    # a mask, in RAM or read from a file). Other modules call it as mask.popcount, so
    # prune8.kernels can swap it.
    k = 0
    for j in range(n):
        b = bits[j]
        while b:
            b &= b - 1  # clears the lowest set bit
            k += 1
    return k


def apply_bits(bits, w, n):
    """w[i] = 0 wherever bit i of bits is 0, for i < n."""
    for j in range((n + 7) >> 3):
        b = bits[j]
        if b != 255:
            base = j << 3
            end = n - base
            if end > 8:
                end = 8
            for k in range(end):
                if not (b >> k) & 1:
                    w[base + k] = 0


# the viper kernels take over these names where chosen (prune8.kernels)
from . import kernels as _kernels  # noqa: E402

_kernels.bind(__name__)
