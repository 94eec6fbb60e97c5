"""prune8 deploy / push / prune / pull / verify / run / ls: pruning on the board.

Every command takes --port (default: a virtual board started for it), --board,
--baud, --quiet; those with results take --json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from prune8_host import heap_law
from prune8_host.boards import load_board
from prune8_host.device.build import build_firmware
from prune8_host.device.connect import open_board
from prune8_host.device.deploy import deploy
from prune8_host.device.workflow import (
    board_listing,
    calibrated,
    deploy_if_needed,
    holds_model,
    prune,
    prune_groups,
    pull,
    push,
    push_unless_held,
    verify_on_board,
)
from prune8_host.errors import UsageError
from prune8_host.files.masks import save_masks
from prune8_host.files.model import load_model, with_inputs
from prune8_host.files.output import check_output, check_suffix
from prune8_host.twin.channels import group_options
from prune8_host.twin.reference import apply_layer_mask, pruned_counts, pruned_line

from . import channels, drift
from .options import (
    add_activations_arg,
    add_board_args,
    add_mask_args,
    add_method_args,
    add_switch_arg,
    board_kwargs,
    prune_options,
    refuse_lacking_inputs,
)
from .shrink import add_recover_args, recovery_plan, shrink_channels
from .table import verify_table


def register(sub) -> None:
    p = sub.add_parser("deploy", help="copy the built firmware (.mpy) to the board",
                       description="Build the firmware for the board profile and copy it to "
                                   "/prune8/ on the board.")
    add_board_args(p)
    p.add_argument("--native", action="store_true",
                   help="native code for the board's arch (real boards, MicroPython >= 1.23)")
    p.add_argument("--json", action="store_true", help="print the board's info as JSON")
    p.set_defaults(run=run_deploy)

    p = sub.add_parser("push", help="send a model's int8 layers to the board's flash",
                       description="Send MODEL (.tflite, or .npz of int8 layers) to /prune8/model.bin on "
                                   "the board. Nothing is committed unless every layer arrives.")
    p.add_argument("model", metavar="MODEL", help="the model to send (.tflite, or .npz of int8 layers)")
    add_board_args(p)
    add_switch_arg(p)
    p.add_argument("--layer", action="append", metavar="NAME",
                   help="send only this layer (repeatable); the board keeps its others")
    p.add_argument("--json", action="store_true", help="print a JSON report")
    p.set_defaults(run=run_push)

    p = sub.add_parser("prune", help="score and mask the stored model on the board",
                       description="Score every stored layer on the board and save its masks "
                                   "in /prune8/masks.bin.")
    add_board_args(p)
    add_prune_args(p)
    p.add_argument("--layer", action="append", metavar="NAME",
                   help="prune only this layer (repeatable); other masks are kept")
    p.add_argument("--json", action="store_true", help="print a JSON report")
    p.set_defaults(run=run_prune)

    p = sub.add_parser("pull", help="read the board's masks back into a masks file",
                       description="Read /prune8/masks.bin from the board and write MASKS.npz "
                                   "(uint32 words per layer, with method, tie and sparsity).")
    add_board_args(p)
    p.add_argument("-o", "--out", required=True, metavar="MASKS", help="masks file to write")
    p.add_argument("--model", metavar="MODEL",
                   help="the model the board holds (as pushed): the masks file then records "
                        "its fingerprint, which apply, shrink, pack and eval check")
    p.add_argument("--json", action="store_true", help="print a JSON report")
    p.set_defaults(run=run_pull)

    p = sub.add_parser("verify", help="recompute the board's masks with the twin and compare",
                       description="Recompute every mask stored on the board with the twin from "
                                   "MODEL and compare bit for bit. Exit status 1 on any mismatch.")
    p.add_argument("model", metavar="MODEL",
                   help="the model the board's masks were made for (as pushed)")
    add_board_args(p)
    p.add_argument("--json", action="store_true", help="print a JSON report")
    p.set_defaults(run=run_verify)

    p = sub.add_parser("run", help="deploy if needed, push, prune, pull and verify in one go",
                       description="Push MODEL, prune it on the board, pull the masks and "
                                   "verify them against the twin (deploying the firmware "
                                   "first when the board lacks it); then write the masks "
                                   "(-o MASKS.npz) or, for a .tflite MODEL, the pruned model "
                                   "(-o OUT.tflite: MODEL as it was but for the pruned "
                                   "weights, as prune8 apply writes it with these masks). With "
                                   "--structured channels the board masks a .tflite's "
                                   "channel groups and -o SMALL.tflite is the model with "
                                   "them removed, as prune8 shrink writes it, measured "
                                   "beside MODEL.")
    p.add_argument("model", metavar="MODEL", help="the model to prune (.tflite, or .npz of int8 layers)")
    add_board_args(p)
    add_switch_arg(p)
    add_prune_args(p)
    add_activations_arg(p)
    channels.add_structured_arg(p)
    add_recover_args(p)
    p.add_argument("-o", "--out", required=True, metavar="OUT",
                   help="OUT.tflite: the pruned model (for a .tflite MODEL; written only when "
                        "every mask verifies); any other name (MASKS.npz): the board's masks "
                        "file, as prune8 pull writes it")
    p.add_argument("--masks", dest="masks_out", metavar="MASKS",
                   help="also write the board's masks file (with -o OUT.tflite)")
    drift.add_data_arg(p)
    p.add_argument("--json", action="store_true", help="print a JSON report")
    p.set_defaults(run=run_run)

    p = sub.add_parser("ls", help="list the model and masks stored on the board",
                       description="List /prune8/ on the board: files, model layers, masks.")
    add_board_args(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=run_ls)


def add_prune_args(p) -> None:
    """The same method and mask options as `prune8 mask` (host reference), and the
    override of the heap check."""
    add_method_args(p)
    add_mask_args(p)
    p.add_argument("--ignore-heap", action="store_true",
                   help="prune even a layer (or, with --structured channels, the "
                        "channel groups) whose measured heap need is over the board "
                        "profile's budget (docs/heap.md): the board will likely raise "
                        "MemoryError")


def refuse_over_budget(args, profile, layers, opts, stored=None) -> None:
    """Refuse, before anything is sent, a prune of a layer ((name, rows, cols) each)
    that needs more heap than the profile's budget in a model storing `stored` (names;
    default: the layers'), unless --ignore-heap."""
    if not args.ignore_heap:
        heap_law.refuse_over_budget(profile, layers, opts, stored)


