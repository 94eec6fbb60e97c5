# Which kernels run the hot loops (docs/kernels.md; docs/spec.md §12): the portable Python
# ones, written in scores.py, select.py, mask.py, patterns.py, tiles.py and dense.py, or
# their @micropython.viper twins in viper.py, which give the same results. Chosen at
# import: viper where the port compiles or loads it (the native emitter: stock ESP32
# firmware), the portable ones elsewhere (the WebAssembly VM, CPython). Each kernel is
# looked up as a module attribute when it is called, so setting those attributes is the
# switch.
#
#   prune8.KERNELS               'viper' or 'python': what runs now
#   prune8.use_kernels('python') the portable kernels (or 'viper', where available)

from . import dense, errors, mask, patterns, scores, select, tiles

# module -> the names of its kernels that viper.py has too
TABLE = (
    (scores, ("magnitude", "l2", "gradient", "add_l1", "row_l1", "col_l1", "mincut_tile",
              "random", "scaled_tile", "wanda_norms", "wanda_tile", "add_squares", "block_l1",
              "add_blocks")),
    (select, ("radix", "radix_count", "bubble", "count_below")),
    (mask, ("fill_bits", "apply_bits", "popcount")),
    (patterns, ("nm_bits",)),
    (tiles, ("zero_tile",)),
    (dense, ("dot", "dense_acc", "requantize_rows")),
)
NAMES = ("python", "viper")
# prune8.viper while its kernels run, else None: prune8.sparse takes a held payload's row
# sums from its *_sums kernels then (looked up here, so importing prune8 does not load
# prune8.sparse)
VIPER = None

_portable = [(mod, name, getattr(mod, name)) for mod, names in TABLE for name in names]

try:
    from . import viper as _viper
except (ImportError, SyntaxError, ValueError, NotImplementedError, MemoryError):
    # no micropython module (CPython), no native emitter (SyntaxError: the WebAssembly
    # VM), a .mpy of another arch (ValueError), no room to compile it
    _viper = None


def available():
    """The kernel sets this port can run."""
    return NAMES if _viper is not None else NAMES[:1]


def use(name):
    """Run `name`'s kernels from now on; returns the name."""
    if name not in NAMES:
        raise errors.kernels_name(name, NAMES)
    if name == "viper" and _viper is None:
        raise errors.no_viper()
    global VIPER
    for mod, attr, fn in _portable:
        setattr(mod, attr, getattr(_viper, attr) if name == "viper" else fn)
    VIPER = _viper if name == "viper" else None
    return name
