"""prune8 model info / import: what a model file holds, whether each layer fits a board,
and a .tflite model in the project's own .npz format."""

from __future__ import annotations

import json

import numpy as np

from prune8 import errors
from prune8_host.boards import DEFAULT_BOARD, load_board
from prune8_host.errors import FileFormatError
from prune8_host.files import packed as packed_files
from prune8_host.files import tflite
from prune8_host.files.graph import groups_of
from prune8_host.files.identify import DATA, MASKS, PACKED, identify, store_description
from prune8_host.files.images import load_images
from prune8_host.files.masks import read_masks
from prune8_host.files.model import load_model, save_model
from prune8_host.files.npzio import load_arrays
from prune8_host.files.records import check_fits, in_ram, quant_params, stored_size
from prune8_host.heap_law import figures, group_shapes
from prune8_host.twin.layer import PruneOptions

from . import channels
from .options import add_method_args, add_pattern_args
from .table import table

MODEL_HELP = "a model: .tflite, or .npz of int8 layers (or one .npy)"


def register(sub) -> None:
    p = sub.add_parser("model", help="inspect model files (prune8 model info FILE), or "
                                     "convert a .tflite (prune8 model import)",
                       description="Inspect a model file (a .tflite, or an .npz of named 2-D "
                                   "int8 layers with optional NAME.act activations), or "
                                   "convert a .tflite model to the .npz format.")
    msub = p.add_subparsers(dest="model_command", metavar="SUBCOMMAND", required=True)
    q = msub.add_parser("info", help="layers, shapes, quantization, and whether each fits "
                                     "the board",
                        description="List the layers of FILE (for a .tflite: its prunable "
                                    "FULLY_CONNECTED, CONV_2D and DEPTHWISE_CONV_2D weights) "
                                    "with their operator, 2-D shape, size, quantization, "
                                    "activations, whether each fits the board profile, and "
                                    "the heap a prune of it on the board needs, counted "
                                    "from boot (measured: docs/heap.md), against the "
                                    "profile's budget.")
    q.add_argument("file", metavar="FILE", help=MODEL_HELP)
    q.add_argument("--board", default=DEFAULT_BOARD, metavar="B",
                   help=f"board profile whose capacity and heap to check (default "
                        f"{DEFAULT_BOARD})")
    add_method_args(q)  # the prune whose heap need to show: the scorer ...
    add_pattern_args(q)  # ... and how the mask is made
    q.add_argument("--json", action="store_true", help="print JSON")
    q.set_defaults(run=run_info)

    q = msub.add_parser("import", help="write a .tflite model's layers as a prune8 .npz",
                        description="Write the prunable layers of MODEL.tflite to an .npz "
                                    "model file: the int8 weights as 2-D layers, their "
                                    "scales, and, for chains of FULLY_CONNECTED layers, the "
                                    "int8 inference parameters TFLM computes (so prune8 eval, "
                                    "shrink and the board's kernel run them).")
    q.add_argument("model", metavar="MODEL", help="a .tflite file")
    q.add_argument("-o", "--out", required=True, metavar="OUT", help="model .npz to write")
    q.add_argument("--json", action="store_true", help="print a JSON report")
    q.set_defaults(run=run_import)


def _quantization(layer) -> str:
    scales = np.size(layer.quant.get("w_scale", 1)) if "w_scale" in layer.quant else 0
    kind = "per channel" if scales > 1 else "per tensor" if scales else "-"
    return kind + (", int8 inference" if quant_params(layer) else "")


def _heap(fig, layer, options, budget: int, model) -> dict:
    """The heap a prune of the layer needs on the board, in the model it is stored with
    (None when its capacity was never measured, or the layer is not one the board
    takes)."""
    if fig is None or layer.weights.ndim != 2:
        return {"heap_need": None, "heap_fits": None}
    stored = [n for n, l in model.items() if l.weights.ndim == 2]
    need = fig.need_in_model(layer.name, *layer.weights.shape, options, stored).bytes
    return {"heap_need": need, "heap_fits": need <= budget}


