"""Check masks made on a board against the twin, bit for bit.

Each stored mask carries the options that made it (its PruneOptions: method, tie rule,
sparsity, min_keep, min_score...); the twin recomputes it from the host's copy of the model and the two are
compared word by word. A layer whose weights on the board differ from the host's model
(CRC) cannot verify, and says so.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from prune8_host.files.model import Model
from prune8_host.twin.layer import LayerMask
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
               activations=None) -> LayerCheck:
    """Recompute one mask from its layer in `model`, as pushed (its CRC, Model.record,
    must be the board's); `activations`, when given, replace the layer's own for scoring
    (the board's calibration)."""
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
    return [check_mask(m, model, board_crcs.get(m.name), activations.get(m.name))
            for m in masks]
