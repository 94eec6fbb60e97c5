# The whole in-RAM prune of a stored layer, and where its time goes, run on a MicroPython
# by bench/bench_prune.py (the unix port): prune_model.prune_result() of one 2,048-weight
# stored layer (32 x 64) with each kernel set, the same steps timed one by one, and the
# streamed prune of a 65,536-weight layer (256 x 256) from flash.
# Prints one JSON line. ARGS: {"store": a directory for the store}.
import gc
import json
import struct
import sys
import time

ROUNDS = 31  # best of: the machine may be busy, a quiet run is the one to keep
STORE = ARGS["store"]  # noqa: F821
import prune8.formats as F  # noqa: E402

for k in [k for k in dir(F) if k == "ROOT" or k.endswith("_PATH")]:
    setattr(F, k, STORE + getattr(F, k)[len("/prune8"):])
import prune8  # noqa: E402
import prune8.protocol as P  # noqa: E402
from prune8 import check, prune_model, push, store  # noqa: E402
from prune8.kernels import available  # noqa: E402
from prune8.profile import MAX_UNITS, MAX_WEIGHTS  # noqa: E402

ROWS, COLS = 32, 64


def best_us(fn, rounds=ROUNDS):
    best = None
    for _ in range(rounds):
        t0 = time.ticks_us()
        fn()
        dt = time.ticks_diff(time.ticks_us(), t0)
        best = dt if best is None or dt < best else best
    return best


def lcg_bytes(n, seed):
    b = bytearray(n)
    for i in range(n):
        seed = (seed * 1103515245 + 12345) & 0x3FFFFFFF
        b[i] = seed >> 22
    return b


def stored_layers():
    """fc (32 x 64: in RAM) and conv (256 x 256: streamed from flash) in model.bin."""
    r = push.ModelReceiver(object())
    r.begin(struct.pack(P.BEGIN_FMT, 2, 0))
    for name, rows, cols in ((b"fc", ROWS, COLS), (b"conv", 256, 256)):
        r.layer(bytes([len(name)]) + name +
                struct.pack(P.LAYER_FMT, rows, cols, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))
        data = lcg_bytes(rows * cols, 99)
        for i in range(0, len(data), P.MAX_PAYLOAD):
            r.data(memoryview(data)[i:i + P.MAX_PAYLOAD])
    r.end(b"")


def steps(method):
    """Each step of prune_result(method, 5000), timed apart."""
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
    out = {
        "index": best_us(lambda: store.read_model_index()),
        "buffers": best_us(lambda: (prune8.Pruner(MAX_WEIGHTS, MAX_UNITS),
                                    bytearray(MAX_WEIGHTS), bytearray(MAX_WEIGHTS))),
        "load": best_us(lambda: store.load_layer(info, w, a)),
        "score": best_us(kernel),
        "check of a view": best_us(lambda: check.int8_buffer(memoryview(w)[:info.n], "w")),
        "mask": best_us(lambda: p.mask(sparsity_bp=5000)),
        "gc.collect": best_us(gc.collect),
        "masks file": best_us(lambda: write_masks(info, mask)),
    }
    return out


def write_masks(info, mask):
    with store.Replacing(F.MASKS_PATH) as f:
        store.write_header(f, F.MASKS_MAGIC, 0, 1)
        prune_model._write_mask_header(f, info, mask.n, {"block": None, "nm": None,
                                                         "tie": "exact", "min_keep": 1,
                                                         "min_score": 0, "seed": 0,
                                                         "steps": 0, "scope": "layer"},
                                       "magnitude", 5000)
        f.write(memoryview(mask._bits)[:((mask.n + 31) >> 5) << 2])  # as prune_model does


stored_layers()
report = {"micropython": list(sys.implementation.version[:3]), "sets": list(available()),
          "whole": {}, "steps": {}, "streamed": {}}
for s in available():
    prune8.use_kernels(s)
    # Each set's whole prune starts from the same store: masks.bin holding fc's mask
    # alone (the set before left conv's there too, whose copy would be timed as well).
    store.discard(F.MASKS_PATH)
    prune_model.prune_result("magnitude", 5000, layers=["fc"])
    report["whole"][s] = {m: best_us(lambda: prune_model.prune_result(m, 5000, layers=["fc"]))
                          for m in ("magnitude", "mincut")}
    report["steps"][s] = {m: steps(m) for m in ("magnitude", "mincut")}
    report["streamed"][s] = {m: best_us(lambda: prune_model.prune_result(m, 5000,
                                                                         layers=["conv"]), 5)
                             for m in ("magnitude", "mincut")}
print(json.dumps(report))
