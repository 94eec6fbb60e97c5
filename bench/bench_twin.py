"""Twin throughput, as ratios to a baseline measured in the same run (`make bench`).

The baseline is one widening copy `w.astype(np.int16)` of the same weights: the
memory-bound floor for anything that builds int16 scores. On a shared, noisy
machine absolute times wander; the ratios are what to compare.

    magnitude_scores + prune_mask, 16M weights    goal: <= 3x the widening copy
    magnitude_mask (fused, no int16 scores)       goal: <= 2x
    min-cut scores, 4096 x 4096                    goal: <= 5x
    peak extra memory                               goal: <= 4 bytes per weight
    PyTorch l1_unstructured, 16M float32           goal: twin >= 50x faster (if installed)
    the old path (np.partition on int16)           reported beside them

NumPy's partition and sort have AVX-512 fast paths; many machines lack AVX-512. When
this machine has it, the whole table is measured twice: as found, and again in a
child process with NumPy's AVX-512 dispatch switched off (NPY_DISABLE_CPU_FEATURES),
which is how an AVX2-only machine runs the same code.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import tracemalloc

import numpy as np

from prune8.bp import prune_count
from prune8_host import twin
from prune8_host.twin import select, threads

NO_AVX512 = "X86_V4 AVX512_ICL AVX512_SPR"  # NumPy 2.4's dispatch groups above AVX2


def best_time(fn, repeat: int) -> float:
    """Minimum wall time of `repeat` runs: the least disturbed by other load."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def peak_extra_bytes(fn) -> int:
    """Peak bytes NumPy allocated during fn (tracemalloc sees NumPy's buffers), from a
    cold start: the selection's per-thread scratch is counted."""
    select.release_scratch()
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak - base


def simd() -> dict:
    """NumPy's SIMD dispatch on this machine: what it found and what it may use."""
    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    found = [f for f in __cpu_dispatch__ if __cpu_features__.get(f)]
    return {"found": found, "avx512": any(f.startswith(("X86_V4", "AVX512")) for f in found)}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, NumPy {np.__version__}"


def old_magnitude_mask(w):
    """The previous path, kept for comparison: int16 |w|, np.partition for the k-th
    value, whole-array comparisons and one packbits."""
    s = w.astype(np.int16)
    np.abs(s, out=s)
    n = s.size
    k = prune_count(n, 5000, 1)
    t = int(np.partition(s, k - 1)[k - 1])
    keep = s >= t
    ties = k - (n - int(np.count_nonzero(keep)))
    cut = int(np.flatnonzero(s == t)[ties - 1]) + 1
    keep[:cut] &= s[:cut] != t
    return twin.mask_from_keep(keep)


def magnitude_mask(w):
    return twin.prune_mask(twin.magnitude_scores(w), sparsity_bp=5000)


def fused_mask(w):
    return twin.magnitude_mask(w, sparsity_bp=5000)


def mincut(w2d):
    return twin.mincut_scores(w2d, *w2d.shape)


def torch_l1(w):
    import torch
    import torch.nn.utils.prune as tprune

    class Holder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.from_numpy(w.astype(np.float32)))

    m = Holder()
    tprune.l1_unstructured(m, "weight", amount=0.5)
    return m.weight_mask


