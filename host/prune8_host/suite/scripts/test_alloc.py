# Zero allocation (docs/spec.md §5.2): after the Pruner is built, every scorer, every threshold
# method, mask, apply and row/column pruning allocate nothing. Measured with the
# collector disabled (gc.mem_alloc() must not move across the call) and, where the port
# can, with the heap locked (measure.py, prepended by the runner).
from array import array

import prune8

p = prune8.Pruner()
N = p.max_weights
COLS = p.max_units if p.max_units * p.max_units <= N else N // p.max_units
ROWS = N // COLS
N = ROWS * COLS
w = bytearray(N)
for i in range(N):
    w[i] = (i * 37 + 11) & 255
wa = array("b", bytes(w))
wv = memoryview(w)
act = bytearray(COLS)
for c in range(COLS):
    act[c] = (c * 13 + 1) & 127
act_w = bytearray(N)
for i in range(N):
    act_w[i] = (i * 7) & 127


def case(name, fn):
    alloc, dt, problem = measure(fn)  # noqa: F821 - measure.py
    print("CASE alloc-%s %s us=%d alloc=%d" % (name, verdict(alloc, problem), dt,  # noqa: F821
                                                alloc))


m_holder = [None]


def mask_then_keep(**kw):
    def fn():
        m_holder[0] = p.mask(**kw)
    return fn


case("magnitude-bytearray", lambda: p.magnitude(w))
case("magnitude-array", lambda: p.magnitude(wa))
case("magnitude-memoryview", lambda: p.magnitude(wv))
case("gradient-per-column", lambda: p.gradient(w, act, COLS))
case("gradient-per-weight", lambda: p.gradient(w, act_w))
case("mincut", lambda: p.mincut(w, ROWS, COLS))
case("rows", lambda: p.rows(w, ROWS, COLS))
case("mask-rows-bubble", lambda: p.mask(sparsity_bp=5000, method="bubble"))
case("mask-rows-select", lambda: p.mask(sparsity_bp=5000, method="select"))
case("cols", lambda: p.cols(w, ROWS, COLS))
case("mask-cols-auto", lambda: p.mask(sparsity_bp=2500))
p.magnitude(w)
case("mask-exact-bubble", lambda: p.mask(sparsity_bp=5000, method="bubble"))
case("mask-exact-select", lambda: p.mask(sparsity_bp=5000, method="select"))
case("mask-exact-auto", lambda: p.mask(sparsity_bp=5000))
case("mask-strict-min-keep-min-score",
     lambda: p.mask(sparsity_bp=3000, tie="strict", min_keep=5, min_score=3))
case("threshold-select", lambda: p.threshold(N // 2, "select"))
m = p.mask(sparsity_bp=5000)
case("apply", lambda: p.apply(w, m))
case("apply-array", lambda: p.apply(wa, m))
case("prune-rows", lambda: p.prune_rows(w, ROWS, COLS, sparsity_bp=2500))
case("prune-cols", lambda: p.prune_cols(w, ROWS, COLS, sparsity_bp=2500, method="select"))
case("l2", lambda: p.l2(w))
case("random", lambda: p.random(N, 12345))
case("wanda-add", lambda: p.wanda_add(act))
case("wanda", lambda: p.wanda(w, ROWS, COLS))
case("blocks", lambda: p.blocks(w, ROWS, COLS, 2, 2))
case("mask-blocks", lambda: p.mask(sparsity_bp=5000))
p.magnitude(w)
case("nm-2-4", lambda: p.nm_mask(2, 4, ROWS, COLS))
case("sparsity-at", lambda: prune8.sparsity_at(7, 10, 9000))

# Control: the measurement sees an allocation (a MemoryError with the heap locked, else
# a growing gc.mem_alloc()); otherwise every PASS above would mean nothing.
keep = []
alloc, dt, problem = measure(lambda: keep.append(bytearray(64)))  # noqa: F821
print("CASE alloc-control-allocation-seen %s us=%d alloc=%d" % (
    "PASS" if problem or alloc else "FAIL an allocation went unseen: the measurement is blind;",
    dt, alloc))
