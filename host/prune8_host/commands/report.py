"""prune8 report / schedule: per-layer reports of a model or masks file; the schedule."""

from __future__ import annotations

import json

import numpy as np

from prune8_host import twin
from prune8_host.errors import UsageError
from prune8_host.files import footprint, tflite
from prune8_host.files.masks import META_KEY, load_masks
from prune8_host.files.model import load_model
from prune8_host.files.npzio import load_arrays
from prune8_host.twin import tflm
from prune8_host.twin.reference import layer_scores, weight_keep

from . import drift
from .options import add_method_args, fraction_bp
from .table import table


def register(sub) -> None:
    p = sub.add_parser("report", help="per-layer sparsity and score statistics, with a summary",
                       description="Report on FILE. A masks file: per layer what is pruned, "
                                   "and the whole model's weights pruned. A model: per layer "
                                   "its zeros and the statistics of a scorer (min, max, mean, "
                                   "median, standard deviation) with the top-k scores.")
    p.add_argument("file", metavar="MODEL|MASKS",
                   help="a model (.tflite, or .npz of int8 layers) or a masks file (from prune8 mask)")
    add_method_args(p, default=None)
    p.add_argument("--top", type=int, default=5, metavar="K",
                   help="list the K highest scores per layer (model reports; default 5)")
    p.add_argument("--compare", metavar="SMALL",
                   help="a .tflite FILE only: measure SMALL (e.g. from prune8 shrink) beside "
                        "FILE instead: file bytes, int8 weight bytes, MACs, TFLM arena and "
                        "invoke time (median, this host, one run), and how far SMALL's "
                        "outputs are from FILE's (on --data, else on drawn inputs)")
    drift.add_data_arg(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=run_report)

    p = sub.add_parser("schedule", help="the cubic gradual-pruning schedule, step by step",
                       description="Print sparsity_at(step, steps, final, initial) for every "
                                   "step: Zhu & Gupta's cubic schedule in basis points.")
    p.add_argument("--steps", type=int, required=True, metavar="N", help="number of steps")
    p.add_argument("--final", type=float, required=True, metavar="S",
                   help="final sparsity, 0..1")
    p.add_argument("--initial", type=float, default=0.0, metavar="S",
                   help="initial sparsity, 0..1 (default 0)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=run_schedule)


def _pct(bp: int) -> str:
    return f"{bp / 100:.2f}%"


def masks_report(path) -> dict:
    layers, total, pruned_w = [], 0, 0
    for m in load_masks(path):
        stats = m.stats()
        kept_w = int(np.count_nonzero(weight_keep(m)))
        n_w = m.rows * m.cols
        total += n_w
        pruned_w += n_w - kept_w
        layers.append(dict(layer=m.name, unit=m.unit, method=m.method, **stats,
                           weights=n_w, weights_pruned=n_w - kept_w))
    return {"kind": "masks", "layers": layers, "weights": total, "weights_pruned": pruned_w,
            "sparsity_bp": pruned_w * 10000 // total if total else 0}


def model_report(path, method: str, seed: int, block, top: int) -> dict:
    layers, total, zeros = [], 0, 0
    for layer in load_model(path).values():
        s = layer_scores(layer, method, seed=seed, block=block)
        z = int(np.count_nonzero(layer.weights == 0))
        total += layer.n
        zeros += z
        best = twin.top_k(s, min(top, s.size))
        layers.append({"layer": layer.name, "shape": list(layer.weights.shape),
                       "weights": layer.n, "zeros": z, "sparsity_bp": z * 10000 // layer.n,
                       "scores": twin.score_stats(s),
                       "top": [[int(i), int(s[i])] for i in best]})
    return {"kind": "model", "method": method, "layers": layers, "weights": total,
            "zeros": zeros, "sparsity_bp": zeros * 10000 // total if total else 0}


def run_compare(args) -> int:
    for path in (args.file, args.compare):
        if not tflite.is_tflite(path):
            raise UsageError(f"{path}: --compare measures two .tflite models side by side")
    dense, small = tflite.read(args.file), tflite.read(args.compare)
    with tflm.naming(args.file):
        images, source = drift.inputs(args.data, dense.data)
        c = footprint.compare(dense.data, small.data, images, source)
    if args.json:
        print(json.dumps(c))
        return 0
    print(f"{args.file} (dense) vs {args.compare} (small):")
    for line in footprint.compare_lines(c):
        print(line)
    return 0


def run_report(args) -> int:
    if args.compare:
        return run_compare(args)
    if args.data:
        raise UsageError("--data goes with --compare")
    is_masks = not tflite.is_tflite(args.file) and META_KEY in load_arrays(args.file)
    if is_masks:
        r = masks_report(args.file)
    else:
        r = model_report(args.file, args.method or "magnitude", args.seed, args.block, args.top)
    if args.json:
        print(json.dumps(r))
        return 0
    if is_masks:
        print(table([("layer", "<", 12), ("method", "<", 10), ("pruned", ">", 16),
                     ("sparsity", ">", 9), ("weights", ">", 13)],
                    [[e["layer"], e["method"], f"{e['pruned']}/{e['n']} {e['unit']}s",
                      _pct(e["sparsity_bp"]), f"{e['weights_pruned']}/{e['weights']}"]
                     for e in r["layers"]]))
        print(f"model: {r['weights_pruned']} of {r['weights']} weights pruned "
              f"({_pct(r['sparsity_bp'])})")
        return 0
    rows = []
    for e in r["layers"]:
        s = e["scores"]
        top = ", ".join(f"{i}: {v}" for i, v in e["top"])
        rows.append([e["layer"], "x".join(map(str, e["shape"])),
                     f"{e['zeros']} ({_pct(e['sparsity_bp'])})",
                     f" {s['min']} {s['max']} {s['mean']:.2f} {s['median']:.1f} "
                     f"{s['std']:.2f}; {top}"])
    print(table([("layer", "<", 12), ("shape", "<", 8), ("zeros", ">", 12),
                 (f" {r['method']} scores: min max mean median std; top {args.top} "
                  f"(index: score)", "<", 0)], rows))
    print(f"model: {r['zeros']} of {r['weights']} weights are zero ({_pct(r['sparsity_bp'])})")
    return 0


def run_schedule(args) -> int:
    final, initial = fraction_bp("--final", args.final), fraction_bp("--initial", args.initial)
    values = [twin.sparsity_at(t, args.steps, final, initial) for t in range(args.steps + 1)]
    if args.json:
        print(json.dumps({"steps": args.steps, "final_bp": final, "initial_bp": initial,
                          "sparsity_bp": values}))
        return 0
    print("step  sparsity")
    for t, bp in enumerate(values):
        print(f"{t:>4}  {_pct(bp):>8}")
    return 0