def _note(args, text: str) -> None:
    if not args.quiet:
        print(text, file=sys.stderr)


def _emit(args, report: dict, line: str) -> None:
    print(json.dumps(report) if args.json else line)


# -- commands ---------------------------------------------------------------------------

def run_deploy(args) -> int:
    profile = load_board(args.board)
    if args.native and not args.port:
        raise UsageError("the virtual board runs bytecode only: --native is for a real "
                         "board on --port")
    build = build_firmware(profile, native=args.native)
    with open_board(**board_kwargs(args), check_firmware=False) as s:
        info = deploy(s, build, quiet=args.quiet)
    kind = f"native {profile.mpy_arch}" if args.native else "bytecode"
    _emit(args, info, f"deployed prune8 {info['prune8']} ({kind}, {len(build.files)} modules) "
                      f"for {profile.name}: capacity {info['max_weights']} weights, "
                      f"{info['max_units']} units; {info['mem_free']} bytes of heap free; "
                      f"{info.get('kernels', 'python')} kernels")
    return 0


def run_push(args) -> int:
    model = load_model(args.model, layers=args.layer)
    with open_board(**board_kwargs(args)) as s:
        r = push(s, model, only=args.layer, quiet=args.quiet)
    ratio = r["wire_bytes"] / r["payload_bytes"]
    _emit(args, r, f"pushed {len(r['layers'])} layer(s) ({r['payload_bytes']} bytes, "
                   f"{r['wire_bytes']} on the wire: {ratio:.3f}x) model id {r['model_id']:#010x}")
    return 0


def run_prune(args) -> int:
    opts = prune_options(args)
    profile = load_board(args.board)
    with open_board(**board_kwargs(args)) as s:
        stored = (board_listing(s)["model"] or {}).get("layers", [])
        refuse_over_budget(args, profile, [(e["name"], e["rows"], e["cols"]) for e in stored
                                           if not args.layer or e["name"] in args.layer], opts,
                           [e["name"] for e in stored])
        r = prune(s, opts, args.layer)
    n, pruned = sum(l["n"] for l in r["layers"]), sum(l["pruned"] for l in r["layers"])
    _emit(args, r, f"pruned {len(r['layers'])} layer(s) on the board with {args.method} at "
                   f"{r['sparsity_bp'] / 100:.2f}% ({args.tie}): {pruned} of {n} entries\n"
                   + heap_line(r, profile))
    return 0


def heap_line(result: dict, profile) -> str:
    """What the board's prune used: its peak heap, and which layers came from flash."""
    streamed = [l["layer"] for l in result["layers"] if l.get("streamed")]
    where = ("streamed from flash: " + ", ".join(streamed)) if streamed else "all in RAM"
    peak = result.get("heap_peak")
    if peak is None:  # firmware older than the streaming prune
        return where
    line = (f"board heap while pruning: peak {peak:,} bytes from boot (the {profile.name} "
            f"budget is {profile.heap_bytes:,}); {where}")
    if peak > profile.heap_bytes:
        line += (f"\nwarning: the prune took {peak - profile.heap_bytes:,} bytes more than "
                 f"the {profile.name} budget, counted from boot: a board with that heap may "
                 f"raise MemoryError (a virtual board's figure is an upper bound: "
                 f"docs/heap.md)")
    return line