def run_info(args) -> int:
    profile = load_board(args.board)
    kind = identify(args.file)
    if kind in (PACKED, MASKS, DATA):
        return _not_a_model(args, kind)
    if kind is not None:
        # a board's store file, known by its first four bytes alone: nothing here reads
        # the rest, so the line says what it starts as, not what it is
        raise FileFormatError(f"{args.file}: not a model file: it starts as "
                              f"{store_description(kind)} does; prune8 model info reads "
                              f".tflite, .npz and .npy models and prune8's packed, masks "
                              f"and data files")
    model = load_model(args.file)
    fig = figures(profile)
    options = PruneOptions(args.method, block=args.block, nm=args.nm, steps=args.steps,
                           scope=args.scope)
    placements = model.tflite_model.placements if model.tflite_model else {}
    rows = []
    board_layers = []
    for layer in model.values():
        if layer.activations is None:
            act = "none"
        else:
            act = "per weight" if layer.activations.size == layer.n else "per column"
        try:
            if layer.weights.ndim != 2:
                raise errors.LengthMismatchError("not 2-D: rows and cols unknown")
            check_fits(layer)
            fits = "in RAM" if in_ram(layer, profile.max_weights, profile.max_units) \
                else "from flash"
            board_layers.append(layer)
            heap = _heap(fig, layer, options, profile.heap_bytes, model)
        except errors.Prune8Error as e:
            fits = f"no: {e}"
            heap = _heap(None, layer, options, profile.heap_bytes, model)
        p = placements.get(layer.name)
        rows.append({"layer": layer.name, "operator": p.op if p else None,
                     "shape": list(layer.weights.shape), "weights": layer.n,
                     "bytes": len(model.record(layer.name).data),
                     "quantization": _quantization(layer),
                     "activations": act, "fits": fits, **heap})
    size = stored_size(model.record(layer.name) for layer in board_layers)
    groups = channels.group_rows(model) if model.kind == "tflite" else None
    prunable = [g for g in groups_of(model.tflite_model) if g.prunable] \
        if groups is not None else []
    group_need = fig.group_need(*group_shapes(model, prunable), args.method) \
        if fig is not None and prunable else None
    if args.json:
        print(json.dumps({"board": profile.name, "layers": rows, "stored_bytes": size,
                          "fs_bytes": profile.fs_bytes, "method": args.method,
                          "heap_at_rest": fig.at_rest if fig else None,
                          "heap_budget": profile.heap_bytes}
                         | ({"channel_groups": groups, "channel_groups_heap_need": group_need}
                            if groups is not None else {})))
        return 0
    fits = f"on {profile.name} ({profile.max_weights} weights, {profile.max_units} units in RAM)"
    op = [("operator", "<", 8)] if placements else []
    print(table([("layer", "<", 12)] + op + [
        ("shape", "<", 10), ("weights", ">", 7), ("bytes", ">", 6), (" quantization", "<", 12),
        ("activations", "<", 11), (fits, "<", 0), (f"prune heap ({args.method})", ">", 0)],
        [[r["layer"]] + ([r["operator"]] if placements else []) + [
            "x".join(map(str, r["shape"])), r["weights"], r["bytes"], " " + r["quantization"],
            r["activations"], r["fits"], _heap_cell(r)] for r in rows]))
    print(f"model: {size:,} bytes on the board, of its {profile.fs_bytes:,}-byte filesystem"
          + ("" if size <= profile.fs_bytes else " (too big: push fewer layers)")
          + "; layers from flash are pruned and run tile by tile")
    print(_heap_line(profile, fig, rows))
    if groups is not None:
        print("channel groups (the channels that go together: prune8 mask --structured "
              "channels, prune8 shrink):")
        channels.print_groups(groups)
        print(_group_heap_line(profile, args.method, group_need, bool(prunable)))
    return 0


def _group_heap_line(profile, method: str, need: int | None, prunable: bool) -> str:
    if not prunable:
        return "heap of a channel-group prune: none to prune (no group above can be removed)"
    if need is None:
        return (f"heap of a channel-group prune with {method}: not measured for "
                f"{profile.name} (docs/heap.md)")
    over = need > profile.heap_bytes
    return (f"heap of a channel-group prune with {method} (prune8 run --structured "
            f"channels) on {profile.name}: {need:,} bytes from boot, of a "
            f"{profile.heap_bytes:,}-byte budget"
            + (": over it, prune8 run refuses it (--ignore-heap to try anyway)" if over
               else ""))


