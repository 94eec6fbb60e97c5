"""prune8 shrink: remove what row or channel masks prune, for a physically smaller model:
neurons of an .npz's FC chain, or the channel groups of a .tflite (a .tflite that stock
TFLM runs, measured beside the dense one)."""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np

from prune8_host.errors import UsageError
from prune8_host.files import footprint
from prune8_host.files.graph import groups_of
from prune8_host.files.images import load_images
from prune8_host.files.model import load_model, save_model
from prune8_host.files.output import check_output, check_suffix, write_output
from prune8_host.files.recover import NEEDS_DATA, RECOVERIES, default_recovery, recover
from prune8_host.files.tflite import parse
from prune8_host.files.tflite_shrink import group_keeps
from prune8_host.files.tflite_shrink import shrink as shrink_tflite
from prune8_host.twin import tflm
from prune8_host.twin.shrink import shrink

from . import drift
from .options import add_force_arg, model_masks


def register(sub) -> None:
    p = sub.add_parser("shrink", help="remove pruned neurons or channels: a physically "
                                      "smaller model",
                       description="A .tflite MODEL: remove the channel groups MASKS prunes "
                                   "('prune8 mask MODEL --structured channels') from every "
                                   "tensor that carries or reads them (weights, biases, "
                                   "per-channel scales, activation shapes), after "
                                   "--recover rewrote the layers that read them (with "
                                   "--recover none, each removed channel's constant output "
                                   "is folded into its consumers' biases, so OUT's int8 "
                                   "outputs equal those of MODEL with the masks applied, "
                                   "'prune8 apply', exactly on FULLY_CONNECTED and unpadded "
                                   "convolutions); OUT is a .tflite stock TFLM runs, and "
                                   "the command measures it beside MODEL (bytes, MACs, TFLM "
                                   "arena and invoke time, output drift, accuracy on "
                                   "--data's labels). An .npz MODEL: remove the rows (output "
                                   "neurons) that row MASKS prune ('prune8 mask --method "
                                   "rows') with their biases and per-row quantization "
                                   "fields, and the matching input columns of the next "
                                   "layer (docs/spec-decisions.md, 'Shrinking').")
    p.add_argument("model", metavar="MODEL", help="the model the masks were made for "
                                                  "(.tflite or .npz)")
    p.add_argument("masks", metavar="MASKS", help="masks .npz from 'prune8 mask' (channel "
                                                  "masks for a .tflite, row masks for an .npz)")
    p.add_argument("-o", "--out", required=True, metavar="OUT",
                   help="smaller model to write: a .tflite from a .tflite MODEL, or an .npz "
                        "of the layers (neurons of FC chains, from row masks)")
    add_force_arg(p)
    drift.add_data_arg(p)
    add_recover_args(p)
    p.add_argument("--json", action="store_true", help="print a JSON report")
    p.set_defaults(run=run)


def add_recover_args(p) -> None:
    p.add_argument("--recover", choices=RECOVERIES, default=None,
                   help="for a .tflite: how the consumers of removed channels make up for "
                        "them (docs/recovery.md): none (their constants folded into the "
                        "biases: the masked model exactly), bias (the mean output shift "
                        "on calibration inputs folded into the biases), lsq (the kept "
                        "weights refitted by least squares on calibration inputs, "
                        "requantized per channel), merge (data-free: a removed channel "
                        "close to a kept one is merged into it); default lsq with "
                        "calibration inputs, merge without")
    p.add_argument("--calib", metavar="FILE",
                   help="calibration inputs for --recover bias/lsq (.npz with 'images', "
                        "as --data; 256 are plenty; default: --data's images)")


def recovery_plan(args) -> tuple[str, np.ndarray | None]:
    """(recovery, calibration images) from --recover, --calib and --data, refused before
    any work when the recovery needs data none of them gives."""
    source = args.calib or args.data
    images = load_images(source, with_labels=False)[0] if source else None
    method = args.recover or default_recovery(images is not None)
    if method in NEEDS_DATA and images is None:
        raise UsageError(f"--recover {method} needs calibration inputs: give --calib "
                         f"CALIB.npz (or --data) with an 'images' array; without data use "
                         f"--recover merge or none")
    return method, images


def run(args) -> int:
    model = load_model(args.model)
    if model.kind == "tflite" and not str(args.out).lower().endswith(".npz"):
        return _run_tflite(args, model)
    # the neurons of an FC chain, written as an .npz of its layers
    if args.recover or args.calib:
        raise UsageError(f"{'--recover' if args.recover else '--calib'} rewrites the "
                         f"consumers of a .tflite's removed channels (-o SMALL.tflite); an "
                         f".npz of neurons is shrunk as it is")
    check_suffix(args.out, ".npz")
    check_output(args.out, args.model, args.masks)
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


def _run_tflite(args, model) -> int:
    check_suffix(args.out, ".tflite")
    check_output(args.out, args.model, args.masks)
    drift.check_data(args.data, model, args.model)
    plan = recovery_plan(args)
    masks = model_masks(args, model, args.masks, args.model)
    report, lines = shrink_channels(model, masks, args.out, args.data, args.model, plan)
    print(json.dumps(report) if args.json else "\n".join(lines))
    return 0


def shrink_channels(model, masks, out, data, model_path,
                    plan: tuple[str, np.ndarray | None] = ("none", None)
                    ) -> tuple[dict, list[str]]:
    """Remove the channel groups that row `masks` prune from the .tflite `model`, after
    the recovery `plan` (recovery_plan) rewrote their consumers, write the small model to
    `out` and measure it beside `model` (on `data`, else on drawn inputs; accuracy or
    error when `data` has labels): (the --json report, the lines printed). prune8 shrink
    and prune8 run --structured channels both end here."""
    tm = model.tflite_model
    keeps = group_keeps(tm, groups_of(tm), masks)
    method, calib = plan
    with tflm.naming(model_path):
        rec = recover(tm, keeps, method, calib)
        small = shrink_tflite(tm if method == "none" else parse(rec.data, tm.path), keeps)
        images, source = drift.inputs(data, tm.data)
        c = footprint.compare(tm.data, small.data, images, source)
        exact = tflm.drift(small.zeroed, small.data, images) if method == "none" else None
        quality = drift.quality(data, images, tm.data, small.data)
    write_output(out, small.data)
    removed = sum(int((~k).sum()) for k in keeps.values())
    report = {"groups": len(keeps), "channels_removed": removed, "out": out,
              "layers": {k: {"rows_removed": r, "cols_removed": c_}
                         for k, (r, c_) in small.removed.items()},
              "recovery": {"method": method, "layers": [asdict(f) for f in rec.layers]},
              "against_masked": exact, "inexact": small.inexact,
              "quality": quality[0] if quality else None, **c}
    lines = [f"shrink: {removed} channels of {len(keeps)} group(s) removed -> {out}",
             rec.summary(), *footprint.compare_lines(c)]
    if exact is not None:
        same = "the same" if exact["max_int8"] == 0 else \
            f"up to {exact['max_int8']} int8 steps from those"
        lines.append(f"against MODEL with the masks applied ('prune8 apply'): outputs {same} "
                     f"on {source}" + (f"; approximate folds: {'; '.join(small.inexact)}"
                                       if small.inexact else ""))
    if quality:
        lines.append(quality[1])
    return report, lines
