"""prune8 score / mask / apply / stats: the host reference on .npy / .npz files."""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np

from prune8_host import twin
from prune8_host.boards import DEFAULT_BOARD, load_board
from prune8_host.masks import load_masks, save_masks
from prune8_host.model import ACT_SUFFIX, Layer, ModelError, layer_arrays, load_model
from prune8_host.npzio import load_arrays, save_npz
from prune8_host.reference import METHODS, apply_layer_mask, layer_mask, layer_scores


def add_layer_args(p, method_required: bool = True) -> None:
    p.add_argument("weights", metavar="WEIGHTS",
                   help="int8 layers: .npz of named 2-D arrays, or one .npy")
    p.add_argument("--layer", action="append", metavar="NAME",
                   help="only this layer (repeatable; default: every layer)")
    add_method_args(p, method_required)
    p.add_argument("--activations", metavar="FILE",
                   help="int8 activations for --method gradient (.npy for one layer, or .npz "
                        "with one array per layer name); default: NAME.act in WEIGHTS")
    p.add_argument("--rows", type=int, help="rows of a flat (1-D) layer")
    p.add_argument("--cols", type=int, help="columns of a flat (1-D) layer")
    p.add_argument("--board", metavar="B",
                   help=f"enforce this board profile's capacity (e.g. {DEFAULT_BOARD})")
    p.add_argument("--json", action="store_true", help="print a JSON report instead of a line")


METHOD_HELP = ("scorer: magnitude |w|, l2 w*w, gradient |w*a|>>4, wanda |w|*||x||>>4, "
               "mincut edge importance, random (seeded), rows / cols / blocks L1")


def _block(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+)x(\d+)", text)
    if not m:
        raise argparse.ArgumentTypeError(f"block size must look like 4x4, got {text!r}")
    return int(m.group(1)), int(m.group(2))


def _nm(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+):(\d+)", text)
    if not m:
        raise argparse.ArgumentTypeError(f"N:M pattern must look like 2:4, got {text!r}")
    return int(m.group(1)), int(m.group(2))


def add_method_args(p, required: bool = True) -> None:
    p.add_argument("--method", choices=METHODS, required=required, help=METHOD_HELP)
    p.add_argument("--seed", type=int, default=0, metavar="S",
                   help="seed of --method random (0..2**30-1, default 0)")
    p.add_argument("--block", type=_block, metavar="BRxBC",
                   help="block size for --method blocks, e.g. 4x4")


def add_mask_args(p) -> None:
    p.add_argument("--sparsity", type=float, metavar="S",
                   help="fraction to prune, 0..1, in whole basis points (0.0001 steps)")
    p.add_argument("--sparsity-bp", type=int, metavar="BP", help="the same in basis points")
    p.add_argument("--tie", choices=twin.TIES, default="exact",
                   help="exact: prune exactly k (ties by index); strict: only scores below "
                        "the threshold (default exact)")
    p.add_argument("--min-keep", type=int, default=1, metavar="K",
                   help="never prune below K entries (default 1)")
    p.add_argument("--min-score", type=int, default=0, metavar="T",
                   help="also prune every score below T (default 0: off)")
    p.add_argument("--nm", type=_nm, metavar="N:M",
                   help="N:M pattern instead of a sparsity: keep N of every M along a row")
    p.add_argument("--steps", type=int, default=0, metavar="N",
                   help="gradual: walk the cubic schedule to the sparsity in N steps")


