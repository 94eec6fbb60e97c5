# The board's store under /prune8/ (docs/protocol.md, "Storage on the board";
# docs/spec.md §9.6, §6.3):
# model.bin holds the pushed model, masks.bin the masks computed for it. Each file is
# written to NAME.tmp and renamed over NAME when complete, so a reset during a save
# leaves the previous version intact. Paths, magics and record formats: protocol.py.

import os
import struct
from array import array

from . import errors
from .formats import (
    BIAS,
    LAYER_RECORD,
    MASK_RECORD,
    MASKS_MAGIC,
    MASKS_PATH,
    MODEL_MAGIC,
    MODEL_PATH,
    MULT,
    QUANT_CHANNEL,
    ROOT,
    SCALE,
    SCOPES,
    SCORERS,
    SHIFT,
    STORE_HEAD,
    SUM,
    TIES,
    TMP_SUFFIX,
)

_LAYER_SIZE = struct.calcsize(LAYER_RECORD)
CRC_AT = struct.calcsize(LAYER_RECORD[:5])  # rows, cols, act_len, calib, then the CRC
_MASK_SIZE = struct.calcsize(MASK_RECORD)
_HEAD_SIZE = struct.calcsize(STORE_HEAD)


# The one line a failed write of the store becomes (the receivers, prune, apply).
def oserror_text(e, doing):
    code = e.args[0] if e.args else 0
    if code == 28:  # ENOSPC
        return "board filesystem is full while %s (ENOSPC): the previous version is kept" % doing
    return "board error while %s: %r" % (doing, e)


def exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def ensure_root():
    if not exists(ROOT):
        os.mkdir(ROOT)


def tmp_path(path):
    """Where a new version of `path` is written before it is committed."""
    return path + TMP_SUFFIX


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


class Replacing:
    """`with Replacing(path) as f:` writes a new version of path beside it (tmp_path)
    and commits it when the block ends normally; when it raises, the old file stays
    and the partial new one is removed."""

    def __init__(self, path):
        self.path = path
        self.tmp = tmp_path(path)
        self.f = None

    def __enter__(self):
        self.f = open(self.tmp, "wb")
        return self.f

    def __exit__(self, kind, value, tb):
        self.f.close()
        if kind is None:
            commit(self.tmp, self.path)
        else:
            discard(self.tmp)
        return False


def read_exact(f, n):
    data = f.read(n)
    if data is None or len(data) != n:
        raise errors.truncated("file")
    return data


def copy_bytes(src, dst, n, buf, what):
    """Copy n bytes from file src to file dst through buf, a piece at a time (a layer or
    a mask of a big layer is more than RAM holds at once); `what` names src's content
    when it ends early."""
    view = memoryview(buf)
    while n:
        k = n if n < len(buf) else len(buf)
        if src.readinto(view[:k]) != k:
            raise errors.truncated(what)
        dst.write(view[:k])
        n -= k


def read_name(f):
    return read_exact(f, read_exact(f, 1)[0]).decode()


# -- model.bin --------------------------------------------------------------------------

