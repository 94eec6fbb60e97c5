"""Masks files (MASKS.npz): per layer, its mask as uint32 words in the SPEC layout.

Array NAME holds layer NAME's words; the JSON string array "__prune8__" records, per
layer, what the mask covers (weights, rows, columns or blocks), its length, and what
made it: method, tie rule, sparsity (bp), min_keep, min_score, and where they apply the
random seed, block size, N:M pattern and schedule steps.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from prune8_host.errors import FileFormatError
from prune8_host.twin.layer import LayerMask

from .npzio import load_arrays, save_npz

META_KEY = "__prune8__"
FORMAT = 1


def save_masks(path: str | Path, masks: list[LayerMask]) -> None:
    meta = {"format": FORMAT, "layers": {m.name: m.meta() for m in masks}}
    arrays = {m.name: m.words.astype(np.uint32) for m in masks}
    arrays[META_KEY] = np.array(json.dumps(meta, sort_keys=True))
    save_npz(path, arrays)


def load_masks(path: str | Path) -> list[LayerMask]:
    arrays = load_arrays(path)
    if META_KEY not in arrays:
        raise FileFormatError(f"{path}: not a prune8 masks file (no {META_KEY!r} entry)")
    try:
        meta = json.loads(str(arrays[META_KEY]))
        layers = meta["layers"]
    except (ValueError, KeyError, TypeError) as e:
        raise FileFormatError(f"{path}: unreadable {META_KEY!r} entry ({e})") from None
    if meta.get("format") != FORMAT:
        raise FileFormatError(f"{path}: masks format {meta.get('format')!r}, expected {FORMAT}")
    out = []
    for name, m in layers.items():
        if name not in arrays:
            raise FileFormatError(f"{path}: layer {name!r} listed but its words are missing")
        lm = LayerMask(name=name, words=arrays[name].astype(np.uint32), **m)
        lm.stats()  # checks word count and stray bits
        out.append(lm)
    return out