def register(sub) -> None:
    p = sub.add_parser("score", help="score layers with the twin (host reference)",
                       description="Score every layer of WEIGHTS and save the scores.")
    add_layer_args(p)
    p.add_argument("-o", "--out", metavar="OUT", help="write scores (.npz, one array per layer)")
    p.set_defaults(run=run_score)

    p = sub.add_parser("mask", help="compute keep masks with the twin (host reference)",
                       description="Score and mask every layer; masks are uint32 words in the "
                                   "SPEC layout (bit set = keep), saved as a masks .npz.")
    add_layer_args(p)
    add_mask_args(p)
    p.add_argument("-o", "--out", metavar="MASKS", help="write the masks file (.npz)")
    p.set_defaults(run=run_mask)

    p = sub.add_parser("apply", help="zero the pruned weights of a model",
                       description="Apply a masks file to WEIGHTS and save the pruned model.")
    p.add_argument("weights", metavar="WEIGHTS", help="the model the masks were made for")
    p.add_argument("masks", metavar="MASKS", help="masks file from 'prune8 mask' or 'prune8 pull'")
    p.add_argument("-o", "--out", metavar="OUT", required=True, help="pruned model (.npz)")
    p.add_argument("--json", action="store_true", help="print a JSON report instead of a line")
    p.set_defaults(run=run_apply)

    p = sub.add_parser("stats", help="pruned / kept / sparsity of a masks file",
                       description="Print n, pruned, kept and sparsity per layer of MASKS.")
    p.add_argument("masks", metavar="MASKS", help="masks file (.npz)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=run_stats)


def _profile(args):
    return load_board(args.board) if args.board else None


def _layers(args) -> dict[str, Layer]:
    model = load_model(args.weights, args.rows, args.cols, args.layer)
    if args.activations:
        acts = load_arrays(args.activations)
        if Path(args.activations).suffix == ".npy":
            if len(model) != 1:
                raise ModelError(f"{args.activations}: a .npy holds one layer's activations, "
                                 f"but {args.weights} has {len(model)} layers: use an .npz")
            acts = {next(iter(model)): next(iter(acts.values()))}
        fixed = {}
        for name, layer in model.items():
            a = acts.get(name, acts.get(name + ACT_SUFFIX))
            fixed[name] = replace(layer, activations=a if a is not None else layer.activations)
        model = fixed
    return model


def _pct(bp: int) -> str:
    return f"{bp // 100}.{bp % 100:02d}%"


def _bp(args) -> int:
    if args.nm is not None and args.sparsity is None and args.sparsity_bp is None:
        return 0  # an N:M pattern fixes the sparsity itself
    return twin.resolve_bp(args.sparsity, args.sparsity_bp)


def mask_options(args) -> dict:
    """layer_mask keyword arguments from the command line."""
    return dict(sparsity_bp=_bp(args), tie=args.tie, min_keep=args.min_keep,
                min_score=args.min_score, seed=args.seed, block=args.block, nm=args.nm,
                steps=args.steps)


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
    profile = _profile(args)
    opts = mask_options(args)
    bp = opts["sparsity_bp"]
    masks = [layer_mask(layer, args.method, profile=profile, **opts)
             for layer in _layers(args).values()]
    if args.out:
        save_masks(args.out, masks)
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
    masks = {m.name: m for m in load_masks(args.masks)}
    missing = [n for n in masks if n not in model]
    if missing:
        raise ModelError(f"{args.masks}: mask for layer {missing[0]!r}, which "
                         f"{args.weights} does not have")
    out, zeroed = {}, 0
    for name, layer in model.items():
        w = layer.weights
        if name in masks:
            pruned = apply_layer_mask(w, masks[name])
            zeroed += int(np.count_nonzero(w) - np.count_nonzero(pruned))
            w = pruned
        # activations and quantization parameters travel with the pruned weights, so a
        # pruned quantized model still runs (prune8_host.qnn)
        out.update(layer_arrays(replace(layer, weights=w)))
    save_npz(args.out, out)
    if args.json:
        print(json.dumps({"layers_masked": len(masks), "weights_zeroed": zeroed,
                          "out": args.out}))
    else:
        print(f"apply: {len(masks)} of {len(model)} layer(s) masked, {zeroed} weights zeroed "
              f"-> {args.out}")
    return 0


def run_stats(args) -> int:
    masks = load_masks(args.masks)
    rows = [dict(layer=m.name, unit=m.unit, method=m.method, tie=m.tie,
                 requested_bp=m.sparsity_bp, **m.stats()) for m in masks]
    if args.json:
        print(json.dumps({"layers": rows}))
        return 0
    n, pruned = sum(r["n"] for r in rows), sum(r["pruned"] for r in rows)
    print(f"stats: {len(rows)} layer(s), {pruned} of {n} entries pruned "
          f"({_pct(pruned * 10000 // n if n else 0)}): "
          + ", ".join(f"{r['layer']} {r['pruned']}/{r['n']} {r['unit']}s" for r in rows))
    return 0
