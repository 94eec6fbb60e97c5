"""The scorers, one table (docs/spec.md §2).

One entry per name of prune8.formats.SCORERS, in that order (the order whose index a
masks record stores), like TensorFlow Lite Micro's operator registrations: its name,
what it needs, its kernel (a function of scores.py), the unit its mask covers, and the
errors for a layer that lacks what it needs. Whatever scores a layer or lists scorers on
the host reads it: reference.layer_scores, the golden vectors (suite/golden.py), the
masks files (files/masks.py, files/boardstore.py), the command line's choices and the
demo. A new scorer is an entry here, its kernel in scores.py, and tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from prune8 import errors
from prune8.formats import SCORERS
from prune8_host.errors import ModelError

from . import scores

# What a kernel is called with, by name. An entry's `needs` lists them in the kernel's
# order; the kernel also takes `profile=` (the board's capacity).
WEIGHTS = "weights"          # the layer's int8 weights, flat
COUNT = "count"              # how many scores (the layer's weight count)
SEED = "seed"                # the generator's seed (0..2**30 - 1)
ACTIVATIONS = "activations"  # int8: one per weight, or one per column
ACT_COLS = "act_cols"        # None for one activation per weight; else the layer's cols
SUMSQ = "sumsq"              # per column, the sum of squares of the calibration samples
MULTS = "mults"              # per row, the multiplier of the weight scale (0..32768)
ROWS = "rows"
COLS = "cols"
BLOCK = "block"              # (br, bc): the kernel takes them as two arguments


def unit_count(unit: str, rows: int, cols: int, block: tuple[int, int] | None = None) -> int:
    """The entries of a mask of this unit ("weight", "row", "col" or "block": one bit per
    weight, row, column or br x bc block) over a rows x cols layer."""
    if unit == "row":
        return rows
    if unit == "col":
        return cols
    if unit == "block":
        return (rows // block[0]) * (cols // block[1])
    return rows * cols


@dataclass(frozen=True)
class Scorer:
    name: str
    needs: tuple[str, ...]
    kernel: Callable[..., np.ndarray]
    summary: str               # what it scores, for the command line's --method help
    unit: str = "weight"       # what its mask covers: "weight", "row", "col" or "block"

    @property
    def per_weight(self) -> bool:
        return self.unit == "weight"

    def score(self, inputs: dict, profile=None) -> np.ndarray:
        """The kernel on inputs[need] for each need, in order."""
        args = []
        for need in self.needs:
            if need == BLOCK:
                args.extend(inputs[need])
            else:
                args.append(inputs[need])
        return self.kernel(*args, profile=profile)

    def missing(self, need: str, layer: str, cols: int | None = None) -> Exception:
        """The error for a layer that lacks what this scorer needs: the board's own for
        activations, calibration samples and a block size (prune8.errors, the same class
        and text on both sides)."""
        if need == ACTIVATIONS:
            return errors.no_activations(layer)
        if need == SUMSQ:
            return errors.no_calibration(layer, cols)
        if need == BLOCK:
            return errors.no_block_size()
        # ROWS, COLS, ACT_COLS: the layer is 1-D
        return ModelError(f"layer {layer!r} is 1-D: give --rows and --cols for {self.name}")


TABLE = (
    Scorer("magnitude", (WEIGHTS,), scores.magnitude_scores, "|w|"),
    Scorer("gradient", (WEIGHTS, ACTIVATIONS, ACT_COLS), scores.gradient_scores, "|w*a|>>4"),
    Scorer("mincut", (WEIGHTS, ROWS, COLS), scores.mincut_scores, "edge importance"),
    Scorer("rows", (WEIGHTS, ROWS, COLS), scores.row_scores, "L1 of each row", unit="row"),
    Scorer("cols", (WEIGHTS, ROWS, COLS), scores.col_scores, "L1 of each column",
           unit="col"),
    Scorer("l2", (WEIGHTS,), scores.l2_scores, "w*w"),
    Scorer("random", (COUNT, SEED), scores.random_scores, "seeded, an ablation baseline"),
    Scorer("wanda", (WEIGHTS, SUMSQ, ROWS, COLS), scores.wanda_scores, "|w|*||x||>>4"),
    Scorer("blocks", (WEIGHTS, ROWS, COLS, BLOCK), scores.block_scores,
           "L1 of each BRxBC block", unit="block"),
    Scorer("scaled", (WEIGHTS, MULTS, ROWS, COLS), scores.scaled_scores,
           "|w| times its row's weight scale: the real magnitude of a per-channel quantized "
           "layer"),
)
assert tuple(s.name for s in TABLE) == SCORERS  # the board's names, in the board's order

_BY_NAME = {s.name: s for s in TABLE}


def find(name) -> Scorer:
    """The scorer of this name; any other name is the board's OptionError."""
    if not isinstance(name, str) or name not in _BY_NAME:
        raise errors.option("method", name, SCORERS)
    return _BY_NAME[name]
