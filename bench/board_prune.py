# The whole prune of a stored layer, and where its time goes, run on a MicroPython by
# bench/bench_prune.py (the unix port). Each job runs in a process of its own with the
# esp32 budget's heap, as a board runs one prune from boot, and is sent as this file's
# prelude and its own section only (`#= NAME` lines split them), so that the heap holds
# the prune and not the benchmark's other jobs. ARGS: {"store": a directory for the
# store, "job": what to run, "set": "python" or "viper", "method": a scorer}. Each
# job prints one JSON line. The kernel set is asked for only when it is not the port's
# own choice (viper, where it runs): asked for first, viper loads before the prune's
# imports, where no tool puts it (docs/heap.md).
#= prelude
import gc
import json
import time

ROUNDS = 31  # best of: the machine may be busy, a quiet run is the one to keep
import prune8.formats as F  # noqa: E402

for k in [k for k in dir(F) if k == "ROOT" or k.endswith("_PATH")]:
    setattr(F, k, ARGS["store"] + getattr(F, k)[len("/prune8"):])  # noqa: F821
import prune8  # noqa: E402

if ARGS.get("set") == "python":  # noqa: F821
    prune8.use_kernels("python")
ROWS, COLS = 32, 64


def best_us(fn, rounds=ROUNDS, collect=False):
    """fn's best time of rounds, in us; collect: a collection before each, not timed
    (fn's allocations without the collection its garbage would cost in this heap)."""
    best = None
    for _ in range(rounds):
        if collect:
            gc.collect()
        t0 = time.ticks_us()
        fn()
        dt = time.ticks_diff(time.ticks_us(), t0)
        best = dt if best is None or dt < best else best
    return best


def report(out):
    import sys

    from prune8.kernels import available, chosen
    print(json.dumps({"micropython": list(sys.implementation.version[:3]),
                      "sets": list(available()), "set": chosen(), "out": out}))
#= prune
from prune8 import prune_model, store  # noqa: E402


def prune_once(method, layer):
    """prune_result(method, 5000) of one layer, timed (us), and its heap peak. It starts
    from masks.bin holding this layer's mask alone (a mask of the other layer would be
    copied, and timed, too). A failed prune stops the job: it is quick, not fast."""
    t0 = time.ticks_us()
    result = prune_model.prune_result(method, 5000, layers=[layer])
    us = time.ticks_diff(time.ticks_us(), t0)
    if not result["ok"]:
        raise RuntimeError(result["type"] + ": " + result["error"])
    return us, result["heap_peak"]

#= store
# fc (32 x 64: in RAM) and conv (256 x 256: streamed from flash) in model.bin, pushed
# through the receiver a frame's payload at a time (weights made by an LCG)
import struct  # noqa: E402

import prune8.protocol as P  # noqa: E402
from prune8 import push  # noqa: E402

r = push.ModelReceiver(object())
r.begin(struct.pack(P.BEGIN_FMT, 2, 0))
chunk = bytearray(P.MAX_PAYLOAD)
for name, rows, cols in ((b"fc", ROWS, COLS), (b"conv", 256, 256)):
    r.layer(bytes([len(name)]) + name +
            struct.pack(P.LAYER_FMT, rows, cols, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))
    seed = 99
    left = rows * cols
    while left:
        k = min(left, len(chunk))
        for i in range(k):
            seed = (seed * 1103515245 + 12345) & 0x3FFFFFFF
            chunk[i] = seed >> 22
        r.data(memoryview(chunk)[:k])
        left -= k
r.end(b"")
report({})
#= whole
# fc's prune, best of ROUNDS in this process, after one untimed (its code loads: the
# viper kernels, where they run); each leaves masks.bin holding fc's mask alone
store.discard(F.MASKS_PATH)
prune_once("magnitude", "fc")
out = {}
for m in ("magnitude", "mincut"):
    best = peak = None
    for _ in range(ROUNDS):
        us, top = prune_once(m, "fc")
        best = us if best is None or us < best else best
        peak = top if peak is None or top > peak else peak
    out[m] = [best, peak]
report(out)
#= streamed
# conv's prune, once, from boot as a board runs it: a second prune in this process, or
# one after a warm-up, finds the heap in pieces and fails in this budget (the host takes
# the best of several processes). The kernels load first, timed apart (viper's .mpy,
# where it runs; a prune's first Pruner() would load them).
store.discard(F.MASKS_PATH)
from prune8.kernels import chosen  # noqa: E402

t0 = time.ticks_us()
chosen()
load = time.ticks_diff(time.ticks_us(), t0)
us, peak = prune_once(ARGS["method"], "conv")  # noqa: F821
report([us, load, peak])
#= steps
# Each step of prune_result(method, 5000) on fc, timed apart
from prune8 import check, store  # noqa: E402
from prune8.profile import MAX_UNITS, MAX_WEIGHTS  # noqa: E402


def write_masks(info, mask):
    # as prune_model writes a layer's mask (its own options, here every default)
    with store.Replacing(F.MASKS_PATH) as f:
        store.write_header(f, F.MASKS_MAGIC, 0, 1)
        store.write_mask_header(f, info.name, "magnitude", "exact", 5000, 1, 0, mask.n,
                                info.rows, info.cols)
        f.write(memoryview(mask._bits)[:((mask.n + 31) >> 5) << 2])


def steps(method):
    out = {"index": best_us(lambda: store.read_model_index()),
           # before this job's own buffers exist: a board holds one set of them
           "buffers": best_us(lambda: (prune8.Pruner(MAX_WEIGHTS, MAX_UNITS),
                                       bytearray(MAX_WEIGHTS), bytearray(MAX_WEIGHTS)),
                              collect=True)}
    gc.collect()
    _, index = store.read_model_index()
    info = index[0]
    p = prune8.Pruner(MAX_WEIGHTS, MAX_UNITS)
    w = bytearray(MAX_WEIGHTS)
    a = bytearray(MAX_WEIGHTS)
    store.load_layer(info, w, a)
    # the layer fills the buffer: scored as prune_model scores it, w itself
    kernel = (lambda: p.magnitude(w)) if method == "magnitude" else \
        (lambda: p.mincut(w, ROWS, COLS))
    kernel()
    mask = p.mask(sparsity_bp=5000)
    out["load"] = best_us(lambda: store.load_layer(info, w, a))
    out["score"] = best_us(kernel)
    out["check of a view"] = best_us(lambda: check.int8_buffer(memoryview(w)[:info.n], "w"))
    out["mask"] = best_us(lambda: p.mask(sparsity_bp=5000))
    out["gc.collect"] = best_us(gc.collect)
    out["masks file"] = best_us(lambda: write_masks(info, mask))
    return out


report({m: steps(m) for m in ("magnitude", "mincut")})
