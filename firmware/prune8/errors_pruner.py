# The messages of the errors a Pruner call raises for bad arguments (docs/spec.md §6):
# half of errors.py's table, loaded by errors.__getattr__ the first time one is built,
# so `import prune8` holds only the classes (docs/heap.md). Each builder returns an
# exception instance; the twin raises the same classes with the same text.

from .error_types import (
    CapacityError,
    DtypeError,
    EmptyInputError,
    LengthMismatchError,
    MinKeepError,
    MinScoreError,
    OptionError,
    PatternError,
    ScheduleError,
    SeedError,
    SparsityError,
)
from .limits import MAX_BLOCK, MAX_BP, MAX_SCALE, MAX_SMALL, MAX_UNITS_LIMIT, MAX_WEIGHTS_LIMIT


def _type_name(x):
    return type(x).__name__


# -- option names ---------------------------------------------------------------

def option(name, value, allowed):
    return OptionError("%s must be one of %s; got %r"
                       % (name, ", ".join(repr(a) for a in allowed), value))


# -- sparsity -------------------------------------------------------------------

def sparsity_missing():
    return SparsityError("no sparsity given: pass sparsity (0..1) or sparsity_bp (0..10000)")


def sparsity_both():
    return SparsityError("give sparsity or sparsity_bp, not both")


def sparsity_type(s):
    return SparsityError("sparsity must be a number in [0, 1]; got %s %r" % (_type_name(s), s))


def sparsity_range(s):
    return SparsityError("sparsity must be in [0, 1]; got %r" % (s,))


def sparsity_not_whole_bp(s):
    return SparsityError("sparsity %r is not a whole basis point (steps of 0.0001, "
                         "tolerance 0.01 bp); pass sparsity_bp= for an exact value" % (s,))


def sparsity_bp_value(bp):
    return SparsityError("sparsity_bp must be an integer in 0..%d; got %r" % (MAX_BP, bp))


# -- inputs ---------------------------------------------------------------------

def empty(what):
    return EmptyInputError("%s is empty: need at least 1 entry" % what)


def no_scores():
    return EmptyInputError("no scores yet: call magnitude(), gradient(), mincut(), "
                           "rows() or cols() first")


def index_range(what, i, n):
    return IndexError("%s %d out of range 0..%d" % (what, i, n - 1))


def bad_shape(rows, cols):
    return LengthMismatchError("rows and cols must be positive integers; got rows=%r, cols=%r"
                               % (rows, cols))


def shape_mismatch(n, rows, cols):
    return LengthMismatchError("%d weights do not fill a %r x %r layer (rows*cols = %d)"
                               % (n, rows, cols, rows * cols))


def bad_count(what, n):
    return LengthMismatchError("%s: n must be a positive integer; got %r" % (what, n))


def bad_cols(cols):
    return LengthMismatchError("cols must be a positive integer; got %r" % (cols,))


def cols_mismatch(n, cols):
    return LengthMismatchError("%d weights do not split into rows of cols=%d" % (n, cols))


def activations_mismatch(na, n, cols):
    if cols is None:
        return LengthMismatchError("%d activations for %d weights: need %d (one per weight), "
                                   "or pass cols= to give one per column" % (na, n, n))
    return LengthMismatchError("%d activations for %d weights: need %d (one per weight) "
                               "or %d (one per column)" % (na, n, n, cols))


def mask_mismatch(mask_n, n):
    return LengthMismatchError("mask covers %d entries but there are %d weights" % (mask_n, n))


