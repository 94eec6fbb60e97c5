"""prune8 pack / unpack: store a pruned model in the smallest sparse format per layer."""

from __future__ import annotations

import json
import os
from dataclasses import replace

from prune8.packed_format import PACKED_PATH
from prune8_host.device.connect import open_board
from prune8_host.device.transfer import put_file
from prune8_host.errors import ModelError
from prune8_host.files import packed as packed_files
from prune8_host.files.model import load_model, save_model
from prune8_host.files.output import PACKED_SUFFIX, check_output, check_suffix
from prune8_host.files.records import quant_params
from prune8_host.twin.layer import Layer
from prune8_host.twin.reference import masked_model

from .options import add_board_args, add_force_arg, board_kwargs, model_masks
from .table import table


def register(sub) -> None:
    p = sub.add_parser("pack", help="apply masks and store each layer in its smallest format",
                       description="Apply MASKS to MODEL and write OUT.p8s, a packed "
                                   "model in which every layer takes the smallest of dense, "
                                   "native (mask + values), CSR, COO and block-sparse "
                                   "(docs/sparse.md). Reports bytes per layer before and "
                                   "after, and what the whole model file would take. OUT is "
                                   "prune8's own container: it runs on a board with prune8 "
                                   "(--push, then prune8 eval --packed), not by TFLM; the "
                                   "deployable .tflite is what prune8 apply writes.")
    p.add_argument("model", metavar="MODEL", help="the model to pack (.tflite or .npz)")
    p.add_argument("masks", metavar="MASKS", nargs="?",
                   help="masks file (default: pack MODEL's zeros as they are)")
    p.add_argument("-o", "--out", metavar="OUT",
                   help="packed model to write, OUT.p8s: prune8's own container, run by "
                        "prune8 on a board, not by TFLM (default: only report the sizes)")
    p.add_argument("--push", action="store_true",
                   help="also store it on the board as /prune8/packed.bin (prune8 eval "
                        "--packed runs it from there)")
    add_board_args(p)
    add_force_arg(p)
    p.add_argument("--json", action="store_true", help="print a JSON report")
    p.set_defaults(run=run_pack)

    p = sub.add_parser("unpack", help="turn a packed model back into a dense model file",
                       description="Decode a packed model (prune8 pack) into a dense .npz.")
    p.add_argument("packed", metavar="PACKED", help="a packed model from 'prune8 pack'")
    p.add_argument("-o", "--out", required=True, metavar="OUT", help="model .npz to write")
    p.set_defaults(run=run_unpack)


def run_pack(args) -> int:
    model = load_model(args.model)
    masks = {m.name: m for m in model_masks(args, model, args.masks, args.model)} \
        if args.masks else {}
    if args.out:  # a packed model runs only on prune8: never under a .tflite or .npz name
        check_suffix(args.out, PACKED_SUFFIX)
        check_output(args.out, args.model, args.masks)
    masked = masked_model(model, list(masks.values()))
    packed, rows = {}, []
    for name, layer in model.items():
        if layer.weights.ndim != 2:
            raise ModelError(f"layer {name!r} must be 2-D to pack")
        pruned = masked[name]
        p = replace(packed_files.pack_layer(pruned.weights), quant=quant_params(pruned))
        packed[name] = p
        rows.append({"layer": name, "format": p.format + (f" {p.br}x{p.bc}" if p.br else ""),
                     "nnz": p.nnz, "dense_bytes": layer.n, "packed_bytes": p.size})
    data = packed_files.packed_bytes(packed)
    total = packed_files.write_packed(args.out, packed) if args.out else len(data)
    if args.push:
        with open_board(**board_kwargs(args)) as s:
            put_file(s, PACKED_PATH, data, quiet=args.quiet)
    before = sum(r["dense_bytes"] for r in rows)
    after = sum(r["packed_bytes"] for r in rows)
    model_bytes = os.path.getsize(args.model)
    report = {"layers": rows, "dense_bytes": before, "packed_bytes": after,
              "file_bytes": total, "out": args.out, "model_file_bytes": model_bytes,
              "model_packed_bytes": model_bytes - before + after}
    if args.json:
        print(json.dumps(report))
        return 0
    print(table([("layer", "<", 12), ("format", "<", 10), ("nnz", ">", 6), ("dense", ">", 7),
                 ("packed", ">", 7)],
                [[r["layer"], r["format"], r["nnz"], r["dense_bytes"], r["packed_bytes"]]
                 for r in rows]))
    where = [args.out] if args.out else []
    where += [f"the board's {PACKED_PATH}"] if args.push else []
    print(f"weights: {before} bytes dense -> {after} packed ({after / before:.1%})"
          + (f"; {total} bytes with headers -> {' and '.join(where)}" if where else ""))
    print(f"model: {args.model} is {model_bytes} bytes; with these layers packed "
          f"{report['model_packed_bytes']} ({report['model_packed_bytes'] / model_bytes:.1%})")
    return 0


def run_unpack(args) -> int:
    check_suffix(args.out, ".npz")  # the layers as an .npz: never a .tflite again
    check_output(args.out, args.packed)
    packed = packed_files.read_packed(args.packed)
    save_model(args.out, {n: Layer(n, packed_files.decode(p)) for n, p in packed.items()})
    print(f"unpacked {len(packed)} layer(s) -> {args.out}")
    return 0
