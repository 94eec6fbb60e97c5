# Argument checks shared by every Pruner call. They run before anything is written,
# so a failed call leaves weights, scores and mask as they were (docs/spec.md §6.3).
# The order of checks is part of the contract with the twin (docs/spec.md §6.2).

from array import array

from . import errors

SELECTIONS = ("auto", "bubble", "select")  # threshold selection algorithms (mask(method=))


def is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


def tie(name):
    """True for the strict rule, False for exact."""
    if name == "exact":
        return False
    if name == "strict":
        return True
    from .formats import TIES  # the names' table, loaded only to say what is allowed
    raise errors.option("tie", name, TIES)


def method(name):
    if name != "auto" and name != "bubble" and name != "select":
        raise errors.option("method", name, SELECTIONS)


def int8_buffer(w, what, writable=False):
    """A bytearray (two's complement), bytes (read-only), an array('b'), or a memoryview
    of a bytearray or array('b') (e.g. the first n bytes of a preallocated buffer)."""
    if isinstance(w, bytearray):
        return
    if isinstance(w, bytes):
        if writable:
            raise errors.read_only(what)
        return
    if isinstance(w, array):
        hi = 127  # int8 values
    elif isinstance(w, memoryview):
        hi = 255  # a view of a bytearray reads 0..255, of an array('b') -128..127
    else:
        raise errors.board_type(what, w)
    # MicroPython does not expose an array's typecode: check the values instead, so a
    # wide array never reaches the scoring loops (which would fail half-way).
    lo = -128
    for i in range(len(w)):
        v = w[i]
        if v < lo or v > hi:
            raise errors.int8_range(what, v, i)


def not_empty(n, what):
    if n == 0:
        raise errors.empty(what)


def shape(n, rows, cols):
    if not (is_int(rows) and is_int(cols)) or rows < 1 or cols < 1:
        raise errors.bad_shape(rows, cols)
    if rows * cols != n:
        raise errors.shape_mismatch(n, rows, cols)


def capacity(n, max_weights):
    if n > max_weights:
        raise errors.capacity_weights(n, max_weights)


def units(what, count, max_units):
    if count > max_units:
        raise errors.capacity_units(what, count, max_units)


def min_keep(value, n):
    if not is_int(value) or value < 0 or value > n:
        raise errors.min_keep(value, n)


def min_score(value):
    if not is_int(value) or value < 0 or value > errors.MAX_SMALL:
        raise errors.min_score(value)


def count(n, what):
    if not is_int(n) or n < 0:
        raise errors.bad_count(what, n)
    if n == 0:
        raise errors.empty(what)


def seed(value):
    if not is_int(value) or value < 0 or value > errors.MAX_SMALL:
        raise errors.seed_value(value)


def scale_value(v, row):
    if not is_int(v) or v < 0 or v > errors.MAX_SCALE:
        raise errors.scale_value(v, row)


def scales(values, rows):
    if len(values) != rows:
        raise errors.scale_mismatch(len(values), rows)
    for r in range(rows):
        scale_value(values[r], r)


def sumsq(values):
    for c in range(len(values)):
        v = values[c]
        if not is_int(v) or v < 0 or v > errors.MAX_SMALL:
            raise errors.sumsq_value(v, c)


def nm(n, m):
    if not (is_int(n) and is_int(m)) or not 1 <= n <= m <= 32:
        raise errors.nm_values(n, m)


def blocks(rows, cols, br, bc, max_blocks):
    if not (is_int(br) and is_int(bc)) or not (1 <= br <= errors.MAX_BLOCK
                                               and 1 <= bc <= errors.MAX_BLOCK):
        raise errors.block_values(br, bc)
    if rows % br:
        raise errors.block_fit("rows", rows, br, "br")
    if cols % bc:
        raise errors.block_fit("cols", cols, bc, "bc")
    nb = (rows // br) * (cols // bc)
    if nb > max_blocks:
        raise errors.capacity_blocks(nb, max_blocks)
