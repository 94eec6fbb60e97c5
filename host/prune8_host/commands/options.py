"""Options that several commands share: the board to talk to, the scorer, the mask."""

from __future__ import annotations

import argparse
import re
import sys

from prune8 import errors
from prune8.errors import SparsityError
from prune8.formats import LAYER_SCOPES, TIES
from prune8_host import twin
from prune8_host.errors import HostError, UsageError
from prune8_host.files.masks import check_masks_fit, read_masks
from prune8_host.twin import dense, scorers
from prune8_host.twin.layer import PruneOptions
from prune8_host.twin.schedule import MAX_STEPS


def add_board_args(p) -> None:
    p.add_argument("--port", "-p", metavar="P",
                   help="serial port of the board (e.g. /dev/ttyUSB0); default: a virtual "
                        "board started for this command")
    p.add_argument("--board", default=None, metavar="B",
                   help="board profile (default esp32)")
    p.add_argument("--baud", type=int, default=None, metavar="N",
                   help="REPL baud rate (default: the profile's)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars or notes")


def _switch_rate(text: str) -> int:
    from prune8_host.boards import SWITCH_RATES
    if text == "off":
        return 0
    if not text.isdigit() or int(text) not in SWITCH_RATES:
        raise argparse.ArgumentTypeError(
            f"--baud-switch must be off or one of {', '.join(map(str, SWITCH_RATES))}, "
            f"got {text!r}")
    return int(text)


def add_switch_arg(p) -> None:
    p.add_argument("--baud-switch", type=_switch_rate, default=None, metavar="RATE|off",
                   help="baud for the bulk of a transfer, negotiated with the board "
                        "(default: the profile's baud_switch; off: stay at --baud)")


def board_kwargs(args) -> dict:
    """device.connect.open_board's arguments from the command line."""
    return dict(port=args.port, board=args.board, baud=args.baud, quiet=args.quiet,
                baud_switch=getattr(args, "baud_switch", None))


METHOD_HELP = "scorer: " + ", ".join(f"{s.name} ({s.summary})" for s in scorers.TABLE)


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


