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

from . import kernels as _kernels
from .bp import to_bp
from .errors import (
    CapacityError,
    DtypeError,
    EmptyInputError,
    LengthMismatchError,
    MinKeepError,
    MinScoreError,
    OptionError,
    PatternError,
    Prune8Error,
    ScheduleError,
    SeedError,
    SparsityError,
)
from .mask import Mask
from .profile import MAX_UNITS, MAX_WEIGHTS
from .pruner import Pruner
from .schedule import sparsity_at

__version__ = "0.3.0"  # the one place the version is written (pyproject.toml, manifest.py read it)

# Which kernels run the hot loops: 'viper' where this port runs prune8.viper, else
# 'python' (prune8.kernels, docs/kernels.md).
KERNELS = _kernels.use(_kernels.available()[-1])


def use_kernels(name):
    """Run the 'python' (portable) or the 'viper' kernels from now on; returns the name.
    Both give the same scores, thresholds, masks, outputs and errors."""
    global KERNELS
    KERNELS = _kernels.use(name)
    return KERNELS

__all__ = ["MAX_UNITS", "MAX_WEIGHTS", "to_bp", "CapacityError", "DtypeError",
           "EmptyInputError", "LengthMismatchError", "MinKeepError", "MinScoreError",
           "OptionError", "PatternError", "Prune8Error", "ScheduleError", "SeedError",
           "SparsityError", "Mask", "Pruner", "sparsity_at", "__version__", "KERNELS",
           "use_kernels"]
