# Kernel benchmark, run on a MicroPython by bench/bench_kernels.py (the unix port by
# default): every hot path with the portable kernels and with the viper ones, in the
# same run, as microseconds per weight, at the Pruner's 2,048 weights and on a 65,536-
# weight layer streamed from flash; and the bubble / radix select crossover. Prints one
# JSON line. ARGS: {"store": a directory for the streamed layer's scratch store}.
import json
import os
import struct
import sys
import time
from array import array

MIN_MS = 150
ROUNDS = 3


def per_call_us(fn):
    best = None
    for _ in range(ROUNDS):
        calls = 0
        t0 = time.ticks_us()
        while True:
            fn()
            calls += 1
            dt = time.ticks_diff(time.ticks_us(), t0)
            if dt >= MIN_MS * 1000:
                break
        us = dt / calls
        best = us if best is None or us < best else best
    return best


def lcg_bytes(n, seed):
    b = bytearray(n)
    for i in range(n):
        seed = (seed * 1103515245 + 12345) & 0x3FFFFFFF
        b[i] = seed >> 22
    return b


STORE = ARGS["store"]  # noqa: F821
import prune8.formats as F  # noqa: E402

for k in [k for k in dir(F) if k == "ROOT" or k.endswith("_PATH")]:
    setattr(F, k, STORE + getattr(F, k)[len("/prune8"):])
import prune8  # noqa: E402
import prune8.protocol as P  # noqa: E402
from prune8 import dense, prune_model, push, sparse  # noqa: E402
from prune8.kernels import available  # noqa: E402

ROWS, COLS = 32, 64
N = ROWS * COLS
w = lcg_bytes(N, 12345)
act = lcg_bytes(COLS, 7)
p = prune8.Pruner()
p.wanda_reset()
p.wanda_add(act)
mults = array("i", [20000 + 300 * r for r in range(ROWS)])
net = dense.Dense(COLS, ROWS, 1 << 30, -8, 0, 0)  # 64 x 32: 2,048 weights
net.load(w, [0] * COLS)
x = lcg_bytes(ROWS, 3)
out = array("b", bytes(COLS))


def per_weight(set_name):
    prune8.use_kernels(set_name)
    m = p.mask(sparsity_bp=5000) if p.magnitude(w) else None
    wa = bytearray(w)
    cases = (
        ("magnitude", lambda: p.magnitude(w)),
        ("l2", lambda: p.l2(w)),
        ("gradient", lambda: p.gradient(w, act, COLS)),
        ("wanda", lambda: p.wanda(w, ROWS, COLS)),
        ("mincut", lambda: p.mincut(w, ROWS, COLS)),
        ("scaled", lambda: p.scaled(w, ROWS, COLS, mults)),
        ("random", lambda: p.random(N, 12345)),
        ("blocks 2x2", lambda: p.blocks(w, ROWS, COLS, 2, 2)),
        ("rows", lambda: p.rows(w, ROWS, COLS)),
    )
    res = {}
    for name, fn in cases:
        res[name] = per_call_us(fn) / N
    p.magnitude(w)
    res["select"] = per_call_us(lambda: p.threshold(N // 2, "select")) / N
    res["mask (exact)"] = per_call_us(lambda: p.mask(sparsity_bp=5000)) / N
    res["N:M 2:4"] = per_call_us(lambda: p.nm_mask(2, 4, ROWS, COLS)) / N
    res["apply"] = per_call_us(lambda: p.apply(wa, m)) / N
    res["dense forward"] = per_call_us(lambda: net.forward(x, out)) / N
    res["sparse native forward"] = per_call_us(lambda: native.forward(x, out)) / N
    return res


def crossover(set_name):
    prune8.use_kernels(set_name)
    p.magnitude(w)
    rows = []
    for n in (8, 16, 20, 24, 28, 32, 48, 64):
        p.n = n
        rows.append([n, per_call_us(lambda: p.threshold(n // 2, "bubble")),
                     per_call_us(lambda: p.threshold(n // 2, "select"))])
    return rows


def stored_layer():
    """A 256 x 256 layer pushed through the receiver into the scratch store."""
    r = push.ModelReceiver(object())
    r.begin(struct.pack(P.BEGIN_FMT, 1, 0))
    r.layer(b"\x04conv" + struct.pack(P.LAYER_FMT, 256, 256, 0, 0, 1, 1 << 30, -8, 0, 0, 0,
                                      0, 0))
    data = lcg_bytes(256 * 256, 99) + bytes(4 * 256)  # weights, then zero biases
    for i in range(0, len(data), P.MAX_PAYLOAD):
        r.data(memoryview(data)[i:i + P.MAX_PAYLOAD])
    r.end(b"")


def streamed(set_name):
    prune8.use_kernels(set_name)
    res = {}
    for method in ("magnitude", "mincut"):
        res["streamed prune " + method] = per_call_us(
            lambda: prune_model.prune_result(method, 5000)) / 65536
    from prune8 import infer
    _, netw, _ = infer.network(with_masks=True)
    xin = lcg_bytes(256, 5)
    res["streamed dense forward"] = per_call_us(lambda: netw.forward(xin)) / 65536
    netw.close()
    return res


def packed_native():
    """The 2,048 weights at 50 % as the native packed format (mask words, values)."""
    p.magnitude(w)
    m = p.mask(sparsity_bp=5000)
    bits = bytes(m.bytes())
    vals = bytes(w[i] for i in range(N) if m.is_kept(i))
    return sparse.SparseDense("native", COLS, ROWS, len(vals), 0, 0, bits + vals, 1 << 30,
                              -8, 0, 0, 0, [0] * COLS)


try:
    os.mkdir(STORE)
except OSError:
    pass
native = packed_native()
stored_layer()
prune_model.prune_result("magnitude", 5000)  # masks for the streamed forward
sets = available()
report = {"micropython": list(sys.implementation.version[:3]),
          "machine": getattr(sys.implementation, "_machine", ""), "sets": list(sets),
          "per_weight": {}, "crossover": {}, "streamed": {}}
for s in sets:
    report["per_weight"][s] = per_weight(s)
    report["crossover"][s] = crossover(s)
    report["streamed"][s] = streamed(s)
print(json.dumps(report))
