"""prune8 model info: what a model file holds and whether each layer fits a board."""

from __future__ import annotations

import json

from prune8 import errors
from prune8_host.boards import DEFAULT_BOARD, load_board
from prune8_host.files.model import load_model
from prune8_host.files.records import check_fits, layer_bytes

from .table import table


def register(sub) -> None:
    p = sub.add_parser("model", help="inspect model files (prune8 model info FILE)",
                       description="Inspect a model file: an .npz of named 2-D int8 layers "
                                   "with optional NAME.act activations.")
    msub = p.add_subparsers(dest="model_command", metavar="SUBCOMMAND", required=True)
    q = msub.add_parser("info", help="layers, shapes, sizes and whether each fits the board",
                        description="List the layers of FILE with their shapes, sizes, "
                                    "activations, and whether each fits the board profile.")
    q.add_argument("file", metavar="FILE", help="a model file (.npz of int8 layers, or one .npy)")
    q.add_argument("--board", default=DEFAULT_BOARD, metavar="B",
                   help=f"board profile whose capacity to check (default {DEFAULT_BOARD})")
    q.add_argument("--json", action="store_true", help="print JSON")
    q.set_defaults(run=run_info)


def run_info(args) -> int:
    profile = load_board(args.board)
    rows = []
    for layer in load_model(args.file).values():
        if layer.activations is None:
            act = "none"
        else:
            act = "per weight" if layer.activations.size == layer.n else "per column"
        try:
            if layer.weights.ndim != 2:
                raise errors.LengthMismatchError("not 2-D: rows and cols unknown")
            check_fits(layer, profile.max_weights, profile.max_units)
            fits = "yes"
        except errors.Prune8Error as e:
            fits = f"no: {e}"
        rows.append({"layer": layer.name, "shape": list(layer.weights.shape), "weights": layer.n,
                     "bytes": len(layer_bytes(layer)), "activations": act, "fits": fits})
    if args.json:
        print(json.dumps({"board": profile.name, "layers": rows}))
        return 0
    fits = f"fits {profile.name} ({profile.max_weights} weights, {profile.max_units} units)"
    print(table([("layer", "<", 12), ("shape", "<", 10), ("weights", ">", 7),
                 ("bytes", ">", 6), (" activations", "<", 12), (fits, "<", 0)],
                [[r["layer"], "x".join(map(str, r["shape"])), r["weights"], r["bytes"],
                  " " + r["activations"], r["fits"]] for r in rows]))
    return 0
