# push(): receive a model over the link into /prune8/model.bin (docs/protocol.md; what
# a stored layer may be: docs/spec.md §5.3).
#
# Frames BEGIN (layer count), then per layer LAYER (its header) and DATA (its bytes), or
# KEEP (copy it from the stored model), then END, which commits the new model.bin and
# replies with its id. Nothing is committed unless the whole model arrived.

import struct
from array import array

from . import check, errors, quant_params, scores, store
from .block_writer import BlockWriter
from .errors import MAX_UNITS_LIMIT
from .formats import MODEL_MAGIC, MODEL_PATH, MULT, QUANT_CHANNEL, QUANT_TENSOR, SCALE, SHIFT, SUM
from .link import crc32_halves
from .protocol import (
    BEGIN,
    BEGIN_FMT,
    CRC,
    DATA,
    END,
    KEEP,
    LAYER,
    LAYER_FMT,
    MAX_PAYLOAD,
    MODEL_ID_FMT,
)
from .receiver import Receiver

_LAYER_FMT_SIZE = struct.calcsize(LAYER_FMT)


class ModelReceiver(Receiver):
    """One push: the temporary file, the layer being written, what was written.

    A layer goes to the file as its bytes arrive (it may be far bigger than RAM), in
    whole 4 KB blocks (BlockWriter), behind a record header that carries the CRC the
    host announced, checked when the layer is complete; calibration samples are folded
    into the per-column sums of squares on the way. The file is only ever appended to:
    LittleFS copies every block after a byte written behind the end (a CRC or model id
    not announced is filled in that way, at that price). RAM: the block, and per layer
    the sums (4 * cols bytes)."""

    doing = "saving the model"

    def __init__(self, link=None):
        Receiver.__init__(self, link)
        self.handlers = {BEGIN: self.begin, LAYER: self.layer, DATA: self.data,
                         KEEP: self.keep, END: self.end}
        self.copy = bytearray(MAX_PAYLOAD)   # KEEP's copy buffer
        self.sumsq = None
        self.col = 0
        self.f = None
        self.tmp = store.tmp_path(MODEL_PATH)
        self.layers = []
        self.count = 0
        self.cur = None
        self.got = 0
        self.crc_at = 0     # file offset of the current layer's CRC
        self.lo = 0         # its running CRC-32, in halves
        self.hi = 0
        self.value = bytearray(4)   # a tail value split across frames
        self.model_id = 0   # the id BEGIN announced (0: none)

    def begin(self, payload):
        self.count, self.model_id = struct.unpack(BEGIN_FMT, payload)
        store.ensure_root()
        self.f = BlockWriter(open(self.tmp, "wb"))
        store.write_header(self.f, MODEL_MAGIC, self.model_id, self.count)

    def layer(self, payload):
        k = payload[0]
        name = bytes(payload[1:1 + k]).decode()
        (rows, cols, act_len, calib, quant, mult, shift, in_zp, out_zp, relu, scaled,
         crc) = struct.unpack(LAYER_FMT, payload[1 + k:1 + k + _LAYER_FMT_SIZE])
        n = rows * cols
        # Same checks and messages as the host gives (prune8_host.files.records): any
        # size the filesystem holds, rows and columns within the kernels' limit.
        if n == 0:
            raise errors.empty("weights")
        if rows > MAX_UNITS_LIMIT:
            raise errors.capacity_units("rows", rows, MAX_UNITS_LIMIT)
        if cols > MAX_UNITS_LIMIT:
            raise errors.capacity_units("cols", cols, MAX_UNITS_LIMIT)
        if act_len not in (0, cols, n):
            raise errors.activations_mismatch(act_len, n, cols)
        if calib > 65536:  # 65536 * 128 * 128 = 2**30: sums past that would saturate
            raise errors.calib_samples(calib)
        if quant > QUANT_CHANNEL or scaled > 1:
            raise errors.layer_format(quant, scaled)
        if quant == QUANT_TENSOR:  # the same checks as building the layer's Dense would make
            quant_params.multiplier(mult)
            quant_params.int_in("shift", shift, -31, 30)
        # the record goes to the file with the announced CRC (0: filled in at the end)
        cur = store.LayerInfo(name, rows, cols, act_len, calib, crc, 0, quant, mult, shift,
                              in_zp, out_zp, relu, scaled)
        self.cur = cur
        self.got = 0
        self.col = 0
        self.sumsq = array("i", bytes(4 * cols)) if calib else None
        self.lo = self.hi = 0
        self.crc_at = self.f.tell() + 1 + len(name.encode()) + store.CRC_AT
        self.f.write(cur.record_header())

    def _put(self, data):
        """Append stored bytes of the current layer to the file and to its CRC."""
        self.f.write(data)
        self.lo, self.hi = crc32_halves(data, len(data), self.lo, self.hi)

    def data(self, payload):
        """A layer's bytes in order: weights and activations straight to the file,
        calibration samples into the per-column sums of squares (stored when the last
        sample is in), then the tail (store.LayerInfo: biases, per-channel parameters,
        scale multipliers), checked value by value."""
        cur = self.cur
        if cur is None:
            raise errors.data_before_layer()
        n, na = cur.n, cur.act_len
        ends = (n + na, n + na + cur.calib * cur.cols,
                n + na + cur.calib * cur.cols + cur.tail_len)
        m = len(payload)
        if self.got + m > ends[2]:
            raise errors.data_beyond_layer()
        pos, i = self.got, 0
        mv = memoryview(payload)
        while i < m:
            if pos < ends[0]:
                k = min(m - i, ends[0] - pos)
                self._put(mv[i:i + k])
            elif pos < ends[1]:
                k = min(m - i, ends[1] - pos)
                self.col = scores.add_squares(self.sumsq, mv[i:i + k], k, self.col,
                                              cur.cols)
            else:
                k = m - i
                self._check_tail(mv[i:i + k], pos - ends[1])
                self._put(mv[i:i + k])
            i, pos = i + k, pos + k
            if pos == ends[1] and cur.calib and self.sumsq is not None:
                sums = b"".join(struct.pack(SUM, v) for v in self.sumsq)
                self._put(sums)
                self.sumsq = None
        self.got = pos
        if pos == ends[2]:
            self._end_layer()

    def _end_layer(self):
        cur = self.cur
        crc = self.lo | (self.hi << 16)
        if cur.crc == 0:  # not announced: into the record written before the layer
            cur.crc = crc
            self.f.patch(self.crc_at, struct.pack(CRC, crc))
        elif crc != cur.crc:
            raise errors.layer_crc_mismatch(cur.name, crc, cur.crc)
        self.layers.append(cur)
        self.cur = None

    def _check_tail(self, data, at):
        """Per-channel parameters and scale multipliers, value by value as their bytes
        arrive (at: the first byte's offset in the tail): the checks Dense and the
        scale-aware score make, before the model is committed."""
        cur = self.cur
        rows = cur.rows
        mult_at = 4 * rows if cur.quant == QUANT_CHANNEL else -1  # after the biases
        shift_at = 8 * rows
        scale_at = cur.scale_offset - cur.bias_offset if cur.scaled else -1
        value = self.value
        for j in range(len(data)):
            t = at + j
            if 0 <= mult_at <= t < shift_at:
                value[(t - mult_at) & 3] = data[j]
                if (t - mult_at) & 3 == 3:
                    quant_params.multiplier(struct.unpack(MULT, value)[0])
            elif 0 <= mult_at and shift_at <= t < shift_at + rows:
                value[0] = data[j]
                quant_params.int_in("shift", struct.unpack(SHIFT, value[:1])[0], -31, 30)
            elif 0 <= scale_at <= t:
                value[(t - scale_at) & 1] = data[j]
                if (t - scale_at) & 1:
                    check.scale_value(struct.unpack(SCALE, value[:2])[0], (t - scale_at) >> 1)

    def keep(self, payload):
        """Copy a layer record unchanged from the current model.bin."""
        name = bytes(payload).decode()
        _, layers = store.read_model_index()
        for info in layers:
            if info.name == name:
                break
        else:
            raise errors.no_layer_to_keep(name)
        self.f.write(info.record_header())
        with open(MODEL_PATH, "rb") as src:
            src.seek(info.offset)
            store.copy_bytes(src, self.f, info.data_len, self.copy, "layer " + name)
        self.layers.append(info)

    def end(self, payload):
        if len(self.layers) != self.count:
            raise errors.layer_count(self.count, len(self.layers))
        got = store.model_id(self.layers)
        mid = struct.pack(MODEL_ID_FMT, got)
        if self.model_id == 0:  # not announced: the id leads STORE_HEAD
            self.f.patch(len(MODEL_MAGIC), mid)
        elif got != self.model_id:
            raise errors.model_id_mismatch(got, self.model_id)
        self.f.close()
        self.f = None
        store.commit(self.tmp, MODEL_PATH)
        self.done = True
        return mid

    def close(self):
        if self.f is not None:
            self.f.close(keep=False)
            self.f = None
            store.discard(self.tmp)


def push():
    """Receive a model (docs/protocol.md) and commit it as /prune8/model.bin."""
    ModelReceiver().serve()
