"""prune8 calibrate / eval: int8 inference on the board, checked against the twin.

calibrate runs calibration images through the stored model on the board and keeps each
layer's gradient-proxy activations there (so `prune8 prune --method gradient` needs
none from the host); with --data it calibrates a .tflite by TFLM on the host instead
(files.calibration) and writes the statistics to a file; eval classifies the test split on the board with the stored model
and its masks. Images travel in the same frames as weights. Both compare what the board
computed with the twin (prune8_host.twin.dense) and exit 1 on any difference.
"""

from __future__ import annotations

import json

import numpy as np

from prune8.packed_format import PACKED_PATH
from prune8_host.device.connect import open_board
from prune8_host.device.transfer import pull_file
from prune8_host.device.workflow import (
    calibrate_on_board,
    check_board_model,
    evaluate_on_board,
    holds_file,
    pull,
)
from prune8_host.errors import BoardError, FileFormatError, UsageError
from prune8_host.files import calibration, tflite
from prune8_host.files.images import load_images
from prune8_host.files.model import load_model
from prune8_host.files.npzio import save_npz
from prune8_host.files.output import check_output, check_suffix
from prune8_host.files.packed import parse_packed
from prune8_host.twin import dense, tflm
from prune8_host.twin.layer import MAX_CALIB_SAMPLES
from prune8_host.twin.reference import apply_layer_mask

from .options import add_board_args, add_force_arg, board_kwargs, model_masks


def register(sub) -> None:
    p = sub.add_parser("calibrate", help="the activations the gradient proxy and Wanda "
                                         "need: on the board, or for a .tflite by TFLM",
                       description="With --images: run IMAGES through MODEL as stored on "
                                   "the board, keep each layer's activation statistic on the "
                                   "board for --method gradient, and check it against the "
                                   "twin. With --data (a .tflite, no board): run the "
                                   "calibration inputs through MODEL in TFLM's interpreter "
                                   "on the host and write, per layer, the gradient proxy's "
                                   "statistic (NAME.act) and sampled input rows for Wanda "
                                   "(NAME.calib) to -o STATS.npz, which 'prune8 mask MODEL "
                                   "--activations STATS.npz' then uses (docs/recovery.md).")
    p.add_argument("model", metavar="MODEL", help="the quantized model the board holds, or a "
                                                  ".tflite with --data")
    p.add_argument("--images", metavar="FILE",
                   help="int8 calibration images for the board: .npz with 'images' (n x "
                        "inputs), e.g. examples/digits_calib.npz in a checkout")
    p.add_argument("--data", metavar="FILE",
                   help="a .tflite on the host: int8 calibration inputs (.npz with "
                        "'images'), run through TFLM")
    p.add_argument("-o", "--out", metavar="STATS",
                   help="with --data: the statistics file to write (.npz)")
    p.add_argument("--max-rows", type=int, default=calibration.MAX_ROWS, metavar="N",
                   help=f"with --data: input rows sampled per layer for NAME.calib "
                        f"(default {calibration.MAX_ROWS})")
    add_board_args(p)
    p.add_argument("--push", action="store_true",
                   help="push MODEL first when the board holds another model (or none)")
    p.add_argument("--json", action="store_true", help="print a JSON report")
    p.set_defaults(run=run_calibrate)

    p = sub.add_parser("eval", help="accuracy of the stored model (and its masks), computed "
                                    "on the board, beside the twin's; of a .tflite, by TFLM",
                       description="Classify the test split on the board with MODEL as stored "
                                   "there and its current masks; print the board's accuracy "
                                   "and the twin's, and whether every logit agrees. A .tflite "
                                   "MODEL without --port is evaluated on the host by TFLM's "
                                   "interpreter, as it is and with --masks applied.")
    p.add_argument("model", metavar="MODEL", help="the quantized model the board holds, or a "
                                                  ".tflite")
    p.add_argument("--test", "--data", dest="test", required=True, metavar="FILE",
                   help="int8 images and labels: .npz with 'images' and 'labels', e.g. "
                        "examples/digits_test.npz in a checkout")
    p.add_argument("--masks", metavar="MASKS",
                   help="a .tflite on the host: also its accuracy with these masks applied")
    p.add_argument("--no-masks", action="store_true", help="evaluate the unpruned model")
    add_force_arg(p)
    p.add_argument("--packed", action="store_true",
                   help="run the packed model the board stores (prune8 pack --push) from "
                        "its sparse form")
    add_board_args(p)
    p.add_argument("--push", action="store_true",
                   help="push MODEL first when the board holds another model (or none); "
                        "its masks are then the board's no more")
    p.add_argument("--json", action="store_true", help="print a JSON report")
    p.set_defaults(run=run_eval)