class LayerInfo:
    """A stored layer: weights (n bytes), activations (act_len bytes), then, when it came
    with calibration samples, Wanda's per-column sums of squares (cols x u32), for a
    quantized layer its int32 biases (rows x i32) and, quantized per channel, its
    multipliers (rows x i32) and shifts (rows x i8), and, when `scaled`, the scale-aware
    score's multipliers (rows x u16)."""

    def __init__(self, name, rows, cols, act_len, calib, crc, offset, quant=0,
                 multiplier=0, shift=0, in_zp=0, out_zp=0, relu=0, scaled=0):
        self.name = name
        self.rows = rows
        self.cols = cols
        self.act_len = act_len
        self.calib = calib      # calibration samples the sums were accumulated from
        self.crc = crc          # CRC-32 of everything stored after the header
        self.offset = offset    # file offset of the weights
        self.quant = quant      # 1: the layer carries TFLM int8 inference parameters
        self.multiplier = multiplier
        self.shift = shift
        self.in_zp = in_zp
        self.out_zp = out_zp
        self.relu = relu
        self.scaled = scaled    # 1: per-row scale multipliers are stored

    @property
    def n(self):
        return self.rows * self.cols

    @property
    def sums_offset(self):
        return self.offset + self.n + self.act_len

    @property
    def bias_offset(self):
        return self.sums_offset + (4 * self.cols if self.calib else 0)

    @property
    def channel_offset(self):
        return self.bias_offset + (4 * self.rows if self.quant else 0)

    @property
    def scale_offset(self):
        return self.channel_offset + (5 * self.rows if self.quant == QUANT_CHANNEL else 0)

    @property
    def data_len(self):
        return self.scale_offset - self.offset + (2 * self.rows if self.scaled else 0)

    @property
    def tail_len(self):
        """Bytes after the sums: biases, per-channel parameters, scale multipliers."""
        return self.offset + self.data_len - self.bias_offset

    body_len = data_len

    def record_header(self):
        name = self.name.encode()
        return bytes([len(name)]) + name + struct.pack(
            LAYER_RECORD, self.rows, self.cols, self.act_len, self.calib, self.crc, self.quant,
            self.multiplier, self.shift, self.in_zp, self.out_zp, self.relu, self.scaled)


def _read_index(path, magic, what, fmt, size, make):
    """(file id, [record]) of a store file: magic, u32 id, u16 count, then per record a
    name, a struct `fmt` of `size` bytes, and a body whose length the record knows."""
    with open(path, "rb") as f:
        if read_exact(f, 4) != magic:
            raise errors.not_store_file(path, what)
        ident, count = struct.unpack(STORE_HEAD, read_exact(f, _HEAD_SIZE))
        records = []
        pos = 4 + _HEAD_SIZE
        for _ in range(count):
            name = read_exact(f, read_exact(f, 1)[0])  # its length in bytes, then decoded
            pos += 1 + len(name) + size
            rec = make(name.decode(), struct.unpack(fmt, read_exact(f, size)), pos)
            records.append(rec)
            pos += rec.body_len
            f.seek(pos)
        return ident, records


def read_model_index(path=None):
    """(model id, [LayerInfo]) of a model file, reading headers only."""
    return _read_index(path or MODEL_PATH, MODEL_MAGIC, "model", LAYER_RECORD, _LAYER_SIZE,
                       lambda name, v, pos: LayerInfo(name, v[0], v[1], v[2], v[3], v[4], pos,
                                                      v[5], v[6], v[7], v[8], v[9], v[10],
                                                      v[11]))  # no slice of v made


def read_ints(f, fmt, out, count, what="file"):
    """count values of a one-value little-endian struct format fmt (SUM, BIAS, SCALE,
    MULT, SHIFT) from f into out[0:count], 64 at a time through an array of that type
    made per call: no tuple per value, as struct.unpack makes (a layer's 64 scale
    multipliers were ~1.5 KB of garbage), and no buffer of all of them."""
    size = struct.calcsize(fmt)
    buf = array(fmt[1], range(64))  # no bytes(size * 64) left behind
    view = memoryview(buf)
    i = 0
    while i < count:
        k = count - i if count - i < 64 else 64
        if f.readinto(view if k == 64 else view[:k]) != k * size:
            raise errors.truncated(what)
        for j in range(k):
            out[i + j] = buf[j]
        i += k


def load_layer(info, w, a, sumsq=None, bias=None, path=None, scale=None, f=None):
    """Read a layer's weights into w[:n] and, when stored and asked for (not None), its
    activations into a[:act_len], its sums of squares into sumsq[:cols], its biases into
    bias[:rows] and its scale multipliers into scale[:rows] (arrays); f: the model file,
    open (a prune of many layers opens it once: a file object is not small on a
    board), else it is opened here."""
    if f is None:
        with open(path or MODEL_PATH, "rb") as f:
            _load(info, w, a, sumsq, bias, scale, f)
    else:
        _load(info, w, a, sumsq, bias, scale, f)