def _steps(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if not 1 <= n <= MAX_STEPS:
        raise argparse.ArgumentTypeError(f"steps must be an integer in 1..{MAX_STEPS}, got "
                                         f"{text!r}")
    return n


# The scorer when none is named: the real magnitude |w| * scale. On a layer with one scale
# it ranks exactly as magnitude; on a per-channel quantized layer (a .tflite's conv and
# dense layers) it compares channels fairly, where raw int8 |w| would not
# (docs/tflite.md, "Per-channel scales").
DEFAULT_SCORER = "scaled"


def add_method_args(p, default: str | None = DEFAULT_SCORER) -> None:
    p.add_argument("--method", choices=[s.name for s in scorers.TABLE], default=default,
                   help=METHOD_HELP + (f" (default {default}: the real magnitude, which is "
                                       f"magnitude on a layer with one scale)"
                                       if default else ""))
    p.add_argument("--seed", type=int, default=0, metavar="S",
                   help="seed of --method random (0..2**30-1, default 0)")
    p.add_argument("--block", type=_block, metavar="BRxBC",
                   help="block size for --method blocks, e.g. 4x4")


def add_mask_args(p) -> None:
    p.add_argument("--sparsity", type=float, metavar="S",
                   help="fraction to prune, 0..1, in whole basis points (0.0001 steps)")
    p.add_argument("--sparsity-bp", type=int, metavar="BP", help="the same in basis points")
    p.add_argument("--tie", choices=TIES, default="exact",
                   help="exact: prune exactly k (ties by index); strict: only scores below "
                        "the threshold (default exact)")
    p.add_argument("--min-keep", type=int, default=1, metavar="K",
                   help="never prune below K entries (default 1)")
    p.add_argument("--min-score", type=int, default=0, metavar="T",
                   help="also prune every score below T (default 0: off)")
    add_pattern_args(p)


def add_pattern_args(p) -> None:
    """How the mask is made (what, besides the scorer, changes the board's heap)."""
    p.add_argument("--nm", type=_nm, metavar="N:M",
                   help="N:M pattern instead of a sparsity: keep N of every M along a row")
    p.add_argument("--scope", choices=LAYER_SCOPES, default="layer",
                   help="layer: rank the whole layer (default); channel: prune the same "
                        "fraction of every row (output channel), which keeps each channel's "
                        "quantization range meaningful; a per-weight scorer only")
    p.add_argument("--steps", type=_steps, default=0, metavar="N",
                   help=f"gradual: walk the cubic schedule to the sparsity in N steps "
                        f"(1..{MAX_STEPS}; default: one shot)")


def sparsity_bp(sparsity, bp, optional: bool = False) -> int:
    """The basis points of --sparsity S or --sparsity-bp BP, refused in the command
    line's own words (the library's name them as keyword arguments)."""
    if sparsity is not None and bp is not None:
        raise UsageError("give --sparsity or --sparsity-bp, not both")
    if sparsity is None and bp is None:
        if optional:
            return 0
        raise UsageError("give --sparsity S (a fraction 0..1) or --sparsity-bp BP (0..10000)")
    if sparsity is not None:
        return fraction_bp("--sparsity", sparsity, "; use --sparsity-bp for an exact value")
    try:
        return twin.resolve_bp(None, bp)
    except SparsityError:
        raise UsageError(f"--sparsity-bp must be an integer in 0..10000; got {bp}") from None


def fraction_bp(flag: str, value, hint: str = "") -> int:
    """The basis points of a fraction given as `flag` (docs/spec.md §1.2)."""
    try:
        return twin.to_bp(value)
    except SparsityError:
        raise UsageError(f"{flag} must be a fraction in 0..1 in whole basis points (steps of "
                         f"0.0001); got {value!r}{hint}") from None


def _bp(args) -> int:
    # an N:M pattern fixes the sparsity itself
    return sparsity_bp(args.sparsity, args.sparsity_bp, optional=args.nm is not None)


def prune_options(args, method: str | None = None) -> PruneOptions:
    """The mask options of the command line (a bad sparsity, or an N:M pattern over a
    scorer of rows, columns or blocks, is refused here, before any file or board is
    touched)."""
    method = method or args.method
    if args.nm is not None and not scorers.find(method).per_weight:
        raise UsageError(f"an N:M pattern needs a per-weight scorer, not {method}")
    return PruneOptions(method=method, sparsity_bp=_bp(args), tie=args.tie,
                        min_keep=args.min_keep, min_score=args.min_score, seed=args.seed,
                        block=args.block, nm=args.nm, steps=args.steps, scope=args.scope)


def lacking(model, method: str) -> tuple[str | None, list[str]]:
    """(what, layers): what `method` needs that the model's layers do not carry
    ("activations" or "calibration"), and which layers lack it; (None, []) when nothing."""
    needs = scorers.find(method).needs
    for need, what, has in ((scorers.ACTIVATIONS, "activations", "activations"),
                            (scorers.SUMSQ, "calibration", "calib")):
        if need in needs:
            names = [n for n, layer in model.items() if getattr(layer, has) is None]
            if names:
                return what, names
    return None, []


def refuse_lacking_inputs(path, model, method: str, tflite: bool,
                          board_calibrates: bool = False,
                          depthwise: frozenset[str] = frozenset()) -> list[str]:
    """Refuse, before a board is started, a scorer that needs inputs MODEL does not carry,
    naming the command that provides them. Returns the layers whose activations only the
    board's own calibration (prune8 calibrate) can give, when `board_calibrates` and the
    model is one the board can calibrate (a chain of quantized FULLY_CONNECTED layers):
    the caller checks the board holds them. `depthwise` names the DEPTHWISE_CONV_2D layers,
    which have activations but no Wanda samples."""
    what, names = lacking(model, method)
    if what is None:
        return []
    name = names[0]
    cols = model[name].weights.shape[-1]
    if what == "calibration":
        how = (f"a .tflite holds none: prune8 calibrate {path} --data CALIB.npz -o STATS.npz "
               f"writes them, then --activations STATS.npz"
               + (" (a depthwise layer has none: each of its rows reads its own input "
                  "channel; leave it out with prune8 mask --layer, or use --method "
                  "gradient)" if name in depthwise else "")
               if tflite else f"add {name}.calib (samples x {cols}, int8) to {path}")
        raise UsageError(f"{path}: --method wanda needs calibration samples for layer "
                         f"{name!r}; {how}")
    if board_calibrates:
        try:
            dense.qlayers(model)
            return names  # the board computes them (prune8 calibrate): the caller checks
        except (HostError, errors.Prune8Error):
            pass  # not a chain of quantized FULLY_CONNECTED layers: the board cannot
    raise UsageError(f"{path}: --method gradient needs activations for layer {name!r}, "
                     f"which {'a .tflite does not hold' if tflite else 'the model lacks'}: "
                     f"give them on the host with --activations ACTS.npz (one int8 array per "
                     f"layer, named after it"
                     + (f"; prune8 calibrate {path} --data CALIB.npz -o ACTS.npz computes "
                        f"them by TFLM" if tflite else "") + ")")


def add_activations_arg(p) -> None:
    p.add_argument("--activations", metavar="FILE",
                   help="the scorers' inputs: NAME.act (int8 activations, for --method "
                        "gradient) and NAME.calib (samples, for --method wanda) per layer "
                        "in an .npz, or a .npy of one layer's activations; 'prune8 "
                        "calibrate MODEL.tflite --data CALIB.npz -o STATS.npz' writes them "
                        "by TFLM; default: those in MODEL")


def add_force_arg(p) -> None:
    p.add_argument("--force", action="store_true",
                   help="use MASKS even when made for another model (its fingerprint "
                        "differs from MODEL's layers)")


def model_masks(args, model, masks_path, model_path) -> list:
    """The masks of `masks_path`, refused when made for another model than `model`
    (files.masks.check_masks_fit; --force lets them through with a warning)."""
    masks, prints = read_masks(masks_path)
    for line in check_masks_fit(masks_path, masks, prints, model, model_path,
                                force=getattr(args, "force", False)):
        print(f"prune8: warning: {line}", file=sys.stderr)
    return masks