def run_pull(args) -> int:
    model = load_model(args.model) if args.model else None
    with open_board(**board_kwargs(args)) as s:
        listing, masks = pull(s, args.quiet)
    if model is not None and not holds_model(listing, model):
        raise UsageError(f"{args.model}: the board holds another model than this one, and "
                         f"its masks were made for that: give the model you pushed")
    save_masks(args.out, masks, model=model)
    rows = [dict(layer=m.name, method=m.method, **m.stats()) for m in masks]
    _emit(args, {"out": args.out, "layers": rows},
          f"pulled {len(masks)} mask(s) -> {args.out}")
    return 0


def run_verify(args) -> int:
    model = load_model(args.model)
    with open_board(**board_kwargs(args)) as s:
        checks, _ = verify_on_board(s, model, args.quiet)
    ok = all(c.verified for c in checks)
    _emit(args, {"verified": ok, "layers": [c.as_dict() for c in checks]},
          verify_table([c.as_dict() for c in checks]))
    return 0 if ok else 1


def run_run(args) -> int:
    if args.structured:
        return run_channels(args)
    if args.recover or args.calib:
        raise UsageError(f"{'--recover' if args.recover else '--calib'} goes with "
                         f"--structured channels and -o SMALL.tflite (the consumers of "
                         f"removed channels are what it rewrites)")
    model = load_model(args.model)
    if args.activations:
        model = with_inputs(model, args.activations)
    opts = prune_options(args)  # refuses a bad sparsity before any I/O
    model_out, masks_out = run_outputs(args, model)
    drift.check_data(args.data, model, args.model)
    # what the scorer needs and the model lacks is refused before any board starts; only
    # activations the board calibrates itself are looked for there
    from_board = refuse_lacking_inputs(args.model, model, opts.method,
                                       model.kind == "tflite", board_calibrates=True)
    profile = load_board(args.board)
    refuse_over_budget(args, profile, [(n, *layer.weights.shape) for n, layer in model.items()
                                       if layer.weights.ndim == 2], opts)
    if args.port:
        deploy_if_needed(args.port, profile, args.baud, args.quiet,
                         note=lambda text: _note(args, text))
    with open_board(**board_kwargs(args)) as s:
        if from_board:
            listing = board_listing(s)
            acts = calibrated(s, listing) if holds_model(listing, model) else {}
            if any(name not in acts for name in from_board):
                raise UsageError(f"{args.model}: --method gradient needs activations for "
                                 f"layer {from_board[0]!r}, and the board holds none for "
                                 f"this model: run prune8 calibrate {args.model} --images "
                                 f"IMAGES.npz --push first (or give NAME.act in an .npz "
                                 f"model)")
        pushed = push_unless_held(s, model, quiet=args.quiet)
        pruned = prune(s, opts)
        checks, masks = verify_on_board(s, model, args.quiet)
    ok = all(c.verified for c in checks)
    lines = [verify_table([c.as_dict() for c in checks])]
    # the masks that fit the model (an unverified one may not: its check says why)
    fit = [m for m in masks if m.name in model and m.rows * m.cols == model[m.name].n]
    weights = {m.name: apply_layer_mask(model[m.name].weights, m) for m in fit}
    counts = [pruned_counts(model[m.name].weights, m) for m in fit]
    total = sum(model[m.name].n for m in fit)
    lines.append("weights: " + pruned_line(counts, total))
    moved = drift.measure(args.data, model, weights) if ok else None
    if moved:
        lines.append(moved[1])
    if masks_out:
        save_masks(masks_out, masks, model=model)
        lines.append(f"masks -> {masks_out}")
    if model_out and ok:
        model.write(model_out, weights=weights)
        lines.append(f"pruned model -> {model_out}")
    elif model_out:
        lines.append("pruned model not written: the board's masks do not verify")
    _emit(args, {"push": pushed, "prune": pruned, "verified": ok, "out": args.out,
                 "masks": masks_out, "pruned_model": model_out if ok else None,
                 "layers": [c.as_dict() for c in checks],
                 "weights": total, "weights_pruned": sum(c[0] for c in counts),
                 "already_zero": sum(c[1] for c in counts),
                 "outputs_moved": moved[0] if moved else None},
          "\n".join(lines + [heap_line(pruned, profile)]))
    return 0 if ok else 1