def measure(args) -> dict:
    rng = np.random.default_rng(0)
    w = rng.integers(-128, 128, args.n, dtype=np.int16).astype(np.int8)
    w2d = w[: args.side * args.side].reshape(args.side, args.side)
    assert np.array_equal(magnitude_mask(w), old_magnitude_mask(w))
    assert np.array_equal(fused_mask(w), old_magnitude_mask(w))

    widen = best_time(lambda: w.astype(np.int16), args.repeat)
    widen2d = best_time(lambda: w2d.astype(np.int16), args.repeat)
    r = {"machine": machine(), "simd": simd(), "weights": int(w.size), "widening_copy_s": widen,
         "threads": min(threads.MAX_THREADS, os.cpu_count() or 1)}
    for name, fn in (("magnitude_mask", magnitude_mask), ("fused", fused_mask),
                     ("old", old_magnitude_mask)):
        t = best_time(lambda: fn(w), args.repeat)
        r[f"{name}_s"] = t
        r[f"{name}_ratio"] = t / widen
        r[f"{name}_peak_bytes_per_weight"] = peak_extra_bytes(lambda: fn(w)) / w.size
    r["mincut_side"] = args.side
    r["mincut_widening_copy_s"] = widen2d
    r["mincut_s"] = best_time(lambda: mincut(w2d), args.repeat)
    r["mincut_ratio"] = r["mincut_s"] / widen2d
    saved, threads.MAX_THREADS = threads.MAX_THREADS, 1  # the same on one thread
    try:
        for name, fn, base in (("magnitude_mask", lambda: magnitude_mask(w), widen),
                               ("fused", lambda: fused_mask(w), widen),
                               ("mincut", lambda: mincut(w2d), widen2d)):
            r[f"{name}_1thread_ratio"] = best_time(fn, args.repeat) / base
    finally:
        threads.MAX_THREADS = saved
    r["mincut_peak_bytes_per_weight"] = peak_extra_bytes(lambda: mincut(w2d)) / w2d.size

    side = args.side
    abs_pass = best_time(lambda: twin.magnitude_scores(w2d), args.repeat)
    sumsq = twin.wanda_sumsq(w2d[:64])
    mag_scores = twin.magnitude_scores(w2d)
    extra = {
        "l2": lambda: twin.l2_scores(w2d),
        "random": lambda: twin.random_scores(w2d.size, 12345),
        "wanda": lambda: twin.wanda_scores(w2d, sumsq, side, side),
        "blocks 4x4": lambda: twin.block_scores(w2d, side, side, 4, 4),
        "N:M 2:4 mask": lambda: twin.nm_mask(mag_scores, side, side, 2, 4),
    }
    r["abs_pass_s"] = abs_pass
    r["extra_ratio_to_abs_pass"] = {
        name: best_time(fn, max(1, args.repeat // 2)) / abs_pass for name, fn in extra.items()}
    try:
        import torch  # noqa: F401
    except ImportError:
        r["torch"] = "not installed (pip install torch==2.13.0)"
    else:
        t = best_time(lambda: torch_l1(w), max(1, args.repeat // 2))
        r["torch_l1_unstructured_s"] = t
        r["twin_speedup_vs_torch"] = t / r["magnitude_mask_s"]
        r["fused_speedup_vs_torch"] = t / r["fused_s"]
    return r


def verdict(value: float, goal: float, at_most: bool = True) -> str:
    ok = value <= goal if at_most else value >= goal
    return "meets" if ok else "MISSES"


def report(r: dict) -> None:
    ms = 1e3
    found = ", ".join(r["simd"]["found"]) or "baseline only"
    print(f"twin benchmark, {r['weights']:,} int8 weights; {r['machine']}")
    print(f"  NumPy SIMD dispatch: {found}; large passes on {r['threads']} threads "
          "(1-thread ratio in brackets)")
    print(f"  widening copy w.astype(int16)        {r['widening_copy_s'] * ms:8.1f} ms   1.0x"
          " (baseline)")
    rows = (("magnitude_scores + prune_mask", "magnitude_mask", 3.0),
            ("magnitude_mask (fused)", "fused", 2.0),
            ("old path (np.partition)", "old", None))
    for label, key, goal in rows:
        ratio, peak = r[f"{key}_ratio"], r[f"{key}_peak_bytes_per_weight"]
        one = r.get(f"{key}_1thread_ratio")
        goal_text = (f"goal <= {goal:g}x: {verdict(ratio, goal)}" if goal else "for comparison")
        print(f"  {label:<36} {r[f'{key}_s'] * ms:8.1f} ms {ratio:5.1f}x"
              + (f" [{one:.1f}x]" if one else "") + f" ({goal_text}), "
              f"peak {peak:.2f} B/weight ({verdict(peak, 4)} <= 4)")
    print(f"  min-cut {r['mincut_side']}x{r['mincut_side']} (baseline "
          f"{r['mincut_widening_copy_s'] * ms:.1f} ms)     {r['mincut_s'] * ms:8.1f} ms "
          f"{r['mincut_ratio']:5.1f}x [{r['mincut_1thread_ratio']:.1f}x] (goal <= 5x: "
          f"{verdict(r['mincut_ratio'], 5)}), peak {r['mincut_peak_bytes_per_weight']:.2f} "
          f"B/weight ({verdict(r['mincut_peak_bytes_per_weight'], 4)} <= 4)")
    print(f"  more scores, as a ratio to the abs pass ({r['abs_pass_s'] * ms:.1f} ms):")
    for name, ratio in r["extra_ratio_to_abs_pass"].items():
        print(f"    {name:<14} {ratio:6.1f}x")
    if "torch_l1_unstructured_s" in r:
        print(f"  torch l1_unstructured (float32)      {r['torch_l1_unstructured_s'] * ms:8.1f} ms"
              f"  twin {r['twin_speedup_vs_torch']:.0f}x faster, fused "
              f"{r['fused_speedup_vs_torch']:.0f}x (goal >= 50x: "
              f"{verdict(r['twin_speedup_vs_torch'], 50, at_most=False)})")
    else:
        print(f"  torch: {r['torch']}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=16 * 1024 * 1024, help="weights (default 16M)")
    ap.add_argument("--side", type=int, default=4096, help="min-cut layer side (default 4096)")
    ap.add_argument("--repeat", type=int, default=11)
    ap.add_argument("--json", action="store_true", help="print the measurements as JSON")
    ap.add_argument("--only-found", action="store_true",
                    help="measure with the SIMD NumPy found only (no second, AVX2-only run)")
    args = ap.parse_args(argv)
    results = [measure(args)]
    if results[0]["simd"]["avx512"] and not args.only_found:
        env = dict(os.environ, NPY_DISABLE_CPU_FEATURES=NO_AVX512)
        cmd = [sys.executable, __file__, "--json", "--only-found", "--n", str(args.n),
               "--side", str(args.side), "--repeat", str(args.repeat)]
        out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
        results += json.loads(out)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for i, r in enumerate(results):
        if i:
            print("\nthe same with NumPy's AVX-512 paths switched off (as on an AVX2 machine):")
        report(r)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
