# Every error prune8 raises, and its message: the table the board and the host twin
# (prune8_host.twin) share, so both raise the same classes with the same text
# (docs/spec.md §6.1). Each builder returns an exception instance:
# `raise errors.capacity_weights(n, limit)`. The board raises nothing it does not build
# here.
#
# Only error paths build errors, so this module holds just the limits (limits.py); the classes
# (error_types.py) and the builders, in errors_pruner.py (what a Pruner call raises)
# and errors_rest.py (the store, the link, streaming, inference, the kernel switch),
# load the first time one is asked for (errors.X): `import prune8` does not carry
# ~19 KB of classes and messages on a board's heap (docs/heap.md).

from .limits import (  # noqa: F401 - re-exported: errors.X is the table
    MAX_BLOCK,
    MAX_BP,
    MAX_SCALE,
    MAX_SMALL,
    MAX_STEPS,
    MAX_UNITS_LIMIT,
    MAX_WEIGHTS_LIMIT,
)


def __getattr__(name):
    if name.startswith("__"):  # an import machinery probe (__path__, ...), not a builder
        raise AttributeError(name)
    if name.endswith("Error"):  # a class: errors.X is the whole table
        from . import error_types
        return getattr(error_types, name)
    from . import errors_pruner
    fn = getattr(errors_pruner, name, None)
    if fn is None:
        from . import errors_rest
        fn = getattr(errors_rest, name)
    return fn
