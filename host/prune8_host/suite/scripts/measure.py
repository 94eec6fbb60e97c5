# Prepended by the runner (prune8_host.suite.runner), after ARGS and the choice of
# kernels the run asks for, to an on-board test script that uses its helpers: how a hot
# path's allocation is measured.
#
# measure(fn) runs fn once to warm it (first calls may intern or cache), then again with
# the collector disabled, and returns (bytes allocated, microseconds, problem). Where
# ARGS["heap_lock"] is set and the port has micropython.heap_lock() (the unix port: the
# WebAssembly VM's hangs), the second run is made with the heap locked, so a hot path
# that allocates raises MemoryError: problem is then a message, else None.
import gc
import time

try:
    import micropython
except ImportError:  # CPython
    micropython = None

try:
    ticks_us, ticks_diff = time.ticks_us, time.ticks_diff
except AttributeError:  # CPython
    def ticks_us():
        return int(time.perf_counter() * 1e6)

    def ticks_diff(a, b):
        return a - b

HEAP_LOCK = ARGS.get("heap_lock", False) and hasattr(micropython, "heap_lock")  # noqa: F821


def measure(fn):
    fn()
    gc.collect()
    gc.disable()
    problem = None
    try:
        a0 = gc.mem_alloc() if hasattr(gc, "mem_alloc") else 0
        t0 = ticks_us()
        if HEAP_LOCK:
            micropython.heap_lock()
        try:
            fn()
        except MemoryError:
            problem = "allocated with the heap locked (MemoryError)"
        finally:
            if HEAP_LOCK:
                micropython.heap_unlock()
        dt = ticks_diff(ticks_us(), t0)
        alloc = (gc.mem_alloc() if hasattr(gc, "mem_alloc") else 0) - a0
    finally:
        gc.enable()
    return alloc, dt, problem


def verdict(alloc, problem):
    if problem is not None:
        return "FAIL %s:" % problem
    return "PASS" if alloc == 0 else "FAIL allocated %d bytes:" % alloc