def _heap_cell(row: dict) -> str:
    if row["heap_need"] is None:
        return "-"
    return f"{row['heap_need']:,}" + ("" if row["heap_fits"] else " (over)")


def _heap_line(profile, fig, rows) -> str:
    """The heap summary under model info's table."""
    if fig is None:
        return (f"heap: not measured for {profile.name}'s capacity ({profile.max_weights} "
                f"weights, {profile.max_units} units): docs/heap.md")
    over = [r["layer"] for r in rows if r["heap_fits"] is False]
    line = (f"heap on {profile.name}, bytes from boot: the firmware takes {fig.at_rest:,} "
            f"at rest, a prune of each layer the last column, of a {profile.heap_bytes:,}-"
            f"byte budget (measured on the 32-bit VM, an upper bound: docs/heap.md)")
    if over:
        line += (f"\nover the budget: {', '.join(over)}: prune8 run and prune refuse "
                 f"them (--ignore-heap to try anyway)")
    return line


def _not_a_model(args, kind: str) -> int:
    """model info on one of prune8's own files that is not a model: what it is, what made
    it, where it runs, and what reads it."""
    path = args.file
    report: dict = {"file": path, "kind": kind}
    if kind == PACKED:
        layers = packed_files.read_packed(path)
        report["layers"] = [{"layer": n, "format": p.format, "shape": [p.rows, p.cols],
                             "nnz": p.nnz, "bytes": p.size} for n, p in layers.items()]
        what = (f"{path}: a prune8 packed model (prune8 pack; docs/sparse.md), "
                f"{len(layers)} layer(s) in sparse formats. It runs only on prune8's board "
                f"kernels (prune8 pack --push, prune8 eval --packed), not in TFLM; "
                f"prune8 unpack {path} -o OUT.npz gives its layers back")
        rows = [[r["layer"], r["format"], "x".join(map(str, r["shape"])), r["nnz"],
                 r["bytes"]] for r in report["layers"]]
        cols = [("layer", "<", 12), ("format", "<", 7), ("shape", "<", 8), ("nnz", ">", 6),
                ("bytes", ">", 6)]
    elif kind == MASKS:
        masks, prints = read_masks(path)
        report["layers"] = [{"layer": m.name, "method": m.method, "unit": m.unit,
                             **m.stats()} for m in masks]
        report["fingerprints"] = prints is not None
        what = (f"{path}: a prune8 masks file (prune8 mask, run or pull), "
                f"{len(masks)} layer(s), "
                + ("with the fingerprint of the model they were made for" if prints
                   else "without a fingerprint of its model")
                + f": not a model. prune8 apply MODEL {path} -o OUT prunes a model with "
                f"them; prune8 stats {path} counts them")
        rows = [[r["layer"], r["method"], f"{r['pruned']}/{r['n']} {r['unit']}s"]
                for r in report["layers"]]
        cols = [("layer", "<", 12), ("method", "<", 9), ("pruned", ">", 0)]
    else:  # DATA
        labelled = "labels" in load_arrays(path)
        images, _ = load_images(path, with_labels=labelled)
        report["images"], report["labels"] = list(images.shape), labelled
        what = (f"{path}: int8 inputs for inference, not a model: 'images' {images.shape[0]} "
                f"x {images.shape[1]}" + (", with 'labels'" if labelled else "")
                + " (prune8 eval --data, prune8 calibrate --images, run/apply --data)")
        rows, cols = [], []
    if args.json:
        print(json.dumps(report))
        return 0
    if rows:
        print(table(cols, rows))
    print(what)
    return 0


def run_import(args) -> int:
    if not tflite.is_tflite(args.model):
        raise FileFormatError(f"{args.model}: not a .tflite file (a TFLite flatbuffer)")
    model = load_model(args.model)
    save_model(args.out, model)
    inference = [n for n, layer in model.items() if quant_params(layer)]
    if args.json:
        print(json.dumps({"layers": list(model), "inference": inference, "out": args.out}))
    else:
        print(f"imported {len(model)} layer(s) from {args.model}"
              + (f", {len(inference)} with int8 inference parameters" if inference else "")
              + f" -> {args.out}")
    return 0
