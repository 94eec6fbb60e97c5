"""Channel groups on the command line: `prune8 mask --structured channels` (the twin's
group masks of a .tflite) and the group table of `prune8 model info`."""

from __future__ import annotations

import json

from prune8_host.errors import ModelError, UsageError
from prune8_host.files.graph import Group, groups_of
from prune8_host.files.masks import save_masks
from prune8_host.files.model import load_model, with_inputs
from prune8_host.twin.channels import group_masks

from .options import prune_options, refuse_lacking_inputs
from .table import table

STRUCTURES = ("channels",)


def add_structured_arg(p) -> None:
    p.add_argument("--structured", choices=STRUCTURES,
                   help="channels: remove whole channels of a .tflite, each coupled group "
                        "(the layers that make a channel, pass it on and read it) as one: "
                        "--sparsity of every group's channels, at least --min-keep kept, "
                        "ranked by --method's per-weight scores summed per channel (default "
                        "scaled: scale-aware L1); 'prune8 model info' lists the groups, "
                        "'prune8 shrink' removes them for real; with 'prune8 run', the board "
                        "masks them and -o SMALL.tflite is the model without them")


def refuse_options(args) -> None:
    """Refuse the mask options a channel group does not take."""
    for flag, value, off in (("--nm", args.nm, None), ("--steps", args.steps, 0),
                             ("--scope", args.scope, "layer"),
                             ("--min-score", args.min_score, 0),
                             ("--layer", getattr(args, "layer", None), None)):
        if value != off:
            raise UsageError(f"{flag} is not an option of --structured channels (a group "
                             f"is masked whole, by --sparsity, --min-keep and --tie)")


def group_layers(model, groups: list[Group], method: str):
    """The layers `groups` touch, refused (one line, before any board) when `method` needs
    inputs one of them lacks: the gradient proxy's activations, Wanda's samples (which a
    depthwise layer cannot have: a group through one is not scored by Wanda)."""
    depthwise = set(model.depthwise_layers())
    for g in groups:
        dw = sorted({m.layer for m in g.members} & depthwise)
        if method == "wanda" and dw:
            raise UsageError(f"{model.path}: --method wanda cannot score channel group "
                             f"{g.number}: its depthwise layer {dw[0]!r} has no Wanda "
                             f"samples (each of its rows reads its own input channel); use "
                             f"--method gradient with --activations, or scaled")
    names = sorted({m.layer for g in groups for m in g.members}, key=list(model).index)
    layers = model.select(names)
    refuse_lacking_inputs(model.path, layers, method, tflite=True,
                          depthwise=frozenset(depthwise))
    return layers


def prunable_groups(model) -> list[Group]:
    """The prunable channel groups of a loaded .tflite model."""
    if model.kind != "tflite":
        raise UsageError(f"{model.path}: --structured channels needs a .tflite (its graph "
                         f"says which channels go together); an .npz has no graph: use "
                         f"--method rows for its neurons")
    groups = [g for g in groups_of(model.tflite_model) if g.prunable]
    if not groups:
        raise ModelError(f"{model.path}: no channel group can be removed ('prune8 model info' "
                         f"says why for each)")
    return groups


def run_mask(args) -> int:
    refuse_options(args)
    opts = prune_options(args)
    model = load_model(args.weights)
    if args.activations:
        model = with_inputs(model, args.activations)
    groups = prunable_groups(model)
    layers = group_layers(model, groups, opts.method)
    masks, keeps = group_masks(layers, [(g.channels, g.members) for g in groups], opts)
    if args.out:
        save_masks(args.out, list(masks.values()), model=model)
    rows = [{"group": g.number, "channels": g.channels, "kept": int(k.sum()),
             "layers": [m.layer for m in g.producers()]} for g, k in zip(groups, keeps)]
    if args.json:
        print(json.dumps({"method": opts.method, "structured": "channels",
                          "sparsity_bp": opts.sparsity_bp, "groups": rows, "out": args.out}))
        return 0
    removed = sum(r["channels"] - r["kept"] for r in rows)
    total = sum(r["channels"] for r in rows)
    print(f"mask: {len(rows)} channel group(s), {opts.method} at "
          f"{opts.sparsity_bp / 100:.2f}%: {removed} of {total} channels pruned"
          + (f" -> {args.out}" if args.out else ""))
    return 0


def group_rows(model) -> list[dict]:
    """Every channel group of a .tflite, for model info."""
    return [{"group": g.number, "channels": g.channels,
             "layers": sorted({m.layer for m in g.members}),
             "makes": [m.layer for m in g.producers()],
             "prunable": g.prunable, "why_not": g.blocked}
            for g in groups_of(model.tflite_model)]


def print_groups(rows: list[dict]) -> None:
    print(table([("group", ">", 5), ("channels", ">", 8), ("made by", "<", 20),
                 ("prunable", "<", 0)],
                [[r["group"], r["channels"], ", ".join(r["makes"]) or "-",
                  "yes" if r["prunable"] else f"no: {r['why_not']}"] for r in rows]))
