# The board's store under /prune8/ (docs/protocol.md, "Storage on the board"):
# model.bin holds the pushed model, masks.bin the masks computed for it. Each file is
# written to NAME.tmp and renamed over NAME when complete, so a reset during a save
# leaves the previous version intact.

import os
import struct

ROOT = "/prune8"
MODEL = ROOT + "/model.bin"
MASKS = ROOT + "/masks.bin"
MODEL_MAGIC = b"P8M1"
MASKS_MAGIC = b"P8K1"
METHODS = ("magnitude", "gradient", "mincut", "rows", "cols")
TIES = ("exact", "strict")
_LAYER = "<HHII"       # rows, cols, activation bytes, CRC-32 of weights + activations
_MASK = "<BBHHIHHH"    # method, tie, bp, min_keep, min_score, n, rows, cols


class StoreError(Exception):
    """A stored file is missing or not in the expected format."""


def exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def ensure_root():
    if not exists(ROOT):
        os.mkdir(ROOT)


def commit(tmp, path):
    """Replace path by tmp: one rename (atomic on LittleFS, the ESP32 default)."""
    try:
        os.rename(tmp, path)
    except OSError:
        # FAT refuses to rename over an existing file: remove it first. This leaves a
        # short window without the file; LittleFS never takes this branch.
        os.remove(path)
        os.rename(tmp, path)


def discard(tmp):
    try:
        os.remove(tmp)
    except OSError:
        pass


def read_exact(f, n):
    data = f.read(n)
    if data is None or len(data) != n:
        raise StoreError("truncated file")
    return data


def _name(f):
    return read_exact(f, read_exact(f, 1)[0]).decode()


# -- model.bin --------------------------------------------------------------------------

class LayerInfo:
    def __init__(self, name, rows, cols, act_len, crc, offset):
        self.name = name
        self.rows = rows
        self.cols = cols
        self.act_len = act_len
        self.crc = crc
        self.offset = offset    # file offset of the weights

    @property
    def n(self):
        return self.rows * self.cols

    def record_header(self):
        name = self.name.encode()
        return bytes([len(name)]) + name + struct.pack(_LAYER, self.rows, self.cols,
                                                        self.act_len, self.crc)


def read_model_index(path=None):
    """(model id, [LayerInfo]) of a model file, reading headers only."""
    path = path or MODEL
    with open(path, "rb") as f:
        if read_exact(f, 4) != MODEL_MAGIC:
            raise StoreError("%s is not a prune8 model file" % path)
        model_id, count = struct.unpack("<IH", read_exact(f, 6))
        layers = []
        pos = 10
        for _ in range(count):
            name = _name(f)
            rows, cols, act_len, crc = struct.unpack(_LAYER, read_exact(f, 12))
            pos += 1 + len(name.encode()) + 12
            layers.append(LayerInfo(name, rows, cols, act_len, crc, pos))
            pos += rows * cols + act_len
            f.seek(pos)
        return model_id, layers


def load_layer(info, w, a, path=None):
    """Read a layer's weights into w[:n] and activations into a[:act_len]."""
    with open(path or MODEL, "rb") as f:
        f.seek(info.offset)
        if f.readinto(memoryview(w)[:info.n]) != info.n:
            raise StoreError("truncated layer %s" % info.name)
        if info.act_len and f.readinto(memoryview(a)[:info.act_len]) != info.act_len:
            raise StoreError("truncated activations of %s" % info.name)


def model_id(layers):
    """CRC-32 of every layer's name, shape and CRC: which model this is."""
    from .link import crc32_halves
    head = b"".join(l.record_header() for l in layers)
    lo, hi = crc32_halves(head, len(head))
    return lo | (hi << 16)


# -- masks.bin --------------------------------------------------------------------------

class MaskInfo:
    def __init__(self, name, method, tie, bp, min_keep, min_score, n, rows, cols, offset):
        self.name = name
        self.method = method
        self.tie = tie
        self.bp = bp
        self.min_keep = min_keep
        self.min_score = min_score
        self.n = n
        self.rows = rows
        self.cols = cols
        self.offset = offset    # file offset of the mask words

    @property
    def nbytes(self):
        return ((self.n + 31) >> 5) << 2

    def record_header(self):
        name = self.name.encode()
        return bytes([len(name)]) + name + struct.pack(
            _MASK, METHODS.index(self.method), TIES.index(self.tie), self.bp, self.min_keep,
            self.min_score, self.n, self.rows, self.cols)


def read_masks_index(path=None):
    """(model id, [MaskInfo]) of a masks file."""
    path = path or MASKS
    with open(path, "rb") as f:
        if read_exact(f, 4) != MASKS_MAGIC:
            raise StoreError("%s is not a prune8 masks file" % path)
        mid, count = struct.unpack("<IH", read_exact(f, 6))
        masks = []
        pos = 10
        for _ in range(count):
            name = _name(f)
            m, t, bp, keep, floor, n, rows, cols = struct.unpack(_MASK, read_exact(f, 16))
            pos += 1 + len(name.encode()) + 16
            info = MaskInfo(name, METHODS[m], TIES[t], bp, keep, floor, n, rows, cols, pos)
            masks.append(info)
            pos += info.nbytes
            f.seek(pos)
        return mid, masks


def write_header(f, magic, ident, count):
    f.write(magic)
    f.write(struct.pack("<IH", ident, count))