def run_calibrate_tflite(args) -> int:
    """Calibration by TFLM on the host (files.calibration)."""
    if args.images or not args.out:
        raise UsageError("--data calibrates a .tflite on the host: give -o STATS.npz, and "
                         "not --images (the board's calibration)")
    check_suffix(args.out, ".npz")
    check_output(args.out, args.model, args.data)
    model = load_model(args.model)
    if model.kind != "tflite":
        raise UsageError(f"{args.model}: --data calibrates a .tflite through TFLM; for an "
                         f".{model.kind} model use --images with a board")
    if not 1 <= args.max_rows <= MAX_CALIB_SAMPLES:
        raise UsageError(f"--max-rows must be 1..{MAX_CALIB_SAMPLES}; got {args.max_rows}")
    images, _ = load_images(args.data, with_labels=False)
    with tflm.naming(args.model):
        got = calibration.calibrate(model.tflite_model, images, max_rows=args.max_rows)
    save_npz(args.out, calibration.stats_arrays(got))
    rows = [{"layer": n, "operator": li.op, "rows_seen": li.count, "rows_kept":
             int(li.rows.shape[0])} for n, li in got.items()]
    if args.json:
        print(json.dumps({"images": len(images), "layers": rows, "out": args.out}))
    else:
        print(f"calibrated {len(rows)} layer(s) by TFLM on {len(images)} inputs: NAME.act "
              f"for the gradient proxy, NAME.calib ({args.max_rows} rows at most) for Wanda "
              f"-> {args.out}")
    return 0


def run_calibrate(args) -> int:
    if args.data:
        return run_calibrate_tflite(args)
    if not args.images:
        raise UsageError("give --images FILE (calibrate on the board) or, for a .tflite, "
                         "--data FILE -o STATS.npz (calibrate by TFLM on the host)")
    model = load_model(args.model)
    dense.qlayers(model)  # refuses a model without int8 inference parameters
    images, _ = load_images(args.images, with_labels=False)
    with open_board(**board_kwargs(args)) as s:
        check_board_model(s, model, args.push, args.quiet)
        got = calibrate_on_board(s, images, quiet=args.quiet)
    twin_acts = dense.activation_stats(model, images)
    rows, off = [], 0
    for name, a in twin_acts.items():
        board = np.frombuffer(got[off:off + a.size], np.int8)
        off += a.size
        rows.append({"layer": name, "columns": int(a.size),
                     "equal": bool(np.array_equal(board, a))})
    ok = all(r["equal"] for r in rows)
    if args.json:
        print(json.dumps({"images": len(images), "layers": rows, "equal": ok}))
    else:
        print(f"calibrated on the board with {len(images)} images: "
              + ", ".join(f"{r['layer']} {r['columns']} activations "
                          f"{'= twin' if r['equal'] else 'DIFFER from the twin'}" for r in rows)
              + ("; prune8 prune --method gradient now uses them" if ok else ""))
    return 0 if ok else 1


def run_eval_tflite(args) -> int:
    """A .tflite evaluated by TFLM's interpreter, as it is and with --masks applied: its
    accuracy when its outputs are classes (more than one output value, integer labels),
    else the RMSE of its dequantized output against the labels; with --masks, also how
    far the pruned model's int8 outputs moved from the dense one's."""
    with tflm.naming(args.model):
        return _eval_tflite(args)


def _eval_tflite(args) -> int:
    tm = tflite.read(args.model)
    images, labels = load_images(args.test, with_labels=True)
    classes = _task(args.test, tm.data, labels)
    rows = [{"model": args.model, "masks": None, **_score(tm.data, images, labels, classes)}]
    if args.masks:
        masks = model_masks(args, tm.layers, args.masks, args.model)
        pruned = {m.name: apply_layer_mask(tm.layers[m.name].weights, m) for m in masks}
        stats = [m.stats() for m in masks]
        pruned_model = tflite.pruned_bytes(tm, pruned)
        rows.append({"model": args.model, "masks": args.masks,
                     "sparsity_bp": sum(s["pruned"] for s in stats) * 10000 //
                     sum(s["n"] for s in stats),
                     **_score(pruned_model, images, labels, classes),
                     "outputs_moved": tflm.drift(tm.data, pruned_model, images)})
    task = "classes" if classes else "regression"
    if args.json:
        print(json.dumps({"evaluated_by": "TFLM", "task": task, "images": len(labels),
                          "runs": rows}))
        return 0
    for r in rows:
        what = "as it is" if r["masks"] is None else \
            f"with {r['masks']} ({r['sparsity_bp'] / 100:.2f}% of the masked entries pruned)"
        if classes:
            print(f"accuracy by TFLM of {args.model} {what}: {r['correct']}/{r['images']} = "
                  f"{r['accuracy']:.2%}")
        else:
            print(f"RMSE by TFLM of {args.model} {what}: {r['rmse']:.4g} against "
                  f"{args.test}'s {r['images']} labels, in real units (a model with one "
                  f"output is scored by its error)")
        if r["masks"] is not None:
            print(tflm.drift_line(r["outputs_moved"], f"{args.test}'s {len(images)} images"))
    return 0


