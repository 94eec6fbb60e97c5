# N:M masks (docs/spec-decisions.md): in every group of m consecutive weights along a
# row, keep the n highest scores; an equal score is ranked by lower index first.


def nm_fill(mask, src, count, n, m):
    """Fill `mask` over count entries (count % m == 0) from scores `src`. No allocation."""
    bits = mask._bits
    for j in range(((count + 31) >> 5) << 2):
        bits[j] = 0
    pruned = 0
    g = 0
    while g < count:  # range() with a variable step would allocate a range object
        for i in range(g, g + m):
            s = src[i]
            better = 0
            for j in range(g, g + m):
                t = src[j]
                if t > s or (t == s and j < i):
                    better += 1
            if better < n:
                bits[i >> 3] |= 1 << (i & 7)
            else:
                pruned += 1
        g += m
    mask.n = count
    mask.pruned = pruned
