# Every error prune8 raises, and its message: the table the board and the host twin
# (prune8_host.twin) share, so both raise the same classes with the same text
# (docs/spec.md §6.1). Each builder returns an exception instance:
# `raise errors.capacity_weights(n, limit)`. The board raises nothing it does not build
# here.
#
# Only error paths build messages, so this module holds just the classes and limits
# (error_types.py, re-exported); the builders live in errors_pruner.py (what a Pruner
# call raises) and errors_rest.py (the store, the link, streaming, inference, the
# kernel switch), loaded the first time one is asked for: `import prune8` does not
# carry ~18 KB of messages on a board's heap (docs/heap.md).

from .error_types import (  # noqa: F401 - re-exported: errors.X is the table
    MAX_BLOCK,
    MAX_BP,
    MAX_SCALE,
    MAX_SMALL,
    MAX_STEPS,
    MAX_UNITS_LIMIT,
    MAX_WEIGHTS_LIMIT,
    CapacityError,
    DtypeError,
    EmptyInputError,
    LengthMismatchError,
    MinKeepError,
    MinScoreError,
    OptionError,
    PatternError,
    Prune8Error,
    QuantError,
    ScheduleError,
    SeedError,
    SparsityError,
    StoreError,
)


def __getattr__(name):
    if name.startswith("__"):  # an import machinery probe (__path__, ...), not a builder
        raise AttributeError(name)
    from . import errors_pruner
    fn = getattr(errors_pruner, name, None)
    if fn is None:
        from . import errors_rest
        fn = getattr(errors_rest, name)
    return fn
