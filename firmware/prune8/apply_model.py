# apply(): the stored model with its masks applied, written tile by tile as a model file
# of its own (/prune8/pruned.bin, in model.bin's format): the pruned weights on the
# board's flash, whatever the size of the layers. Its layers run without masks as the
# model runs with them (the masked model of docs/spec.md §4.3,
# prune8_host.twin.reference.masked_model: a pruned row's bias is zeroed too). model.bin
# and masks.bin stay as they are. Prints one JSON line.

import json
import struct

from . import errors, scorers, store
from .formats import BIAS, MASKS_PATH, MODEL_MAGIC, MODEL_PATH, PRUNED_PATH
from .link import crc32_halves
from .profile import MAX_WEIGHTS
from .tiles import ROW, TiledMask, read_into


class _Writer:
    """Writes a layer's bytes to the new file (out; None: writes nothing), keeping their
    CRC-32."""

    def __init__(self, out, buf):
        self.out = out
        self.buf = buf
        self.view = memoryview(buf)
        self.lo = 0
        self.hi = 0

    def put(self, m):
        """Write the first m bytes of the buffer."""
        v = self.view[:m]
        if self.out is not None:
            self.out.write(v)
        self.lo, self.hi = crc32_halves(v, m, self.lo, self.hi)

    def copy(self, src, count, what, edit=None):
        """Copy count bytes from src, a buffer at a time; edit(buf, m, done) may change
        each piece before it is written (done: bytes of the run before it)."""
        size = len(self.buf) - len(self.buf) % 4  # whole biases in every piece
        done = 0
        while done < count:
            m = count - done if count - done < size else size
            read_into(src, self.view, m, what)
            if edit is not None:
                edit(self.buf, m, done)
            self.put(m)
            done += m


def _copy_layer(info, src, out, buf, tiled):
    """Write one layer's record and data to out with its mask applied; returns the CRC
    of the data. With out None nothing is written: the pass that works the CRC out
    before the record is written (its header holds it)."""
    if out is not None:
        out.write(info.record_header())
    wr = _Writer(out, buf)
    what = "layer " + info.name
    src.seek(info.offset)
    zero = None if tiled is None else (lambda b, m, done: tiled.zero(b, 0, m, done))
    wr.copy(src, info.n, what, zero)                       # the weights
    before = info.bias_offset - info.offset - info.n if info.quant else info.data_len - info.n
    wr.copy(src, before, what)                             # activations, sums
    if info.quant:
        cut = None
        if tiled is not None and tiled.unit == ROW:
            def cut(b, m, done):  # the biases of pruned rows
                for j in range(m >> 2):
                    r = (done >> 2) + j
                    if not (tiled.bits[r >> 3] >> (r & 7)) & 1:
                        struct.pack_into(BIAS, b, 4 * j, 0)
        wr.copy(src, 4 * info.rows, what, cut)             # biases
        wr.copy(src, info.offset + info.data_len - info.channel_offset, what)  # the rest
    return wr.lo | (wr.hi << 16)


def _mask_of(info, masks, mf, buf):
    m = masks.get(info.name)
    if m is None:
        return None
    tiled = TiledMask(scorers.unit(m.method), info.rows, info.cols, m.br, m.bc, len(buf))
    tiled.attach(mf, m.offset)
    return tiled


def apply(path=PRUNED_PATH):
    """Write the stored model with its current masks applied to `path`."""
    try:
        mid, index = store.read_model_index()
        masks = {}
        if store.exists(MASKS_PATH):
            kid, stored = store.read_masks_index()
            if kid == mid:
                masks = {m.name: m for m in stored}
        if not masks:
            raise errors.no_masks()
        buf = bytearray(MAX_WEIGHTS)
        with open(MODEL_PATH, "rb") as src, open(MASKS_PATH, "rb") as mf:
            # Two passes, so the file is written front to back: the first works out
            # every layer's CRC and the model id that the headers hold (on LittleFS a
            # byte written behind a file's end costs a copy of the rest of the file;
            # reading the layers twice costs no flash erase)
            for info in index:
                info.crc = _copy_layer(info, src, None, buf, _mask_of(info, masks, mf, buf))
            new_id = store.model_id(index)
            with store.Replacing(path) as out:
                store.write_header(out, MODEL_MAGIC, new_id, len(index))
                for info in index:
                    _copy_layer(info, src, out, buf, _mask_of(info, masks, mf, buf))
        print(json.dumps({"ok": True, "path": path, "model_id": new_id,
                          "layers": [i.name for i in index]}))
    except OSError as e:
        print(json.dumps({"ok": False, "error": store.oserror_text(e, "saving the pruned model")}))
    except Exception as e:
        print(json.dumps({"ok": False, "error": str(e), "type": type(e).__name__}))
