"""prune8 score / mask / apply / stats: the twin on .npy / .npz files, no board."""

from __future__ import annotations

import json

from prune8_host.boards import DEFAULT_BOARD, load_board
from prune8_host.files.masks import load_masks, save_masks
from prune8_host.files.model import load_model, with_inputs
from prune8_host.files.npzio import save_npz
from prune8_host.twin.layer import Layer
from prune8_host.twin.reference import (
    apply_layer_mask,
    layer_scores,
    mask_for,
    pruned_counts,
    pruned_line,
)

from . import channels, drift
from .options import (
    add_activations_arg,
    add_force_arg,
    add_mask_args,
    add_method_args,
    model_masks,
    prune_options,
    refuse_lacking_inputs,
)


def add_layer_args(p) -> None:
    p.add_argument("weights", metavar="WEIGHTS",
                   help="int8 layers: a .tflite, an .npz of named 2-D arrays, or one .npy")
    p.add_argument("--layer", action="append", metavar="NAME",
                   help="only this layer (repeatable; default: every layer)")
    add_method_args(p)
    add_activations_arg(p)
    p.add_argument("--rows", type=int, help="rows of a flat (1-D) layer")
    p.add_argument("--cols", type=int, help="columns of a flat (1-D) layer")
    p.add_argument("--board", metavar="B",
                   help=f"enforce this board profile's capacity (e.g. {DEFAULT_BOARD})")
    p.add_argument("--json", action="store_true", help="print a JSON report instead of a line")


def register(sub) -> None:
    p = sub.add_parser("score", help="score layers with the twin (host reference)",
                       description="Score every layer of WEIGHTS and save the scores.")
    add_layer_args(p)
    p.add_argument("-o", "--out", metavar="OUT", help="write scores (.npz, one array per layer)")
    p.set_defaults(run=run_score)

    p = sub.add_parser("mask", help="compute keep masks with the twin (host reference)",
                       description="Score and mask every layer; masks are uint32 words in the "
                                   "layout of docs/spec.md §4.1 (bit set = keep), saved "
                                   "as a masks .npz.")
    add_layer_args(p)
    add_mask_args(p)
    channels.add_structured_arg(p)
    p.add_argument("-o", "--out", metavar="MASKS", help="write the masks file (.npz)")
    p.set_defaults(run=run_mask)

    p = sub.add_parser("apply", help="zero the pruned weights of a model",
                       description="Apply a masks file to WEIGHTS and save the pruned model "
                                   "in WEIGHTS' own format: for a .tflite, a .tflite that "
                                   "differs from it only in the pruned weights (the "
                                   "deployable model: it runs wherever WEIGHTS runs, and it "
                                   "has the same size, since zeros take as many bytes as any "
                                   "weight; prune8 pack reports what they would save "
                                   "stored sparsely); for an .npz, every array it held. An "
                                   "OUT named .npz is an .npz of the layers whatever WEIGHTS "
                                   "is. For a .tflite, also says how far the pruned "
                                   "model's outputs moved from WEIGHTS' (TFLM on the host).")
    p.add_argument("weights", metavar="WEIGHTS", help="the model the masks were made for")
    p.add_argument("masks", metavar="MASKS", help="masks file from 'prune8 mask' or 'prune8 pull'")
    p.add_argument("-o", "--out", metavar="OUT", required=True,
                   help="pruned model: .tflite (from a .tflite WEIGHTS) or .npz (its layers); "
                        "another name gets WEIGHTS' own format")
    add_force_arg(p)
    drift.add_data_arg(p)
    p.add_argument("--json", action="store_true", help="print a JSON report instead of a line")
    p.set_defaults(run=run_apply)

    p = sub.add_parser("stats", help="pruned / kept / sparsity of a masks file",
                       description="Print n, pruned, kept and sparsity per layer of MASKS.")
    p.add_argument("masks", metavar="MASKS", help="masks file (.npz)")
    p.add_argument("--model", metavar="MODEL",
                   help="the model the masks were made for: also count the weights they "
                        "prune that are already zero there (what apply does not change)")
    add_force_arg(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=run_stats)


def _profile(args):
    return load_board(args.board) if args.board else None


def _layers(args) -> dict[str, Layer]:
    whole = load_model(args.weights, args.rows, args.cols)
    if args.activations:
        whole = with_inputs(whole, args.activations, args.layer)
    model = whole.select(args.layer)
    if whole.kind == "tflite":  # nothing to add to a .tflite: say what gives the inputs
        refuse_lacking_inputs(args.weights, model, args.method, tflite=True,
                              depthwise=frozenset(whole.depthwise_layers()))
    return model


