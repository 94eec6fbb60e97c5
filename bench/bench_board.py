# On-board benchmark: run with `mpremote run bench/bench_board.py` on any board with
# prune8 deployed, or `python bench/run_on_board.py bench/bench_board.py [--port P]`,
# which deploys it first (on a virtual board without --port; make bench does that).
# Plain MicroPython; also runs on CPython.
#
# Reports microseconds per weight for each scorer at full capacity, and bubble sort
# against radix select at n = 64, 256 and 2048, all in the same run. Each figure is
# the best of several timed loops of at least MIN_MS, because some ports' tick counters
# are coarse (the WebAssembly VM's ticks_us advances in whole milliseconds).

import time

import prune8

try:
    ticks_us, ticks_diff = time.ticks_us, time.ticks_diff
except AttributeError:  # CPython
    def ticks_us():
        return int(time.perf_counter() * 1e6)

    def ticks_diff(a, b):
        return a - b

MIN_MS = 200
ROUNDS = 3


def per_call_us(fn):
    """Best over ROUNDS of the mean time per call in a loop lasting at least MIN_MS."""
    best = None
    for _ in range(ROUNDS):
        calls = 0
        t0 = ticks_us()
        while True:
            fn()
            calls += 1
            dt = ticks_diff(ticks_us(), t0)
            if dt >= MIN_MS * 1000:
                break
        us = dt / calls
        best = us if best is None or us < best else best
    return best


def main():
    p = prune8.Pruner()
    n = p.max_weights
    cols = p.max_units if p.max_units * p.max_units <= n else n // p.max_units
    rows = n // cols
    n = rows * cols
    w = bytearray(n)
    seed = 12345
    for i in range(n):  # a small LCG: the same weights on every board
        seed = (seed * 1103515245 + 12345) & 0x3FFFFFFF
        w[i] = seed >> 22
    a = bytearray(cols)
    for c in range(cols):
        a[c] = (c * 37 + 5) & 127

    print("prune8 board benchmark: %d weights (%d x %d)" % (n, rows, cols))
    p.wanda_reset()
    p.wanda_add(a)
    scorers = (
        ("magnitude", lambda: p.magnitude(w)),
        ("l2", lambda: p.l2(w)),
        ("random", lambda: p.random(n, 12345)),
        ("wanda", lambda: p.wanda(w, rows, cols)),
        ("blocks 2x2", lambda: p.blocks(w, rows, cols, 2, 2)),
        ("gradient", lambda: p.gradient(w, a, cols)),
        ("mincut", lambda: p.mincut(w, rows, cols)),
        ("rows", lambda: p.rows(w, rows, cols)),
        ("cols", lambda: p.cols(w, rows, cols)),
    )
    for name, fn in scorers:
        us = per_call_us(fn)
        print("score %-10s %9.3f us/weight" % (name, us / n))

    p.magnitude(w)
    for size in (64, 256, 2048):
        if size > n:
            break
        p.n = size  # threshold the first `size` scores
        bubble = per_call_us(lambda: p.threshold(size // 2, "bubble"))
        select = per_call_us(lambda: p.threshold(size // 2, "select"))
        print("threshold n=%-5d bubble %10.1f us  select %8.1f us  select is %.1fx faster"
              % (size, bubble, select, bubble / select))
    p.magnitude(w)
    us = per_call_us(lambda: p.mask(sparsity_bp=5000))
    print("mask (auto, exact) n=%d: %.1f us" % (n, us))
    us = per_call_us(lambda: p.nm_mask(2, 4, rows, cols))
    print("N:M 2:4 mask n=%d: %.3f us/weight" % (n, us / n))


main()