def words_mismatch(nwords, n):
    return LengthMismatchError("%d mask words for n=%d: need ceil(n / 32) = %d"
                               % (nwords, n, (n + 31) // 32))


def stray_bits(n):
    return LengthMismatchError("mask has bits set past n=%d: bits past n must be 0" % n)


def capacity_weights(n, limit):
    return CapacityError("%d weights exceed capacity: max_weights=%d" % (n, limit))


def bad_sort(max_sort, max_weights):
    return CapacityError("max_sort must be None (sort up to max_weights) or 0 <= max_sort <= "
                         "max_weights (%d); got %r" % (max_weights, max_sort))


def capacity_sort(n, limit):
    return CapacityError("method='bubble' sorts at most %d scores on this Pruner (max_sort="
                         "%d); got %d: use method='select' or 'auto'" % (limit, limit, n))


def capacity_units(what, n, limit):
    return CapacityError("%d %s exceed capacity: max_units=%d" % (n, what, limit))


def bad_capacity(max_weights, max_units):
    return CapacityError("capacity must be 1 <= max_weights <= %d and 1 <= max_units <= %d; "
                         "got max_weights=%r, max_units=%r"
                         % (MAX_WEIGHTS_LIMIT, MAX_UNITS_LIMIT, max_weights, max_units))


def capacity_blocks(n, limit):
    return CapacityError("%d blocks exceed capacity: at most %d (max(max_units, "
                         "max_weights // 4))" % (n, limit))


# -- patterns, seeds, schedules -------------------------------------------------------

def nm_values(n, m):
    return PatternError("N:M needs integers 1 <= n <= m <= 32; got n=%r, m=%r" % (n, m))


def nm_cols(cols, m):
    return LengthMismatchError("cols=%d is not a multiple of m=%d: N:M groups must not "
                               "cross rows" % (cols, m))


def block_values(br, bc):
    return PatternError("block sizes must be integers in 1..%d (what a mask record holds); "
                        "got br=%r, bc=%r" % (MAX_BLOCK, br, bc))


def block_fit(what, size, block, name):
    return LengthMismatchError("%s=%d is not a multiple of %s=%d" % (what, size, name, block))


def seed_value(seed):
    return SeedError("seed must be an integer in 0..%d; got %r" % (MAX_SMALL, seed))


def sumsq_value(value, index):
    return DtypeError("sums of squares must be integers in 0..%d; got %r at column %d"
                      % (MAX_SMALL, value, index))


def scale_value(value, row):
    return DtypeError("scale multipliers must be integers in 0..%d; got %r at row %d"
                      % (MAX_SCALE, value, row))


def scale_mismatch(got, rows):
    return LengthMismatchError("%d scale multipliers for %d rows" % (got, rows))


def scope_weights():
    return EmptyInputError("a per-channel mask needs one score per weight of a rows x cols "
                           "layer: score it with a per-weight scorer first")


def sumsq_mismatch(got, cols):
    return LengthMismatchError("%d sums of squares for %d columns" % (got, cols))


def schedule_steps(steps, limit):
    return ScheduleError("steps must be an integer in 1..%d; got %r" % (limit, steps))


def schedule_step(step, steps):
    return ScheduleError("step must be an integer in 0..%r (steps); got %r" % (steps, step))


def no_weight_scores():
    return EmptyInputError("N:M needs one score per weight: call magnitude(), l2(), "
                           "gradient(), wanda(), mincut() or random() first")


# -- min_keep / min_score -------------------------------------------------------

def min_keep(value, n):
    return MinKeepError("min_keep must be an integer in 0..%d (the number of scored "
                        "entries); got %r" % (n, value))


def min_score(value):
    return MinScoreError("min_score must be an integer in 0..%d; got %r" % (MAX_SMALL, value))


# -- types ----------------------------------------------------------------------

def board_type(what, x):
    """Board: weights are a bytearray (or bytes, read-only) or an array('b')."""
    return DtypeError("%s must be a bytearray, an array('b') or a memoryview of one; got %s"
                      % (what, _type_name(x)))


def int8_range(what, value, index):
    return DtypeError("%s must hold int8 values (-128..127, or raw bytes 0..255 in a "
                      "memoryview); got %r at index %d" % (what, value, index))


def read_only(what):
    return DtypeError("%s is read-only (bytes): pass a bytearray or array('b') to prune "
                      "in place" % what)
