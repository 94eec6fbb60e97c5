# Which kernels run the hot loops (docs/kernels.md; docs/spec.md §12): the portable Python
# ones, written in scores.py, select.py, mask.py, patterns.py, tiles.py and dense.py, or
# their @micropython.viper twins in viper.py (pruning's) and viper_dense.py (int8
# inference's: loaded when prune8.dense is), which give the same results. Each kernel is
# looked up as a module attribute when it is called, so setting those attributes is the
# switch.
#
# Nothing here loads a module that was not asked for (docs/heap.md): a kernel module
# registers itself with bind() as it is imported and gets the kernels chosen so far;
# the choice is made at the first Pruner() (or use_kernels()), where
# viper.py is loaded if this port runs it (the native emitter: stock ESP32 firmware)
# and the portable kernels are kept elsewhere (the WebAssembly VM, CPython).
#
#   prune8.KERNELS               'viper' or 'python': what runs now
#   prune8.use_kernels('python') the portable kernels (or 'viper', where available)

import sys

from . import errors

# module -> the names of its kernels that viper.py has too
TABLE = {
    "prune8.scores": ("magnitude", "l2", "gradient", "add_l1", "row_l1", "col_l1",
                      "mincut_tile", "random", "scaled_tile", "wanda_norms", "wanda_tile",
                      "add_squares", "block_l1", "add_blocks"),
    "prune8.select": ("radix", "radix_count", "bubble", "count_below"),
    "prune8.mask": ("fill_bits", "apply_bits", "popcount"),
    "prune8.patterns": ("nm_bits",),
    "prune8.tiles": ("zero_tile",),
    "prune8.dense": ("dot", "dense_acc", "requantize_rows"),
}
# a kernel module whose viper twins are not viper.py's -> the module that has them
VIPER_OF = {"prune8.dense": "prune8.viper_dense"}
NAMES = ("python", "viper")
# prune8.viper_dense while the viper kernels run and prune8.dense is loaded, else None:
# prune8.sparse takes a held payload's row sums from its *_sums kernels then (looked up
# here, so importing prune8 does not load prune8.sparse)
VIPER = None

_chosen = None     # 'python' or 'viper' once chosen
_viper = None      # the viper module, once loaded
_tried = False     # whether loading it was tried
_portable = {}     # module name -> its portable kernels, in TABLE's order
_twins = {}        # VIPER_OF's module name -> the module, or None where it cannot load


def bind(name):
    """Register the kernel module `name` (its last statement): keep its portable kernels,
    and give it the viper ones if they were chosen before it was imported."""
    if name not in TABLE:  # a copy loaded under another name (a test's instrumented one)
        return
    mod = sys.modules[name]
    _portable[name] = tuple(getattr(mod, k) for k in TABLE[name])
    if _chosen == "viper":
        _set(name, mod)


def _set(name, mod):
    global VIPER
    fns = _portable[name]
    twins = _twins_of(name) if _chosen == "viper" else None
    for i, k in enumerate(TABLE[name]):
        setattr(mod, k, fns[i] if twins is None else getattr(twins, k))
    if name in VIPER_OF:
        VIPER = twins


def _twins_of(name):
    """The module with `name`'s viper kernels: viper.py, or the VIPER_OF one, loaded
    now (None where it cannot be: no room to compile its source; the portable ones
    stay)."""
    other = VIPER_OF.get(name)
    if other is None:
        return _viper
    if other not in _twins:
        try:
            __import__(other)
            _twins[other] = sys.modules[other]
        except (ImportError, SyntaxError, ValueError, NotImplementedError, MemoryError):
            _twins[other] = None
    return _twins[other]


def _load():
    """prune8.viper, or None where this port cannot run it. A port whose .mpy files
    carry no native architecture (sys.implementation._mpy >> 10 == 0: the WebAssembly
    VM) is not asked; elsewhere a one-line probe comes first: compiling the 19 KB source
    only to fail would cost a port without the native emitter more heap than the
    Pruner."""
    global _viper, _tried
    if not _tried:
        _tried = True
        try:
            import micropython
        except ImportError:  # CPython
            return None
        # no native arch: no probe, and no exception object built to say so
        if getattr(sys.implementation, "_mpy", 0) >> 10:
            try:
                exec("@micropython.viper\ndef _probe():\n pass", {"micropython": micropython})
                __import__("prune8.viper")
                _viper = sys.modules["prune8.viper"]
            except (ImportError, SyntaxError, ValueError, NotImplementedError, MemoryError):
                # no native emitter (SyntaxError), a .mpy of another arch (ValueError),
                # no room to compile it
                _viper = None
    return _viper


def available():
    """The kernel sets this port can run."""
    return NAMES if _load() is not None else NAMES[:1]


def chosen():
    """The kernel set in use: chosen at the first call, viper where this port runs it."""
    if _chosen is None:
        use(available()[-1])
    return _chosen


def use(name):
    """Run `name`'s kernels from now on; returns the name."""
    if name not in NAMES:
        raise errors.kernels_name(name, NAMES)
    if name == "viper" and _load() is None:
        raise errors.no_viper()
    global _chosen
    _chosen = name
    for mod_name in _portable:
        _set(mod_name, sys.modules[mod_name])
    sys.modules["prune8"].KERNELS = name
    return name


def portable():
    """{kernel name: its portable function} for every kernel (imports every kernel
    module: for tests that compare the two sets)."""
    for mod_name in TABLE:
        __import__(mod_name)
    return {k: fns[i] for name, fns in _portable.items() for i, k in enumerate(TABLE[name])}
