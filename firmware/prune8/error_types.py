# The classes of every prune8 error: loaded the first time one is built or named
# (errors.__getattr__, prune8.__getattr__), so a board that never errs does not hold
# them (docs/heap.md). The builders (errors_pruner.py, errors_rest.py) import them from
# here and the limits their messages name from limits.py, which imports nothing.


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


# -- int8 inference (prune8.dense and its twin prune8_host.twin.dense) ----------

class QuantError(Prune8Error):
    """A quantization parameter (multiplier, shift, zero point, bias) the int8 kernel
    does not accept, or a calibration that holds too many images."""
