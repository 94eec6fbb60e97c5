# calib.bin: the gradient proxy's activations computed on the board by calibration
# (prune8.infer), one int8 value per input column of each layer: CALIB_MAGIC, STORE_HEAD
# (model id, layer count), then per layer a name, CALIB_RECORD (cols) and the cols
# activations (docs/protocol.md). A module of its own: only a calibration and a
# gradient prune load it (docs/heap.md).

import struct

from . import errors
from .formats import CALIB_MAGIC, CALIB_PATH, CALIB_RECORD, STORE_HEAD
from .store import commit, ensure_root, exists, read_exact, read_name, tmp_path, write_header


def write_calib(model_id, acts):
    """acts: [(layer name, bytes of cols activations)]; written atomically."""
    ensure_root()
    tmp = tmp_path(CALIB_PATH)
    with open(tmp, "wb") as f:
        write_header(f, CALIB_MAGIC, model_id, len(acts))
        for name, a in acts:
            raw = name.encode()
            f.write(bytes([len(raw)]) + raw + struct.pack(CALIB_RECORD, len(a)))
            f.write(a)
    commit(tmp, CALIB_PATH)


def read_calib_file(path=None):
    """(model id, {layer name: activations (bytes)}) of a calibration file."""
    with open(path or CALIB_PATH, "rb") as f:
        if read_exact(f, 4) != CALIB_MAGIC:
            raise errors.not_store_file(path or CALIB_PATH, "calibration")
        ident, count = struct.unpack(STORE_HEAD, read_exact(f, struct.calcsize(STORE_HEAD)))
        out = {}
        for _ in range(count):
            name = read_name(f)
            cols = struct.unpack(CALIB_RECORD, read_exact(f, struct.calcsize(CALIB_RECORD)))[0]
            out[name] = read_exact(f, cols)
    return ident, out


def read_calib(model_id):
    """{layer name: activations (bytes)} when calib.bin belongs to model_id, else {}."""
    if not exists(CALIB_PATH):
        return {}
    ident, out = read_calib_file()
    return out if ident == model_id else {}