def _task(path, model: bytes, labels) -> bool:
    """Whether the model's outputs are classes: more than one output value per input, and
    integer labels naming one of them; one output is a regression, scored by RMSE."""
    values = tflm.output_values(model)
    if values == 1:
        if labels.dtype.kind not in "iuf":
            raise FileFormatError(f"{path}: 'labels' must be numbers (the expected output "
                                  f"in real units); got {labels.dtype.name}")
        return False
    if labels.dtype.kind not in "iu" or (labels.size and (int(labels.min()) < 0 or
                                                          int(labels.max()) >= values)):
        raise FileFormatError(f"{path}: 'labels' must be class indices, integers in "
                              f"0..{values - 1} (the model has {values} outputs); got "
                              f"{labels.dtype.name}"
                              + (f" {labels.min()}..{labels.max()}"
                                 if labels.dtype.kind in "iuf" and labels.size else ""))
    return True


def _score(model: bytes, images, labels, classes: bool) -> dict:
    if classes:
        correct, n = tflm.accuracy(model, images, labels)
        return {"correct": correct, "images": n, "accuracy": correct / n}
    err = tflm.real_outputs(model, images)[:, 0] - labels.astype(np.float64)
    return {"images": len(labels), "rmse": round(float(np.sqrt(np.mean(err ** 2))), 6)}


def run_eval(args) -> int:
    if tflite.is_tflite(args.model) and not args.port:
        return run_eval_tflite(args)
    if args.masks:
        raise UsageError("--masks is for a .tflite evaluated on the host; on a board, eval "
                         "uses the masks the board holds")
    model = load_model(args.model)
    last = dense.qlayers(model)[-1]
    if last.weights.shape[0] == 1:  # the board counts argmax hits: meaningless for one
        raise UsageError(f"{args.model} has one output, so its outputs are not classes and "
                         f"the board's accuracy would mean nothing: a .tflite is scored by "
                         f"its RMSE on the host (prune8 eval MODEL.tflite --data FILE, "
                         f"without --port)")
    images, labels = load_images(args.test, with_labels=True)
    with open_board(**board_kwargs(args)) as s:
        listing = check_board_model(s, model, args.push, args.quiet)
        masks, packed = [], None
        if args.packed:
            if not holds_file(listing, PACKED_PATH):
                raise BoardError("the board holds no packed model: run prune8 pack MODEL "
                                 "MASKS -o OUT --push first")
            packed = parse_packed(pull_file(s, PACKED_PATH, quiet=args.quiet))
        elif not args.no_masks and listing.get("masks") and not listing["masks"]["stale"]:
            _, masks = pull(s, args.quiet)
        report = evaluate_on_board(s, model, images, labels, masks, packed,
                                   not args.no_masks, args.quiet)
    del report["pruned_model"]
    report["masks"] = [{"layer": m.name, "method": m.method, **m.stats()} for m in masks]
    n, correct, twin_correct = report["images"], report["board_correct"], report["twin_correct"]
    same = report["logits_identical"]
    ok = same and correct == twin_correct and n == len(images)
    if args.json:
        print(json.dumps(report))
    else:
        what = ", ".join(f"{m.name} {m.method} {m.stats()['sparsity_bp'] / 100:.1f}%"
                         for m in masks) or "no masks"
        if packed:
            what = "packed: " + ", ".join(f"{n_} {p.format}" for n_, p in packed.items())
        print(f"accuracy on the board {correct}/{n} = {correct / n:.2%} ({what}); twin "
              f"{twin_correct}/{n} = {twin_correct / n:.2%}; every logit "
              + ("identical" if same else "NOT identical"))
    return 0 if ok else 1
