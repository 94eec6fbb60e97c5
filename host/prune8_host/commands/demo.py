"""prune8 demo: the main job end to end on the example model.

Scores every layer with every scorer, masks it at the given sparsity with the twin
(the host reference) and prints one table.
"""

from __future__ import annotations

import json

from prune8_host import twin
from prune8_host.boards import DEFAULT_BOARD, load_board
from prune8_host.model import load_model
from prune8_host.reference import METHODS, layer_mask

EXAMPLE = "examples/example_model.npz"
DEMO_BLOCK = (2, 2)


def register(sub) -> None:
    p = sub.add_parser("demo", help="prune the example model with every scorer and print a table",
                       description="Prune every layer of MODEL with every scorer at the given "
                                   "sparsity using the host reference, and print the result.")
    p.add_argument("model", nargs="?", default=EXAMPLE, metavar="MODEL",
                   help=f"model .npz (default {EXAMPLE})")
    p.add_argument("--sparsity", type=float, default=0.5, metavar="S",
                   help="fraction to prune (default 0.5)")
    p.add_argument("--board", default=DEFAULT_BOARD, metavar="B",
                   help=f"board profile whose capacity applies (default {DEFAULT_BOARD})")
    p.add_argument("--json", action="store_true", help="print the table as JSON")
    p.set_defaults(run=run)


def run(args) -> int:
    profile = load_board(args.board)
    bp = twin.to_bp(args.sparsity)
    rows = []
    for layer in load_model(args.model).values():
        for method in METHODS:
            if (method == "gradient" and layer.activations is None) or \
                    (method == "wanda" and layer.calib is None):
                continue
            m = layer_mask(layer, method, sparsity_bp=bp, profile=profile,
                           block=DEMO_BLOCK if method == "blocks" else None)
            rows.append(dict(layer=layer.name, shape=f"{m.rows}x{m.cols}", method=method,
                             **m.stats(), unit=m.unit))
    if args.json:
        print(json.dumps(rows))
        return 0
    print(f"{'layer':<8} {'shape':<7} {'method':<10} {'pruned':>16} {'sparsity':>9}")
    for r in rows:
        pruned = f"{r['pruned']}/{r['n']} {r['unit']}s"
        print(f"{r['layer']:<8} {r['shape']:<7} {r['method']:<10} {pruned:>16} "
              f"{r['sparsity_bp'] / 100:>8.2f}%")
    return 0