def run_channels(args) -> int:
    """prune8 run MODEL.tflite --structured channels: push, send the groups, mask them on
    the board, pull and verify the masks against the twin bit for bit; then -o
    SMALL.tflite is MODEL without the pruned channels (written only when every mask
    verifies), or -o MASKS.npz the masks."""
    channels.refuse_options(args)
    opts = group_options(prune_options(args))  # refused as the board would, before any I/O
    model = load_model(args.model)
    if args.activations:
        model = with_inputs(model, args.activations)
    groups = channels.prunable_groups(model)
    model_out, masks_out = run_outputs(args, model)
    check_output(args.out, args.model)
    drift.check_data(args.data, model, args.model)
    channels.group_layers(model, groups, opts.method)  # the inputs its scorer needs
    plan = recovery_plan(args) if model_out else None
    profile = load_board(args.board)
    if not args.ignore_heap:  # before any board is touched, as a layer prune's check
        heap_law.refuse_groups_over_budget(profile, *heap_law.group_shapes(model, groups),
                                           opts.method)
    if args.port:
        deploy_if_needed(args.port, profile, args.baud, args.quiet,
                         note=lambda text: _note(args, text))
    with open_board(**board_kwargs(args)) as s:
        pushed = push_unless_held(s, model, quiet=args.quiet)
        pruned = prune_groups(s, model, [(g.channels, g.members) for g in groups], opts,
                              quiet=args.quiet)
        checks, masks = verify_on_board(s, model, args.quiet)
    ok = all(c.verified for c in checks)
    lines = [verify_table([c.as_dict() for c in checks])]
    removed = sum(g.channels for g in groups) - sum(pruned["groups"])
    lines.append(f"the board pruned {removed} of {sum(g.channels for g in groups)} channels "
                 f"in {len(groups)} group(s) ({opts.method} at {opts.sparsity_bp / 100:.2f}%)")
    if masks_out:
        save_masks(masks_out, masks, model=model)
        lines.append(f"masks -> {masks_out}")
    small = None
    if model_out and ok:
        small, shrunk = shrink_channels(model, masks, model_out, args.data, args.model, plan)
        lines += shrunk
    elif model_out:
        lines.append("small model not written: the board's masks do not verify")
    _emit(args, {"push": pushed, "prune": pruned, "verified": ok, "out": args.out,
                 "masks": masks_out, "small_model": small,
                 "layers": [c.as_dict() for c in checks]},
          "\n".join(lines + [group_heap_line(pruned, profile)]))
    return 0 if ok else 1


def group_heap_line(result: dict, profile) -> str:
    """What the board's group prune used: its peak heap, from boot."""
    peak = result["heap_peak"]
    line = (f"board heap while pruning: peak {peak:,} bytes from boot (the {profile.name} "
            f"budget is {profile.heap_bytes:,}); every layer read a tile at a time")
    if peak > profile.heap_bytes:
        line += (f"\nwarning: the prune took {peak - profile.heap_bytes:,} bytes more than "
                 f"the {profile.name} budget (docs/heap.md)")
    return line


def run_outputs(args, model) -> tuple[str | None, str | None]:
    """(pruned model, masks file) that `prune8 run` writes: -o OUT.tflite is the pruned
    model, any other -o the masks, --masks the masks too. Refused before any board is
    touched when one cannot be written as its name says."""
    model_out = args.out if Path(args.out).suffix.lower() == ".tflite" else None
    if model_out:
        model.output_format(model_out)  # only a .tflite model is written as a .tflite
    masks_out = args.masks_out or (None if model_out else args.out)
    if masks_out:
        check_suffix(masks_out, ".npz")
    if args.masks_out:
        check_output(args.masks_out, args.model)
    return model_out, masks_out


def run_ls(args) -> int:
    with open_board(**board_kwargs(args)) as s:
        listing = board_listing(s)
    if args.json:
        print(json.dumps(listing))
        return 0
    model, masks = listing["model"], listing["masks"]
    if not model:
        print("no model on the board (prune8 push MODEL)")
    else:
        print(f"model {model['id']:#010x}: " + ", ".join(
            f"{l['name']} {l['rows']}x{l['cols']}" + (" +act" if l["act"] else "")
            for l in model["layers"]))
    if masks:
        state = "STALE (made for another model)" if masks["stale"] else "current"
        print(f"masks ({state}): " + ", ".join(
            f"{m['name']} {m['method']} {m['pruned']}/{m['n']}" for m in masks["layers"]))
    else:
        print("no masks on the board (prune8 prune --method M --sparsity S)")
    data = [f for f in listing["files"] if f[0].endswith((".bin", ".tmp"))]
    if data:
        print("files: " + ", ".join(f"{name} ({size} B)" for name, size in data))
    return 0
