# push(): receive a model over the link into /prune8/model.bin (docs/protocol.md).
#
# Frames BEGIN (layer count), then per layer LAYER (its header) and DATA (its bytes), or
# KEEP (copy it from the stored model), then END, which commits the new model.bin and
# replies with its id. Nothing is committed unless the whole model arrived.

import struct
from array import array

from . import check, dense, errors, scores, store
from .link import crc32_halves
from .profile import MAX_UNITS, MAX_WEIGHTS
from .protocol import (
    BEGIN,
    BEGIN_FMT,
    DATA,
    END,
    KEEP,
    LAYER,
    LAYER_FMT,
    MODEL_ID_FMT,
    MODEL_MAGIC,
    MODEL_PATH,
    MULT,
    QUANT_CHANNEL,
    QUANT_TENSOR,
    SCALE,
    SHIFT,
    SUM,
)
from .receiver import Receiver

_LAYER_FMT_SIZE = struct.calcsize(LAYER_FMT)


class ModelReceiver(Receiver):
    """One push: the temporary file, the layer being filled, what was written."""

    doing = "saving the model"

    def __init__(self, link=None):
        Receiver.__init__(self, link)
        self.handlers = {BEGIN: self.begin, LAYER: self.layer, DATA: self.data,
                         KEEP: self.keep, END: self.end}
        self.w = bytearray(MAX_WEIGHTS)
        self.a = bytearray(MAX_WEIGHTS)
        self.sumsq = array("i", bytes(4 * MAX_UNITS))   # Wanda sums of the layer
        # what follows the sums, as received: biases (4), per-channel multipliers (4) and
        # shifts (1), scale multipliers (2) per row
        self.tail = bytearray(11 * MAX_UNITS)
        self.col = 0
        self.f = None
        self.tmp = store.tmp_path(MODEL_PATH)
        self.layers = []
        self.count = 0
        self.cur = None
        self.got = 0

    def begin(self, payload):
        self.count = struct.unpack(BEGIN_FMT, payload)[0]
        store.ensure_root()
        self.f = open(self.tmp, "wb")
        store.write_header(self.f, MODEL_MAGIC, 0, self.count)

    def layer(self, payload):
        k = payload[0]
        name = bytes(payload[1:1 + k]).decode()
        (rows, cols, act_len, calib, quant, mult, shift, in_zp, out_zp, relu,
         scaled) = struct.unpack(LAYER_FMT, payload[1 + k:1 + k + _LAYER_FMT_SIZE])
        n = rows * cols
        # Same checks and messages as a Pruner call on this layer would give.
        if n == 0:
            raise errors.empty("weights")
        if n > MAX_WEIGHTS:
            raise errors.capacity_weights(n, MAX_WEIGHTS)
        if rows > MAX_UNITS:
            raise errors.capacity_units("rows", rows, MAX_UNITS)
        if cols > MAX_UNITS:
            raise errors.capacity_units("cols", cols, MAX_UNITS)
        if act_len not in (0, cols, n):
            raise errors.activations_mismatch(act_len, n, cols)
        if calib > 65536:  # 65536 * 128 * 128 = 2**30: sums past that would saturate
            raise ValueError("%d calibration samples: at most 65536" % calib)
        if quant > QUANT_CHANNEL or scaled > 1:
            raise ValueError("unknown quantization %d or scale flag %d" % (quant, scaled))
        if quant == QUANT_TENSOR:  # the same checks as building the layer's Dense would make
            dense.multiplier_limbs(mult)
            dense.check_int("shift", shift, -31, 30)
        self.cur = store.LayerInfo(name, rows, cols, act_len, calib, 0, 0, quant, mult, shift,
                                   in_zp, out_zp, relu, scaled)
        self.got = 0
        self.col = 0
        for c in range(cols):
            self.sumsq[c] = 0

    def data(self, payload):
        """A layer's bytes in order: weights and activations into the buffers, calibration
        samples straight into the per-column sums of squares (never held whole), then the
        tail (store.LayerInfo: biases, per-channel parameters, scale multipliers)."""
        cur = self.cur
        if cur is None:
            raise ValueError("data before a layer header")
        n, na = cur.n, cur.act_len
        ends = (n, n + na, n + na + cur.calib * cur.cols,
                n + na + cur.calib * cur.cols + cur.tail_len)
        m = len(payload)
        if self.got + m > ends[3]:
            raise ValueError("data beyond the announced layer")
        pos, i = self.got, 0
        while i < m:
            if pos < ends[0]:
                k = min(m - i, ends[0] - pos)
                self.w[pos:pos + k] = payload[i:i + k]
            elif pos < ends[1]:
                k = min(m - i, ends[1] - pos)
                self.a[pos - n:pos - n + k] = payload[i:i + k]
            elif pos < ends[2]:
                k = min(m - i, ends[2] - pos)
                self.col = scores.add_squares(self.sumsq, payload[i:i + k], k, self.col,
                                              cur.cols)
            else:
                k = m - i
                self.tail[pos - ends[2]:pos - ends[2] + k] = payload[i:i + k]
            i, pos = i + k, pos + k
        self.got = pos
        if self.got == ends[3]:
            self._write_layer()

    def _write_layer(self):
        cur = self.cur
        w = memoryview(self.w)[:cur.n]
        a = memoryview(self.a)[:cur.act_len]
        sums = b""
        if cur.calib:
            sums = b"".join(struct.pack(SUM, self.sumsq[c]) for c in range(cur.cols))
        tail = bytes(self.tail[:cur.tail_len])
        self._check_tail(cur, tail)
        data = bytes(w) + bytes(a) + sums + tail
        c = crc32_halves(data, len(data))
        cur.crc = c[0] | (c[1] << 16)
        self.f.write(cur.record_header())
        self.f.write(data)
        self.layers.append(cur)
        self.cur = None

    def _check_tail(self, cur, tail):
        """Per-channel parameters and scale multipliers: the checks Dense and the
        scale-aware score make, before anything is written."""
        rows = cur.rows
        if cur.quant == QUANT_CHANNEL:
            for r in range(rows):
                dense.multiplier_limbs(struct.unpack_from(MULT, tail, 4 * rows + 4 * r)[0])
                dense.check_int("shift", struct.unpack_from(SHIFT, tail, 8 * rows + r)[0],
                                -31, 30)
        if cur.scaled:
            at = cur.scale_offset - cur.bias_offset
            for r in range(rows):
                check.scale_value(struct.unpack_from(SCALE, tail, at + 2 * r)[0], r)

    def keep(self, payload):
        """Copy a layer record unchanged from the current model.bin."""
        name = bytes(payload).decode()
        _, layers = store.read_model_index()
        for info in layers:
            if info.name == name:
                break
        else:
            raise ValueError("the board's model has no layer %r to keep" % name)
        self.f.write(info.record_header())
        with open(MODEL_PATH, "rb") as src:
            src.seek(info.offset)
            left = info.data_len
            mv = memoryview(self.w)
            while left:
                k = src.readinto(mv[:min(left, MAX_WEIGHTS)])
                if not k:
                    raise errors.StoreError("truncated layer %s" % name)
                self.f.write(mv[:k])
                left -= k
        self.layers.append(info)

    def end(self, payload):
        if len(self.layers) != self.count:
            raise ValueError("model announced %d layers, got %d" % (self.count,
                                                                     len(self.layers)))
        mid = struct.pack(MODEL_ID_FMT, store.model_id(self.layers))
        self.f.seek(len(MODEL_MAGIC))  # the id leads STORE_HEAD
        self.f.write(mid)
        self.f.close()
        self.f = None
        store.commit(self.tmp, MODEL_PATH)
        self.done = True
        return mid

    def close(self):
        if self.f is not None:
            self.f.close()
            self.f = None
            store.discard(self.tmp)


def push():
    """Receive a model (docs/protocol.md) and commit it as /prune8/model.bin."""
    ModelReceiver().serve()
