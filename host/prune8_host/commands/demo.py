"""prune8 demo: the main job end to end, on a board.

Builds and deploys the firmware, pushes the example model, prunes every layer with
every scorer on the board, pulls the masks back and verifies each against the twin,
then prints one table. Without --port, on a fresh virtual board. Exit status 0 only
if every layer verified.
"""

from __future__ import annotations

import json

import numpy as np

from prune8_host.boards import DEFAULT_BOARD, load_board
from prune8_host.device.connect import port_or_fresh_vboard
from prune8_host.device.deploy import deploy_build
from prune8_host.device.session import BoardSession
from prune8_host.device.workflow import prune, push, verify_on_board
from prune8_host.files.example_model import example_model
from prune8_host.files.model import load_model
from prune8_host.twin import scorers
from prune8_host.twin.layer import PruneOptions
from prune8_host.twin.scorers import ACTIVATIONS, BLOCK, MULTS, SUMSQ

from .options import fraction_bp
from .table import verify_table

DEMO_BLOCK = (2, 2)


def register(sub) -> None:
    p = sub.add_parser("demo", help="prune the example model on a board with every scorer, "
                                    "verified against the twin",
                       description="Deploy, push MODEL, prune every layer with every scorer "
                                   "on the board, pull the masks and verify each bit for bit "
                                   "against the twin; print one table. Without --port, on a "
                                   "fresh virtual board. Exit 1 unless every layer verified.")
    p.add_argument("model", nargs="?", metavar="MODEL",
                   help="the model to prune (.tflite or .npz; default: the built-in example "
                        "model, the same as examples/example_model.npz)")
    p.add_argument("--port", "-p", metavar="P", help="serial port of a real board")
    p.add_argument("--board", default=DEFAULT_BOARD, metavar="B",
                   help=f"board profile (default {DEFAULT_BOARD})")
    p.add_argument("--sparsity", type=float, default=0.5, metavar="S",
                   help="fraction to prune (default 0.5)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress or notes")
    p.add_argument("--json", action="store_true", help="print the table as JSON")
    p.set_defaults(run=run)


def _methods(model):
    """Every scorer that applies to every layer of the model, in the table's order."""
    layers = list(model.values())
    for scorer in scorers.TABLE:
        if ACTIVATIONS in scorer.needs and any(l.activations is None for l in layers):
            continue
        if SUMSQ in scorer.needs and any(l.calib is None for l in layers):
            continue
        if MULTS in scorer.needs and not any(np.size(l.quant.get("w_scale", 1)) > 1
                                             for l in layers):
            continue  # one scale per layer: the scale-aware score is magnitude itself
        yield scorer


def run(args) -> int:
    profile = load_board(args.board)
    model = load_model(args.model) if args.model else example_model()
    bp = fraction_bp("--sparsity", args.sparsity)
    rows = []
    note = None if args.quiet else \
        f"prune8 demo: no --port given: starting a virtual {profile.name} board"
    with port_or_fresh_vboard(args.port, profile.name, note) as port:
        deploy_build(port, profile, quiet=args.quiet)
        with BoardSession(port, baud=profile.baud) as s:
            push(s, model, quiet=args.quiet)
            for scorer in _methods(model):
                prune(s, PruneOptions(scorer.name, sparsity_bp=bp,
                                      block=DEMO_BLOCK if BLOCK in scorer.needs else None))
                checks, _ = verify_on_board(s, model, args.quiet)
                rows += [c.as_dict() for c in checks]
    ok = all(r["verified"] for r in rows)
    if args.json:
        print(json.dumps({"verified": ok, "layers": rows}))
        return 0 if ok else 1
    print(verify_table(rows, layer_width=8, pruned_width=18))
    print(f"{sum(r['verified'] for r in rows)} of {len(rows)} masks made on the board "
          f"verified bit for bit against the twin")
    return 0 if ok else 1
