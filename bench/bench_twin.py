"""Twin throughput, as ratios to a baseline measured in the same run (`make bench`).

The baseline is one widening copy `w.astype(np.int16)` of the same weights: the
memory-bound floor for anything that builds int16 scores. On a shared, noisy
machine absolute times wander; the ratios are what to compare.

    magnitude + exact mask, 16M weights      goal: <= 10x the widening copy
    min-cut, 4096 x 4096                      goal: <= 20x
    peak extra memory                          goal: <= 8 bytes per weight
    PyTorch l1_unstructured, 16M float32      goal: twin >= 20x faster (if torch is installed)

The further scorers and patterns (l2, random, Wanda, block L1, N:M) are reported as a
ratio to the abs pass (magnitude scores) on the same 4096 x 4096 layer.
"""

from __future__ import annotations

import argparse
import json
import time
import tracemalloc

import numpy as np

from prune8_host import twin


def best_time(fn, repeat: int) -> float:
    """Minimum wall time of `repeat` runs: the least disturbed by other load."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def peak_extra_bytes(fn) -> int:
    """Peak bytes NumPy allocated during fn (tracemalloc sees NumPy's buffers)."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak - base


def magnitude_mask(w):
    return twin.prune_mask(twin.magnitude_scores(w), sparsity_bp=5000)


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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=16 * 1024 * 1024, help="weights (default 16M)")
    ap.add_argument("--side", type=int, default=4096, help="min-cut layer side (default 4096)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    rng = np.random.default_rng(0)
    w = rng.integers(-128, 128, args.n, dtype=np.int16).astype(np.int8)
    w2d = w[: args.side * args.side].reshape(args.side, args.side)

    widen = best_time(lambda: w.astype(np.int16), args.repeat)
    widen2d = best_time(lambda: w2d.astype(np.int16), args.repeat)
    mag = best_time(lambda: magnitude_mask(w), args.repeat)
    mc = best_time(lambda: mincut(w2d), args.repeat)
    mag_peak = peak_extra_bytes(lambda: magnitude_mask(w)) / w.size
    mc_peak = peak_extra_bytes(lambda: mincut(w2d)) / w2d.size
    result = {
        "weights": int(w.size), "widening_copy_s": widen,
        "magnitude_mask_s": mag, "magnitude_mask_ratio": mag / widen,
        "magnitude_mask_peak_bytes_per_weight": mag_peak,
        "mincut_side": args.side, "mincut_widening_copy_s": widen2d,
        "mincut_s": mc, "mincut_ratio": mc / widen2d,
        "mincut_peak_bytes_per_weight": mc_peak,
    }
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
    result["abs_pass_s"] = abs_pass
    result["extra_ratio_to_abs_pass"] = {
        name: best_time(fn, max(1, args.repeat // 2)) / abs_pass for name, fn in extra.items()}

    try:
        import torch  # noqa: F401
    except ImportError:
        result["torch"] = "not installed (pip install torch==2.13.0)"
    else:
        t = best_time(lambda: torch_l1(w), max(1, args.repeat // 2))
        result["torch_l1_unstructured_s"] = t
        result["twin_speedup_vs_torch"] = t / mag

    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"twin benchmark, {w.size:,} int8 weights (best of {args.repeat})")
    print(f"  widening copy w.astype(int16)     {widen * 1e3:8.1f} ms   1.0x (baseline)")
    print(f"  magnitude + exact mask            {mag * 1e3:8.1f} ms  {mag / widen:5.1f}x "
          f"(goal <= 10x), peak {mag_peak:.2f} B/weight (goal <= 8)")
    print(f"  min-cut {args.side}x{args.side} (baseline {widen2d * 1e3:.1f} ms)  "
          f"{mc * 1e3:8.1f} ms  {mc / widen2d:5.1f}x (goal <= 20x), peak {mc_peak:.2f} B/weight")
    print(f"  more scores on {args.side}x{args.side}, as a ratio to the abs pass "
          f"({abs_pass * 1e3:.1f} ms):")
    for name, ratio in result["extra_ratio_to_abs_pass"].items():
        print(f"    {name:<14} {ratio:6.1f}x")
    if "torch_l1_unstructured_s" in result:
        print(f"  torch l1_unstructured (float32)   {result['torch_l1_unstructured_s'] * 1e3:8.1f}"
              f" ms  twin is {result['twin_speedup_vs_torch']:.1f}x faster (goal >= 20x)")
    else:
        print(f"  torch: {result['torch']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
