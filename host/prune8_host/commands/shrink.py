"""prune8 shrink: remove the neurons a row mask prunes, for a smaller dense model."""

from __future__ import annotations

import json

from prune8_host.files.model import load_model, save_model
from prune8_host.files.output import check_output, check_suffix
from prune8_host.twin.shrink import shrink

from .options import add_force_arg, model_masks


def register(sub) -> None:
    p = sub.add_parser("shrink", help="remove pruned neurons: a physically smaller model",
                       description="Remove the rows (output neurons) that MASKS prunes from "
                                   "their layers, with their biases and per-row "
                                   "quantization fields, and the matching input columns of "
                                   "the next layer. The int8 outputs of OUT equal those of "
                                   "MODEL with the pruned rows and their biases zeroed "
                                   "(docs/spec-decisions.md, 'Shrinking'). MASKS must hold "
                                   "row masks ('prune8 mask --method rows'), for any layers "
                                   "but the last.")
    p.add_argument("model", metavar="MODEL", help="the model the masks were made for (.npz)")
    p.add_argument("masks", metavar="MASKS", help="row masks (.npz from 'prune8 mask')")
    p.add_argument("-o", "--out", required=True, metavar="OUT",
                   help="smaller model to write, an .npz (a .tflite name is refused)")
    add_force_arg(p)
    p.add_argument("--json", action="store_true", help="print a JSON report")
    p.set_defaults(run=run)


def run(args) -> int:
    # a shrunk model has other shapes than its .tflite: only the .npz can hold it
    check_suffix(args.out, ".npz")
    check_output(args.out, args.model, args.masks)
    model = load_model(args.model)
    small = shrink(model, model_masks(args, model, args.masks, args.model))
    save_model(args.out, small)
    rows = [{"layer": name, "shape": list(layer.weights.shape),
             "new_shape": list(small[name].weights.shape), "weights": layer.n,
             "new_weights": small[name].n} for name, layer in model.items()]
    before = sum(r["weights"] for r in rows)
    after = sum(r["new_weights"] for r in rows)
    if args.json:
        print(json.dumps({"layers": rows, "weights": before, "new_weights": after,
                          "out": args.out}))
        return 0
    shapes = ", ".join(f"{r['layer']} {'x'.join(map(str, r['shape']))} -> "
                       f"{'x'.join(map(str, r['new_shape']))}" for r in rows)
    print(f"shrink: {shapes}; {before} -> {after} weights ({after / before:.1%}) -> {args.out}")
    return 0
