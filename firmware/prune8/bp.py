# Sparsity in basis points (docs/spec.md §1.2) and the prune count k (§1.4).
#
# A float sparsity is converted once, here; nothing after this point sees a float.
# The 0.01 bp tolerance absorbs the rounding of 32-bit floats (ESP32) and 64-bit
# floats (CPython) alike, so both give the same bp.

from . import errors


def to_bp(s):
    """Sparsity in [0, 1] (a float, or the ints 0 and 1) -> basis points 0..10000."""
    if isinstance(s, bool) or not isinstance(s, (int, float)):
        raise errors.sparsity_type(s)
    if isinstance(s, int):
        if s < 0 or s > 1:
            raise errors.sparsity_range(s)
        return s * 10000
    if s != s or s < 0 or s > 1:  # s != s: NaN
        raise errors.sparsity_range(s)
    x = s * 10000
    bp = int(x + 0.5)
    if abs(x - bp) > 0.01:
        raise errors.sparsity_not_whole_bp(s)
    return bp


def resolve(sparsity, sparsity_bp):
    """The bp of a call given exactly one of sparsity= and sparsity_bp=."""
    if sparsity is None:
        if sparsity_bp is None:
            raise errors.sparsity_missing()
        if isinstance(sparsity_bp, bool) or not isinstance(sparsity_bp, int) \
                or sparsity_bp < 0 or sparsity_bp > 10000:
            raise errors.sparsity_bp_value(sparsity_bp)
        return sparsity_bp
    if sparsity_bp is not None:
        raise errors.sparsity_both()
    return to_bp(sparsity)


def prune_count(n, bp, min_keep):
    """k = min(n * bp // 10000, n - min_keep), without forming n * bp (may exceed 2**30)."""
    k = (n // 10000) * bp + ((n % 10000) * bp) // 10000
    cap = n - min_keep
    return k if k < cap else cap
