"""Files of the board's store (docs/protocol.md, "Storage on the board"), read on the
host with the firmware's own parser (`prune8.store` runs on CPython too), so the host
and the board cannot disagree about them."""

from __future__ import annotations

import os
import tempfile

import numpy as np

from prune8 import store
from prune8_host.twin.layer import LayerMask, PruneOptions


def _parsed(data: bytes, reader):
    # The firmware's parsers read files, as the board does: give them one.
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "store.bin")
        with open(path, "wb") as f:
            f.write(data)
        return reader(path)


def parse_masks(data: bytes) -> tuple[int, list[LayerMask]]:
    """masks.bin bytes -> (model id, masks)."""
    model_id, index = _parsed(data, store.read_masks_index)
    out = []
    for m in index:
        words = np.frombuffer(data[m.offset:m.offset + m.nbytes], "<u4").astype(np.uint32)
        options = PruneOptions.from_record(
            method=m.method, tie=m.tie, sparsity_bp=m.bp, min_keep=m.min_keep,
            min_score=m.min_score, seed=m.seed, br=m.br, bc=m.bc, nm_n=m.nm_n, nm_m=m.nm_m,
            steps=m.steps, scope=m.scope)
        out.append(LayerMask(name=m.name, words=words, n=m.n, rows=m.rows, cols=m.cols,
                             options=options))
    return model_id, out


def parse_calib(data: bytes) -> tuple[int, dict[str, np.ndarray]]:
    """calib.bin bytes -> (model id, {layer: int8 activations})."""
    model_id, acts = _parsed(data, store.read_calib_file)
    return model_id, {n: np.frombuffer(a, np.int8).copy() for n, a in acts.items()}
