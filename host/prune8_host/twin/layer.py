"""A layer and its mask as the twin and every tool see them in memory.

`Layer` is one int8 layer of a model (rows = output neurons) with what travels beside it:
activations for the gradient proxy, calibration samples for Wanda, the integer
parameters of int8 inference. `LayerMask` is a mask over one layer with what made it.
How they are named in files (NAME.act, NAME.calib, NAME.FIELD: docs/spec.md §9.1) is
fixed here too, so messages can name the entry a user has to add; prune8_host.files
reads and writes them. A mask's fields are those of docs/spec.md §9.3.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from prune8.protocol import MAX_NAME

from .mask import mask_stats, mask_to_keep

META_NAME = "__prune8__"  # a masks file's metadata entry: no layer may have this name
ACT_SUFFIX = ".act"
CALIB_SUFFIX = ".calib"
MAX_CALIB_SAMPLES = 65536  # sums of 65536 squares of int8 still fit below 2**30
# Integer parameters of TFLM-style int8 inference (docs/spec.md §8, §9.1):
# bias (int32, rows), mult and shift (the requantization multiplier and shift), relu (0/1),
# in_zp and out_zp (activation zero points); and, informative only, the real scales
# in_scale, w_scale and out_scale (float32, as a .tflite file stores them).
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
class LayerMask:
    name: str
    words: np.ndarray       # uint32, ceil(n / 32)
    n: int                  # entries covered: weights, rows, columns or blocks
    unit: str               # "weight", "row", "col" or "block" (its scorer's, scorers.py)
    method: str
    tie: str
    sparsity_bp: int
    min_keep: int
    min_score: int
    rows: int
    cols: int
    seed: int = 0           # random: the generator's seed
    br: int = 0             # blocks: block height and width
    bc: int = 0
    nm_n: int = 0           # N:M pattern (0: none): keep nm_n of every nm_m
    nm_m: int = 0
    steps: int = 0          # gradual pruning: schedule steps walked (0: one shot)
    scope: str = "layer"    # "layer": one k for the layer; "channel": the same k per row

    def keep(self) -> np.ndarray:
        return mask_to_keep(self.words, self.n)

    def stats(self) -> dict:
        return mask_stats(self.words, self.n)

    def meta(self) -> dict:
        d = asdict(self)
        del d["words"], d["name"]
        return d
