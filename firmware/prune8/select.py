# Threshold selection (docs/spec.md §3.1, §3.5): the value at position `pos` of the n
# scores src[off:off + n] sorted ascending (off: a row of a per-channel mask). Both
# algorithms return the same value on every input; the board picks bubble for small n
# and radix select above.

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

# method="auto" uses bubble sort up to this many entries: it is faster below about 26
# on the WebAssembly VM and on the unix port, with either kernel set (measured by
# bench/bench_kernels.py; docs/kernels.md)
BUBBLE_MAX = const(24)


def bubble(src, n, pos, scratch, off, wide):
    """The seed's algorithm: bubble-sort a copy of the scores, read position pos. O(n^2).
    wide: the scores are int32 (unit scores; scratch likewise), else int16."""
    for i in range(n):
        scratch[i] = src[off + i]
    for end in range(n - 1, 0, -1):
        swapped = False
        for j in range(end):
            a = scratch[j]
            b = scratch[j + 1]
            if a > b:
                scratch[j] = b
                scratch[j + 1] = a
                swapped = True
        if not swapped:
            break
    return scratch[pos]


def radix(src, n, pos, hist, top_shift, off=0):
    """Most-significant-byte-first radix select. O(n) per byte of the score range.

    Each pass counts the next byte of the scores whose higher bytes equal the prefix
    found so far, then walks the 256 counts to the bucket holding position pos.
    Scores must be non-negative and below 256 << top_shift.
    """
    prefix = 0
    shift = top_shift
    while True:
        for d in range(256):
            hist[d] = 0
        radix_count(src, off, n, hist, shift, top_shift, prefix)
        d = radix_bucket(hist, pos)
        pos -= radix_below(hist, d)
        prefix = (prefix << 8) | d
        if shift == 0:
            return prefix
        shift -= 8


def count_below(src, off, n, t, wide):
    """How many of src[off:off + n] are below t (wide: int32 scores, else int16)."""
    k = 0
    for i in range(off, off + n):
        if src[i] < t:
            k += 1
    return k


# One radix pass in pieces, for scores that never are in RAM at once (prune8.stream):
# radix_count adds a piece's counts, radix_bucket and radix_below walk them.

def radix_count(src, off, n, hist, shift, top_shift, prefix):
    """hist[byte at `shift`] += 1 for each of src[off:off + n] whose bytes above `shift`
    equal prefix (all of them in the first pass, shift == top_shift)."""
    if shift == top_shift:
        for i in range(off, off + n):
            hist[src[i] >> shift] += 1
        return
    hi = shift + 8
    for i in range(off, off + n):
        v = src[i]
        if (v >> hi) == prefix:
            hist[(v >> shift) & 255] += 1


def radix_bucket(hist, pos):
    """The bucket holding position pos of the counted scores."""
    d = 0
    c = hist[0]
    while pos >= c:
        pos -= c
        d += 1
        c = hist[d]
    return d


def radix_below(hist, d):
    """How many counted scores lie in the buckets below d."""
    below = 0
    for j in range(d):
        below += hist[j]
    return below


# the viper kernels take over these names where chosen (prune8.kernels)
from . import kernels as _kernels  # noqa: E402

_kernels.bind(__name__)
