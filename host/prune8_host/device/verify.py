"""Check masks made on a board against the twin, bit for bit.

Each stored mask carries the options that made it (its PruneOptions: method, tie rule,
sparsity, min_keep, min_score...); the twin recomputes it from the host's copy of the model and the two are
compared word by word. A layer whose weights on the board differ from the host's model
(CRC) cannot verify, and says so. Masks of channel groups (scope "group", made by
prune8.channels) are recomputed together, from the groups of the .tflite's graph
(twin.channels.group_masks).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from prune8 import errors
from prune8_host.errors import HostError
from prune8_host.files.graph import groups_of
from prune8_host.files.model import Model
from prune8_host.twin.channels import group_masks
from prune8_host.twin.layer import GROUP_SCOPE, LayerMask, PruneOptions
from prune8_host.twin.reference import mask_for


@dataclass
class LayerCheck:
    layer: str
    method: str
    unit: str
    n: int
    pruned: int
    sparsity_bp: int
    verified: bool
    diff_bits: int = 0
    first_diff: int | None = None
    note: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def check_mask(mask: LayerMask, model: Model, board_crc: int | None,
               activations=None, expected=None) -> LayerCheck:
    """Recompute one mask from its layer in `model`, as pushed (its CRC, Model.record,
    must be the board's); `activations`, when given, replace the layer's own for scoring
    (the board's calibration). `expected`: the twin's mask made already (a group's), or
    the reason there is none (a str)."""
    stats = mask.stats()
    check = LayerCheck(layer=mask.name, method=mask.method, unit=mask.unit, n=mask.n,
                       pruned=stats["pruned"], sparsity_bp=stats["sparsity_bp"],
                       verified=False)
    layer = model.get(mask.name)
    if layer is None:
        check.note = "the model has no such layer"
        return check
    if board_crc is not None and board_crc != model.record(mask.name).crc:
        check.note = "the board's weights differ from the model's (push it again)"
        return check
    if isinstance(expected, str):
        check.note = expected
        return check
    if expected is None:
        if activations is not None:
            layer = replace(layer, activations=activations)
        expected = mask_for(layer, mask.options)
    if expected.n != mask.n:
        check.note = f"mask covers {mask.n} {mask.unit}s, the twin {expected.n}"
        return check
    diff = mask.keep() != expected.keep()
    check.diff_bits = int(np.count_nonzero(diff))
    if check.diff_bits:
        check.first_diff = int(np.flatnonzero(diff)[0])
        check.note = (f"{check.diff_bits} of {mask.n} bits differ from the twin, first at "
                      f"{mask.unit} {check.first_diff}")
    else:
        check.verified = True
    return check


def check_masks(model: Model, masks: list[LayerMask],
                board_crcs: dict[str, int] | None = None,
                activations: dict[str, np.ndarray] | None = None) -> list[LayerCheck]:
    board_crcs, activations = board_crcs or {}, activations or {}
    grouped = group_expected(model, [m.options for m in masks
                                     if m.options.scope == GROUP_SCOPE])
    return [check_mask(m, model, board_crcs.get(m.name), activations.get(m.name),
                       grouped.get(m.options, {}).get(m.name,
                                                      "no channel group of the model's "
                                                      "graph is made by this layer"))
            if m.options.scope == GROUP_SCOPE else
            check_mask(m, model, board_crcs.get(m.name), activations.get(m.name))
            for m in masks]


def group_expected(model: Model, options: list[PruneOptions]) -> dict:
    """{options: {layer: the twin's group mask, or why there is none}} for the options of
    the group masks to check (one prune's: usually one set). The board's calibration
    plays no part: a group prune scores the layers as pushed."""
    out = {}
    for opts in dict.fromkeys(options):
        if model.kind != "tflite":
            out[opts] = dict.fromkeys(model, "masks of channel groups need the .tflite's "
                                             "graph")
            continue
        try:
            groups = [(g.channels, g.members) for g in groups_of(model.tflite_model)
                      if g.prunable]
            out[opts] = group_masks(model, groups, opts)[0]
        except (HostError, errors.Prune8Error) as e:
            out[opts] = dict.fromkeys(model, f"the twin cannot make these group masks: {e}")
    return out

