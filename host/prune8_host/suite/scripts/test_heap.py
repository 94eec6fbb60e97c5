# Memory at full capacity stays within the board profile's heap budget, counted from
# boot: the runner soft-resets the board before this script, so gc.mem_alloc() holds
# everything, the modules' code included (docs/heap.md). The VM's own heap may be
# larger than an ESP32's, so the budget is checked here: with the collector disabled
# gc.mem_alloc() only grows, so its value after the work is the peak of everything
# the script allocated since boot.
import gc
import time

import prune8

gc.collect()
gc.disable()
try:
    t0 = time.ticks_us()
    p = prune8.Pruner()
    N = p.max_weights
    COLS = p.max_units if p.max_units * p.max_units <= N else N // p.max_units
    ROWS = N // COLS
    w = bytearray(ROWS * COLS)
    for i in range(len(w)):
        w[i] = (i * 131 + 7) & 255
    a = bytearray(COLS)
    for s in ("magnitude", "mincut", "gradient", "rows", "cols"):
        if s == "magnitude":
            p.magnitude(w)
        elif s == "gradient":
            p.gradient(w, a, COLS)
        else:
            getattr(p, s)(w, ROWS, COLS)
        p.mask(sparsity_bp=5000, method="bubble" if s in ("rows", "cols") else "select")
    p.magnitude(w)
    p.apply(w, p.mask(sparsity_bp=5000))
    p.prune_rows(w, ROWS, COLS, sparsity_bp=5000)
    peak = gc.mem_alloc()  # from boot
    dt = time.ticks_diff(time.ticks_us(), t0)
finally:
    gc.enable()
budget = ARGS["heap_bytes"]
verdict = "PASS" if peak <= budget else ("FAIL %d bytes from boot, over the budget of %d:"
                                         % (peak, budget))
print("CASE heap-full-capacity-%d %s us=%d alloc=%d" % (N, verdict, dt, peak))