def _pct(bp: int) -> str:
    return f"{bp // 100}.{bp % 100:02d}%"


def run_score(args) -> int:
    profile = _profile(args)
    out, report = {}, []
    for name, layer in _layers(args).items():
        s = layer_scores(layer, args.method, profile, seed=args.seed, block=args.block)
        out[name] = s
        report.append({"layer": name, "n": int(s.size), "min": int(s.min()),
                       "max": int(s.max()), "mean": round(float(s.mean()), 3)})
    if args.out:
        save_npz(args.out, out)
    if args.json:
        print(json.dumps({"method": args.method, "layers": report, "out": args.out}))
    else:
        n = sum(r["n"] for r in report)
        print(f"score: {len(report)} layer(s), {n} {args.method} scores, min "
              f"{min(r['min'] for r in report)} max {max(r['max'] for r in report)}"
              + (f" -> {args.out}" if args.out else ""))
    return 0


def run_mask(args) -> int:
    if args.structured:
        return channels.run_mask(args)
    profile = _profile(args)
    opts = prune_options(args)
    bp = opts.sparsity_bp
    layers = _layers(args)
    masks = [mask_for(layer, opts, profile) for layer in layers.values()]
    if args.out:
        save_masks(args.out, masks, model=layers)
    stats = [dict(layer=m.name, unit=m.unit, **m.stats()) for m in masks]
    if args.json:
        print(json.dumps({"method": args.method, "tie": args.tie, "sparsity_bp": bp,
                          "layers": stats, "out": args.out}))
    else:
        n, pruned = sum(s["n"] for s in stats), sum(s["pruned"] for s in stats)
        print(f"mask: {len(stats)} layer(s), {args.method} at {_pct(bp)} ({args.tie}): "
              f"{pruned} of {n} {masks[0].unit}s pruned"
              + (f" -> {args.out}" if args.out else ""))
    return 0


def run_apply(args) -> int:
    model = load_model(args.weights)
    model.output_format(args.out)  # refuses an output it cannot be written as, first
    drift.check_data(args.data, model, args.weights)
    masks = {m.name: m for m in model_masks(args, model, args.masks, args.weights)}
    pruned = {n: apply_layer_mask(model[n].weights, m) for n, m in masks.items()}
    counts = [pruned_counts(model[n].weights, m) for n, m in masks.items()]
    total = sum(model[n].n for n in masks)
    # in the model's own format: activations and quantization parameters travel with the
    # pruned weights, so a pruned quantized model still runs (prune8_host.twin.dense); a
    # .tflite changes only in the pruned weights' bytes
    moved = drift.measure(args.data, model, pruned)  # a .tflite: how far its outputs moved
    model.write(args.out, weights=pruned)
    if args.json:
        n_pruned, zero = sum(c[0] for c in counts), sum(c[1] for c in counts)
        print(json.dumps({"layers_masked": len(masks), "weights": total,
                          "weights_pruned": n_pruned, "already_zero": zero,
                          "weights_zeroed": n_pruned - zero, "out": args.out,
                          "outputs_moved": moved[0] if moved else None}))
    else:
        print(f"apply: {len(masks)} of {len(model)} layer(s) masked: "
              f"{pruned_line(counts, total)} -> {args.out}")
        if moved:
            print(moved[1])
    return 0


def run_stats(args) -> int:
    model = load_model(args.model) if args.model else None
    masks = model_masks(args, model, args.masks, args.model) if model is not None else \
        load_masks(args.masks)
    rows = [dict(layer=m.name, unit=m.unit, method=m.method, tie=m.options.tie,
                 requested_bp=m.options.sparsity_bp, **m.stats()) for m in masks]
    counts = None
    if model is not None:
        counts = [pruned_counts(model[m.name].weights, m) for m in masks]
        for r, (w_pruned, zero) in zip(rows, counts):
            r.update(weights_pruned=w_pruned, already_zero=zero)
    if args.json:
        print(json.dumps({"layers": rows}))
        return 0
    n, pruned = sum(r["n"] for r in rows), sum(r["pruned"] for r in rows)
    print(f"stats: {len(rows)} layer(s), {pruned} of {n} entries pruned by the masks "
          f"({_pct(pruned * 10000 // n if n else 0)}): "
          + ", ".join(f"{r['layer']} {r['pruned']}/{r['n']} {r['unit']}s" for r in rows)
          + (f"; in {args.model}: {pruned_line(counts, sum(model[m.name].n for m in masks))}"
             if counts is not None else ""))
    return 0