def _load(info, w, a, sumsq, bias, scale, f):
    f.seek(info.offset)
    if f.readinto(memoryview(w)[:info.n]) != info.n:
        raise errors.truncated("layer " + info.name)
    if info.act_len:  # the sums, when stored, follow the activations
        if a is None:
            f.seek(info.offset + info.n + info.act_len)
        elif f.readinto(memoryview(a)[:info.act_len]) != info.act_len:
            raise errors.truncated("activations of " + info.name)
    if info.calib and sumsq is not None:
        read_ints(f, SUM, sumsq, info.cols)
    if info.quant and bias is not None:
        f.seek(info.bias_offset)
        read_ints(f, BIAS, bias, info.rows)
    if info.scaled and scale is not None:
        f.seek(info.scale_offset)
        read_ints(f, SCALE, scale, info.rows)


def load_bias(info, bias, f):
    """A quantized layer's biases into bias[:rows], from its open model file f."""
    f.seek(info.bias_offset)
    read_ints(f, BIAS, bias, info.rows)


def requant_params(info, path=None):
    """(multiplier, shift) of a quantized layer: its two ints, or for a per-channel one
    two lists of one per row (setup code: allocates)."""
    if info.quant != QUANT_CHANNEL:
        return info.multiplier, info.shift
    mult, shift = [0] * info.rows, [0] * info.rows
    with open(path or MODEL_PATH, "rb") as f:
        f.seek(info.channel_offset)
        read_ints(f, MULT, mult, info.rows)
        read_ints(f, SHIFT, shift, info.rows)
    return mult, shift


def model_id(layers):
    """CRC-32 of every layer's name, shape and CRC: which model this is."""
    from .link import crc32_halves
    head = b"".join(l.record_header() for l in layers)
    lo, hi = crc32_halves(head, len(head))
    return lo | (hi << 16)


# -- masks.bin --------------------------------------------------------------------------

class MaskInfo:
    def __init__(self, name, method, tie, bp, min_keep, min_score, n, rows, cols, offset,
                 seed=0, br=0, bc=0, nm_n=0, nm_m=0, steps=0, scope="layer"):
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
        self.seed = seed
        self.br = br
        self.bc = bc
        self.nm_n = nm_n
        self.nm_m = nm_m
        self.steps = steps
        self.scope = scope

    @property
    def nbytes(self):
        return ((self.n + 31) >> 5) << 2

    body_len = nbytes

    def write_header(self, f):
        """Write this mask's record header (a kept mask, copied into a new masks file)."""
        write_mask_header(f, self.name, self.method, self.tie, self.bp, self.min_keep,
                          self.min_score, self.n, self.rows, self.cols, self.seed, self.br,
                          self.bc, self.nm_n, self.nm_m, self.steps, self.scope)


def write_mask_header(f, name, method, tie, bp, min_keep, min_score, n, rows, cols, seed=0,
                      br=0, bc=0, nm_n=0, nm_m=0, steps=0, scope="layer"):
    """Write a mask's record header: its name, then MASK_RECORD. In pieces, and from the
    values rather than a MaskInfo: a prune writes one per layer, and a MaskInfo and the
    joined bytes were ~0.3 KB of garbage each."""
    name = name.encode()
    f.write(bytes((len(name),)))
    f.write(name)
    f.write(struct.pack(MASK_RECORD, SCORERS.index(method), TIES.index(tie), bp, min_keep,
                        min_score, n, rows, cols, seed, br, bc, nm_n, nm_m, steps,
                        SCOPES.index(scope)))


def read_masks_index(path=None):
    """(model id, [MaskInfo]) of a masks file."""
    return _read_index(path or MASKS_PATH, MASKS_MAGIC, "masks", MASK_RECORD, _MASK_SIZE,
                       lambda name, v, pos: MaskInfo(name, SCORERS[v[0]], TIES[v[1]], v[2],
                                                     v[3], v[4], v[5], v[6], v[7], pos,
                                                     v[8], v[9], v[10], v[11], v[12], v[13],
                                                     SCOPES[v[14]]))


def write_header(f, magic, ident, count):
    f.write(magic)
    f.write(struct.pack(STORE_HEAD, ident, count))
