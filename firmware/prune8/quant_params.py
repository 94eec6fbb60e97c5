# The checks of a layer's int8 inference parameters (docs/spec.md §10): what
# prune8.dense runs with and what a push stores, in one place, so a push checks them
# without loading the inference it does not run (docs/heap.md).

from . import check, errors


def multiplier(m):
    """A requantization multiplier: 0, or 2**30..2**31-1 (dense's 15-bit limbs)."""
    if not check.is_int(m) or (m != 0 and not 0x40000000 <= m <= 0x7FFFFFFF):
        raise errors.quant_multiplier(m)


def int_in(name, value, lo, hi):
    """A shift or zero point: an integer in lo..hi."""
    if not check.is_int(value) or value < lo or value > hi:
        raise errors.quant_int(name, value, lo, hi)
