# Memory at full capacity stays within the board profile's heap budget, counted from
# boot: the runner soft-resets the board before this script, so gc.mem_alloc() holds
# everything, the modules' code included (docs/heap.md). The VM's own heap may be
# larger than an ESP32's, so the budget is checked here: with the collector disabled
# gc.mem_alloc() only grows, so its value after the work is the peak of everything
# the script allocated since boot.
import gc
import time

gc.collect()
gc.disable()
try:
    t0 = time.ticks_us()
    # the job the budget is for, written once: prune8_host.suite.heap.FULL_CAPACITY
    exec(ARGS["full_capacity"])  # noqa: F821 - the runner's
    peak = gc.mem_alloc()  # from boot
    dt = time.ticks_diff(time.ticks_us(), t0)
finally:
    gc.enable()
budget = ARGS["heap_bytes"]
verdict = "PASS" if peak <= budget else ("FAIL %d bytes from boot, over the budget of %d:"
                                         % (peak, budget))
print("CASE heap-full-capacity-%d %s us=%d heap=%d" % (N, verdict, dt, peak))  # noqa: F821
