# The classes of every prune8 error and the limits their messages name: errors.py
# re-exports them all, and the builders (errors_pruner.py, errors_rest.py) import them
# from here, so no module of the table imports another that imports it back.

# Largest integer argument accepted where a threshold is compared against scores:
# a MicroPython small int (31-bit signed), so comparisons never build a big int.
MAX_SMALL = 0x3FFFFFFF
MAX_BP = 10000
MAX_STEPS = 100000  # a gradual prune's steps (prune8.schedule, prune8.prune_model)
# The scale-aware score's per-row multiplier: 32768 for the row with the largest scale.
MAX_SCALE = 32768


class Prune8Error(ValueError):
    """Bad input to a prune8 call. Nothing was changed."""


class EmptyInputError(Prune8Error):
    """No entries to score or mask."""


class LengthMismatchError(Prune8Error):
    """Lengths disagree: weights vs rows*cols, activations vs weights or columns."""


class CapacityError(Prune8Error):
    """Input larger than the pruner's fixed buffers (max_weights / max_units)."""


class SparsityError(Prune8Error):
    """Sparsity missing, outside [0, 1], or not a whole basis point."""


class MinKeepError(Prune8Error):
    """min_keep is not an integer in 0..n."""


class MinScoreError(Prune8Error):
    """min_score is not a non-negative small integer."""


class OptionError(Prune8Error):
    """Unknown name for tie or method."""


class DtypeError(Prune8Error):
    """Weights or activations are not int8."""


class PatternError(Prune8Error):
    """Bad N:M or block parameters."""


class SeedError(Prune8Error):
    """A random seed outside 0..2**30 - 1."""


class ScheduleError(Prune8Error):
    """A schedule step or step count out of range."""


class StoreError(Prune8Error):
    """A file of the board's store (model, masks, calibration) that is truncated or not
    in its format."""


MAX_BLOCK = 255           # block height and width: a u8 each in a mask record

# Profile sanity bounds: every intermediate value then stays a small int on the board
# (128 * 128 * MAX_UNITS_LIMIT < 2**30).
MAX_WEIGHTS_LIMIT = 1 << 20
MAX_UNITS_LIMIT = 4096


# -- int8 inference (prune8.dense and its twin prune8_host.twin.dense) ----------

class QuantError(Prune8Error):
    """A quantization parameter (multiplier, shift, zero point, bias) the int8 kernel
    does not accept, or a calibration that holds too many images."""
