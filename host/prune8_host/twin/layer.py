"""A layer, the options a mask is made with, and the mask, as the twin and every tool see
them in memory.

`Layer` is one int8 layer of a model (rows = output neurons) with what travels beside it:
activations for the gradient proxy, calibration samples for Wanda, the integer
parameters of int8 inference. `PruneOptions` is how to mask a layer: the scorer and its
options, one object from the command line to the board's prune and back in the masks
it returns. `LayerMask` is a mask over one layer with the options that made it.
How they are named in files (NAME.act, NAME.calib, NAME.FIELD: docs/spec.md §9.1) is
fixed here too, so messages can name the entry a user has to add; prune8_host.files
reads and writes them. A mask's fields are those of docs/spec.md §9.3, where block and
N:M pattern are flat (`PruneOptions.record`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from prune8.formats import SCOPES
from prune8.protocol import MAX_NAME

from . import scorers
from .mask import mask_stats, mask_to_keep

META_NAME = "__prune8__"  # a masks file's metadata entry: no layer may have this name
ACT_SUFFIX = ".act"
CALIB_SUFFIX = ".calib"
MAX_CALIB_SAMPLES = 65536  # sums of 65536 squares of int8 still fit below 2**30
# Integer parameters of TFLM-style int8 inference (docs/spec.md §8, §9.1):
# bias (int32, rows), mult and shift (the requantization multiplier and shift), relu (0/1),
# in_zp and out_zp (activation zero points); and, informative only, the real scales
# in_scale, w_scale and out_scale (float32, as a .tflite file stores them).
# The scope of a coupled channel group's mask (twin.channels; on the board
# prune8.channels), a row mask over each layer whose rows make the group's channels,
# made from a per-weight scorer's scores summed per channel (prune8.formats.SCOPES).
GROUP_SCOPE = SCOPES[2]
QUANT_FIELDS = ("bias", "mult", "shift", "relu", "in_zp", "out_zp", "in_scale", "w_scale",
                "out_scale")


def name_problem(name) -> str | None:
    """What is wrong with a layer name, or None (docs/spec.md §9.2): 1 to
    MAX_NAME UTF-8 bytes (what the board's frames and records hold), no control
    characters, and not the masks file's metadata entry."""
    if not isinstance(name, str) or not name:
        return "a layer name must be a non-empty string"
    size = len(name.encode("utf-8", "surrogatepass"))
    if size > MAX_NAME:
        return f"the name is {size} UTF-8 bytes long; at most {MAX_NAME} fit the board's records"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "the name holds a control character"
    if name == META_NAME:
        return f"{META_NAME!r} is reserved for a masks file's metadata"
    return None


@dataclass(frozen=True)
class Layer:
    name: str
    weights: np.ndarray                 # int8, 2-D (rows, cols), or 1-D with no shape given
    activations: np.ndarray | None = None
    calib: np.ndarray | None = None     # int8 (samples, cols): Wanda's calibration inputs
    quant: dict[str, np.ndarray] = field(default_factory=dict)   # FIELD -> array, file order

    @property
    def n(self) -> int:
        return int(self.weights.size)

    @property
    def shape(self) -> tuple[int, int] | None:
        return tuple(self.weights.shape) if self.weights.ndim == 2 else None

    @property
    def flat(self) -> np.ndarray:
        return self.weights.reshape(-1)


@dataclass(frozen=True)
class PruneOptions:
    """How to mask a layer: the scorer and every option of the twin's `layer_mask`, which
    the board's prune takes by the same names (prune8.prune_model.prune)."""
    method: str
    sparsity_bp: int = 0
    tie: str = "exact"
    min_keep: int = 1
    min_score: int = 0
    seed: int = 0                           # random: the generator's seed
    block: tuple[int, int] | None = None    # blocks: block height and width
    nm: tuple[int, int] | None = None       # N:M pattern: keep N of every M along a row
    steps: int = 0          # gradual pruning: schedule steps walked (0: one shot)
    scope: str = "layer"    # "layer": one k for the layer; "channel": the same k per row;
    #                         "group": a coupled channel group's row mask (GROUP_SCOPE)

    def mask_kwargs(self) -> dict:
        """layer_mask's keyword arguments (all but the method)."""
        return dict(sparsity_bp=self.sparsity_bp, tie=self.tie, min_keep=self.min_keep,
                    min_score=self.min_score, seed=self.seed, block=self.block, nm=self.nm,
                    steps=self.steps, scope=self.scope)

    def record(self) -> dict:
        """The options as masks files and the board's masks.bin store them (docs/spec.md
        §9.3): block as br, bc and the N:M pattern as nm_n, nm_m, 0 when none."""
        br, bc = self.block or (0, 0)
        nm_n, nm_m = self.nm or (0, 0)
        return dict(method=self.method, tie=self.tie, sparsity_bp=self.sparsity_bp,
                    min_keep=self.min_keep, min_score=self.min_score, seed=self.seed,
                    br=br, bc=bc, nm_n=nm_n, nm_m=nm_m, steps=self.steps, scope=self.scope)

    @classmethod
    def from_record(cls, *, br: int, bc: int, nm_n: int, nm_m: int, **fields) -> PruneOptions:
        """The inverse of `record`."""
        return cls(block=(br, bc) if br or bc else None,
                   nm=(nm_n, nm_m) if nm_n or nm_m else None, **fields)


@dataclass(frozen=True)
class LayerMask:
    name: str
    words: np.ndarray       # uint32, ceil(n / 32)
    n: int                  # entries covered: weights, rows, columns or blocks
    rows: int
    cols: int
    options: PruneOptions   # what made it

    @property
    def method(self) -> str:
        return self.options.method

    @property
    def unit(self) -> str:
        """What one bit covers: "weight", "row", "col" or "block"."""
        if self.options.scope == GROUP_SCOPE:
            return "row"
        return scorers.find(self.options.method).unit

    def keep(self) -> np.ndarray:
        return mask_to_keep(self.words, self.n)

    def stats(self) -> dict:
        return mask_stats(self.words, self.n)
