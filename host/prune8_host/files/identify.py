"""Which of prune8's own files a file is, from its first bytes or its zip members, so
that `prune8 model info` says what a file is instead of that it is not a model."""

from __future__ import annotations

import zipfile
from pathlib import Path

from prune8.formats import CALIB_MAGIC, GOLDEN_MAGIC, MASKS_MAGIC, MODEL_MAGIC
from prune8.packed_format import PACKED_MAGIC

from .masks import META_KEY

PACKED, MASKS, DATA = "packed", "masks", "data"
# The board's store files (docs/protocol.md) by magic: what each is.
STORE = {MODEL_MAGIC: ("board-model", "the board's stored model (/prune8/model.bin, "
                                      "written by prune8 push)"),
         MASKS_MAGIC: ("board-masks", "the board's masks (/prune8/masks.bin, written by "
                                      "prune8 prune; prune8 pull -o MASKS.npz reads them)"),
         CALIB_MAGIC: ("board-calib", "the board's calibrated activations (/prune8/calib."
                                      "bin, written by prune8 calibrate)"),
         GOLDEN_MAGIC: ("golden", "the twin's golden vectors for the on-board test suite "
                                  "(prune8 test-board)")}


def identify(path) -> str | None:
    """PACKED, MASKS, DATA, a STORE kind, or None (a model, or no file of prune8's)."""
    path = Path(path)
    try:
        if not path.is_file():
            return None
        with open(path, "rb") as f:
            head = f.read(4)
        if head == PACKED_MAGIC:
            return PACKED
        if head in STORE:
            return STORE[head][0]
        if not zipfile.is_zipfile(path):
            return None
        with zipfile.ZipFile(path) as zf:
            names = {n.removesuffix(".npy") for n in zf.namelist()}
    except (OSError, zipfile.BadZipFile):
        return None  # the model reader says what is wrong with it
    if META_KEY in names:
        return MASKS
    if "images" in names and names <= {"images", "labels"}:
        return DATA
    return None


def store_description(kind: str) -> str | None:
    return next((text for k, text in STORE.values() if k == kind), None)
