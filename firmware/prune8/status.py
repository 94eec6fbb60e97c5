# What the host asks the board about itself (capacity: docs/spec.md §5.1), each
# answered with one JSON line:
#
#   info()  firmware version, capacity, MicroPython version, free heap
#   ls()    what is stored under /prune8/: files, the model's layers, the masks
#   ls(True)  ... each layer with its stored header too (the model id is their CRC: a
#           push that keeps layers announces the id it will have); only that push asks

import json
import os
import sys
from binascii import hexlify

from . import __version__, kernels, store
from . import mask as _mask
from .errors import StoreError
from .formats import MASKS_PATH, ROOT
from .profile import MAX_UNITS, MAX_WEIGHTS, NAME


def info():
    """Firmware version, capacity, free heap and filesystem space, as one JSON line."""
    import gc
    gc.collect()
    impl = sys.implementation
    out = {"prune8": __version__, "board": NAME, "max_weights": MAX_WEIGHTS,
           "max_units": MAX_UNITS, "micropython": list(impl.version[:3]),
           "mem_free": gc.mem_free(), "mem_alloc": gc.mem_alloc(),
           "kernels": kernels.chosen()}  # what a Pruner made now runs
    try:
        st = os.statvfs("/")  # block size, fragment size, blocks, free blocks, ...
        out["fs_total"] = st[1] * st[2]
        out["fs_free"] = st[1] * st[3]
    except (AttributeError, OSError):
        pass
    print(json.dumps(out))


def _count_pruned(path, info):
    with open(path, "rb") as f:
        f.seek(info.offset)
        data = f.read(info.nbytes)
    return info.n - _mask.popcount(data, len(data))


def ls(headers=False):
    """What is stored under /prune8/, as one JSON line; with `headers`, each layer's
    stored header too (hex)."""
    out = {"files": [], "model": None, "masks": None}
    if store.exists(ROOT):
        for name in sorted(os.listdir(ROOT)):
            out["files"].append([name, os.stat(ROOT + "/" + name)[6]])
    try:
        mid, layers = store.read_model_index()
        out["model"] = {"id": mid, "layers": [
            {"name": l.name, "rows": l.rows, "cols": l.cols, "act": l.act_len, "crc": l.crc}
            for l in layers]}
        if headers:
            for entry, l in zip(out["model"]["layers"], layers):
                entry["header"] = hexlify(l.record_header()).decode()
    except (OSError, StoreError):
        mid = None
    try:
        kid, masks = store.read_masks_index()
        out["masks"] = {"model_id": kid, "stale": kid != mid, "layers": [
            {"name": m.name, "method": m.method, "tie": m.tie, "sparsity_bp": m.bp,
             "n": m.n, "pruned": _count_pruned(MASKS_PATH, m)} for m in masks]}
    except (OSError, StoreError):
        pass
    print(json.dumps(out))
