"""prune8: fixed-capacity, allocation-free int8 pruning for MicroPython.

    import prune8
    p = prune8.Pruner()            # capacity of this board's profile
    w = bytearray(...)             # int8 weights (two's complement), or array('b')
    p.magnitude(w)
    m = p.mask(0.5)                # keep mask; bit i set = keep weight i
    p.apply(w, m)
    print(m, p.stats(m))

The rules are docs/spec.md's; prune8_host.twin computes the same integers on the host.
"""

# What `import prune8` loads is the Pruner and what it needs (docs/heap.md: on an ESP32
# the modules' code lives on the same ~100 KB heap as the buffers); the rest of the
# package (the link, the store, streaming, inference, the viper kernels) is imported by
# whatever uses it.
from .bp import to_bp
from .mask import Mask
from .profile import MAX_UNITS, MAX_WEIGHTS
from .pruner import Pruner

__version__ = "0.3.0"  # the one place the version is written (pyproject.toml, manifest.py read it)


# Which kernels run the hot loops: 'python' (prune8.kernels, docs/kernels.md) until the
# first Pruner() loads prune8.viper where this port runs it; then 'viper'.
KERNELS = "python"


_sparsity_at = None  # prune8.schedule's, once loaded (an import per call would allocate)


def sparsity_at(step, steps, final_bp, initial_bp=0):
    """The sparsity in bp at step `step` of `steps` (prune8.schedule, loaded at the first
    call: a prune without a schedule never holds it)."""
    global _sparsity_at
    if _sparsity_at is None:
        from .schedule import sparsity_at as f
        _sparsity_at = f
    return _sparsity_at(step, steps, final_bp, initial_bp)


def __getattr__(name):
    # The error classes (prune8.SparsityError, ...) load when first named: a board that
    # never errs does not hold them (docs/heap.md). Any other name is a submodule not
    # imported yet: `from prune8 import dense` asks the package before it imports.
    if name.endswith("Error"):
        from . import error_types
        return getattr(error_types, name)
    if name.startswith("__"):  # an import machinery probe (__path__, ...)
        raise AttributeError(name)
    return __import__("prune8." + name, None, None, (name,))


def use_kernels(name):
    """Run the 'python' (portable) or the 'viper' kernels from now on; returns the name.
    Both give the same scores, thresholds, masks, outputs and errors."""
    from . import kernels
    return kernels.use(name)

__all__ = ["MAX_UNITS", "MAX_WEIGHTS", "to_bp", "CapacityError", "DtypeError",
           "EmptyInputError", "LengthMismatchError", "MinKeepError", "MinScoreError",
           "OptionError", "PatternError", "Prune8Error", "ScheduleError", "SeedError",
           "SparsityError", "Mask", "Pruner", "sparsity_at", "__version__", "KERNELS",
           "use_kernels"]

# The modules' loading left garbage between the objects they keep: collected now, before
# the first Pruner()'s buffers look for room, they are placed in it rather than past it,
# and the heap stays in fewer, larger free blocks (on the unix port the full-capacity
# job's smallest heap is 64.5 KB with it, 76.3 KB without; docs/heap.md).
import gc  # noqa: E402

gc.collect()
del gc
