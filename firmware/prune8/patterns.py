# N:M masks (docs/spec.md §3.7): in every group of m consecutive weights along a
# row, keep the n highest scores; an equal score is ranked by lower index first.


def nm_fill(mask, src, count, n, m):
    """Fill `mask` over count entries (count % m == 0) from scores `src`. No allocation."""
    bits = mask._bits
    for j in range(((count + 31) >> 5) << 2):  # the bits past count too
        bits[j] = 0
    mask.pruned = 0
    nm_span(mask, src, 0, 0, count, n, m)
    mask.n = count


def nm_span(mask, src, off, start, count, n, m):
    """Bits start .. start + count - 1 of `mask` from the whole groups of m scores in
    src[off:off + count] (count % m == 0; a tiled pass hands over whole groups); adds the
    pruned entries to mask.pruned. Other bits stay as they are."""
    counts = mask._counts
    counts[0] = 0
    nm_bits(mask._bits, src, off, start, count, n, m, counts)
    mask.pruned += counts[0]


def nm_bits(bits, src, off, start, count, n, m, counts):
    """nm_span's loop over the bits themselves; counts[0] += the pruned entries (a kernel:
    prune8.kernels may put prune8.viper's in its place)."""
    pruned = 0
    g = off
    end = off + count
    d = start - off  # bit index - score index
    while g < end:  # range() with a variable step would allocate a range object
        for i in range(g, g + m):
            s = src[i]
            better = 0
            for j in range(g, g + m):
                t = src[j]
                if t > s or (t == s and j < i):
                    better += 1
            b = i + d
            if better < n:
                bits[b >> 3] |= 1 << (b & 7)
            else:
                bits[b >> 3] &= 255 ^ (1 << (b & 7))
                pruned += 1
        g += m
    counts[0] += pruned


# the viper kernels take over these names where chosen (prune8.kernels)
from . import kernels as _kernels  # noqa: E402

_kernels.bind(__name__)
