# Commands the host runs on the board through the raw REPL (prune8_host.session).
#
#   push()      receive a model over the link into /prune8/model.bin
#   files()     serve files under /prune8/ over the link (masks, model index)
#   prune(...)  score and mask the stored model; write /prune8/masks.bin
#   ls(), info()  print one JSON line
#
# push() and files() disable Ctrl-C (so 0x03 in the data is data) and restore it
# when they return, also on an error.

import json
import os
import struct
import sys

from . import __version__, errors, store
from .board import MAX_UNITS, MAX_WEIGHTS, NAME
from .link import REPLY, Link, crc32_halves

try:
    import micropython
except ImportError:  # CPython
    micropython = None

_B, _L, _D, _K, _E, _O, _R, _X = b"BLDKEORX"
INTERRUPT_CHAR = 3  # MicroPython's default Ctrl-C; restored when a receiver returns


def _kbd_intr(ch):
    if micropython is not None and hasattr(micropython, "kbd_intr"):
        micropython.kbd_intr(ch)


def _oserror_text(e, doing):
    code = e.args[0] if e.args else 0
    if code == 28:  # ENOSPC
        return "board filesystem is full while %s (ENOSPC): the previous version is kept" % doing
    return "board error while %s: %r" % (doing, e)


def info():
    """Firmware version, capacity and free heap, as one JSON line."""
    import gc
    gc.collect()
    impl = sys.implementation
    print(json.dumps({"prune8": __version__, "board": NAME, "max_weights": MAX_WEIGHTS,
                      "max_units": MAX_UNITS, "micropython": list(impl.version[:3]),
                      "mem_free": gc.mem_free(), "mem_alloc": gc.mem_alloc()}))


# -- push ---------------------------------------------------------------------------------

class _Receiver:
    """State of one push: the temporary file, the layer being filled, what was written."""

    def __init__(self, link):
        self.link = link
        self.w = bytearray(MAX_WEIGHTS)
        self.a = bytearray(MAX_WEIGHTS)
        self.f = None
        self.tmp = store.MODEL + ".tmp"
        self.layers = []
        self.count = 0
        self.cur = None
        self.got = 0

    def begin(self, payload):
        self.count = struct.unpack("<H", payload)[0]
        store.ensure_root()
        self.f = open(self.tmp, "wb")
        store.write_header(self.f, store.MODEL_MAGIC, 0, self.count)

    def layer(self, payload):
        k = payload[0]
        name = bytes(payload[1:1 + k]).decode()
        rows, cols, act_len = struct.unpack("<HHI", payload[1 + k:9 + k])
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
        self.cur = store.LayerInfo(name, rows, cols, act_len, 0, 0)
        self.got = 0

    def data(self, payload):
        cur = self.cur
        n, m = cur.n, len(payload)
        if cur is None or self.got + m > n + cur.act_len:
            raise ValueError("data beyond the announced layer")
        start = self.got
        if start < n:  # weights first, then activations
            k = min(m, n - start)
            self.w[start:start + k] = payload[:k]
            if k < m:
                self.a[0:m - k] = payload[k:]
        else:
            self.a[start - n:start - n + m] = payload
        self.got += m
        if self.got == n + cur.act_len:
            self._write_layer()

    def _write_layer(self):
        cur = self.cur
        w = memoryview(self.w)[:cur.n]
        a = memoryview(self.a)[:cur.act_len]
        c = crc32_halves(bytes(w) + bytes(a), cur.n + cur.act_len)
        cur.crc = c[0] | (c[1] << 16)
        self.f.write(cur.record_header())
        self.f.write(w)
        if cur.act_len:
            self.f.write(a)
        self.layers.append(cur)
        self.cur = None

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
        with open(store.MODEL, "rb") as src:
            src.seek(info.offset)
            left = info.n + info.act_len
            mv = memoryview(self.w)
            while left:
                k = src.readinto(mv[:min(left, MAX_WEIGHTS)])
                if not k:
                    raise store.StoreError("truncated layer %s" % name)
                self.f.write(mv[:k])
                left -= k
        self.layers.append(info)

    def end(self):
        if len(self.layers) != self.count:
            raise ValueError("model announced %d layers, got %d" % (self.count,
                                                                     len(self.layers)))
        mid = store.model_id(self.layers)
        self.f.seek(4)
        self.f.write(struct.pack("<I", mid))
        self.f.close()
        self.f = None
        store.commit(self.tmp, store.MODEL)
        return mid

    def close(self):
        if self.f is not None:
            self.f.close()
            self.f = None
            store.discard(self.tmp)


def push():
    """Receive a model (docs/protocol.md) and commit it as /prune8/model.bin."""
    link = Link()
    rx = _Receiver(link)
    _kbd_intr(-1)
    try:
        while True:
            t = link.recv()
            if link.duplicate:  # delivered twice: answer again, apply once
                link.ok()
                continue
            try:
                if t == _X:
                    link.ok()
                    return
                if t == _B:
                    rx.begin(link.payload())
                elif t == _L:
                    rx.layer(link.payload())
                elif t == _D:
                    rx.data(link.payload())
                elif t == _K:
                    rx.keep(link.payload())
                elif t == _E:
                    link.send(REPLY, struct.pack("<I", rx.end()))
                    return
                else:
                    raise ValueError("unexpected frame type %d during push" % t)
            except OSError as e:
                link.error(_oserror_text(e, "saving the model"))
                return
            except Exception as e:  # reported to the host, which raises it there
                link.error("%s: %s" % (type(e).__name__, e))
                return
            link.ok()
    finally:
        rx.close()
        _kbd_intr(INTERRUPT_CHAR)


# -- files -----------------------------------------------------------------------------

def files():
    """Serve reads of files under /prune8/ until the host ends the session."""
    link = Link()
    chunk = bytearray(256)
    mv = memoryview(chunk)
    f = None
    _kbd_intr(-1)
    try:
        while True:
            t = link.recv()
            try:
                if t == _X or t == _E:
                    link.ok()
                    return
                if t == _O:
                    path = bytes(link.payload()).decode()
                    if not path.startswith(store.ROOT + "/") or ".." in path:
                        raise ValueError("only files under %s/ can be read" % store.ROOT)
                    if f is not None:
                        f.close()
                    f = open(path, "rb")
                    link.send(REPLY, struct.pack("<I", os.stat(path)[6]))
                elif t == _R:
                    off, n = struct.unpack("<IH", link.payload())
                    f.seek(off)
                    got = f.readinto(mv[:min(n, 256)])
                    if not got:
                        raise ValueError("read past the end of the file")
                    link.send(REPLY, mv, got)
                else:
                    raise ValueError("unexpected frame type %d while serving files" % t)
            except OSError as e:
                link.error(_oserror_text(e, "reading a file"))
            except Exception as e:
                link.error("%s: %s" % (type(e).__name__, e))
    finally:
        if f is not None:
            f.close()
        _kbd_intr(INTERRUPT_CHAR)


# -- prune ----------------------------------------------------------------------------

def _score(p, method, info, w, a):
    # Score the first n bytes of the preallocated buffers in place: a memoryview slice
    # is a view, not a second copy of the layer.
    wv = memoryview(w)[:info.n]
    if method == "magnitude":
        p.magnitude(wv)
    elif method == "gradient":
        if not info.act_len:
            raise ValueError("layer %r has no activations for the gradient proxy: push the "
                             "model with %s.act" % (info.name, info.name))
        p.gradient(wv, memoryview(a)[:info.act_len],
                   None if info.act_len == info.n else info.cols)
    elif method == "mincut":
        p.mincut(wv, info.rows, info.cols)
    elif method == "rows":
        p.rows(wv, info.rows, info.cols)
    else:
        p.cols(wv, info.rows, info.cols)


def prune(method, sparsity_bp, tie="exact", min_keep=1, min_score=0, layers=None):
    """Mask the stored model's layers; write /prune8/masks.bin. Prints one JSON line."""
    from .pruner import Pruner
    try:
        if method not in store.METHODS:
            raise errors.option("method", method, store.METHODS)
        mid, index = store.read_model_index()
        names = [i.name for i in index]
        for name in layers or ():
            if name not in names:
                raise ValueError("no layer %r on the board (layers: %s)"
                                 % (name, ", ".join(names)))
        chosen = [i for i in index if not layers or i.name in layers]
        kept = []  # masks of other layers that stay valid for this model
        if layers and store.exists(store.MASKS):
            old_id, old = store.read_masks_index()
            if old_id == mid:
                kept = [m for m in old if m.name not in layers]
        p = Pruner(MAX_WEIGHTS, MAX_UNITS)
        w = bytearray(MAX_WEIGHTS)
        a = bytearray(MAX_WEIGHTS)
        tmp = store.MASKS + ".tmp"
        report = []
        f = open(tmp, "wb")
        done = False
        try:  # try/finally, not a bare re-raise: the native emitter has no bare raise
            store.write_header(f, store.MASKS_MAGIC, mid, len(kept) + len(chosen))
            for m in kept:
                f.write(m.record_header())
                with open(store.MASKS, "rb") as src:
                    src.seek(m.offset)
                    f.write(src.read(m.nbytes))
            for info in chosen:
                store.load_layer(info, w, a)
                _score(p, method, info, w, a)
                mask = p.mask(sparsity_bp=sparsity_bp, tie=tie, min_keep=min_keep,
                              min_score=min_score)
                minfo = store.MaskInfo(info.name, method, tie, sparsity_bp, min_keep,
                                       min_score, mask.n, info.rows, info.cols, 0)
                f.write(minfo.record_header())
                f.write(mask.bytes())
                report.append({"layer": info.name, "n": mask.n, "pruned": mask.pruned})
            done = True
        finally:
            f.close()
            if not done:
                store.discard(tmp)
        store.commit(tmp, store.MASKS)
        print(json.dumps({"ok": True, "model_id": mid, "layers": report}))
    except OSError as e:
        print(json.dumps({"ok": False, "error": _oserror_text(e, "saving the masks")}))
    except Exception as e:
        print(json.dumps({"ok": False, "error": str(e), "type": type(e).__name__}))


# -- ls -----------------------------------------------------------------------------------

def _count_pruned(path, info):
    with open(path, "rb") as f:
        f.seek(info.offset)
        data = f.read(info.nbytes)
    kept = 0
    for b in data:
        while b:
            kept += b & 1
            b >>= 1
    return info.n - kept


def ls():
    """What is stored under /prune8/, as one JSON line."""
    out = {"files": [], "model": None, "masks": None}
    if store.exists(store.ROOT):
        for name in sorted(os.listdir(store.ROOT)):
            out["files"].append([name, os.stat(store.ROOT + "/" + name)[6]])
    try:
        mid, layers = store.read_model_index()
        out["model"] = {"id": mid, "layers": [
            {"name": l.name, "rows": l.rows, "cols": l.cols, "act": l.act_len, "crc": l.crc}
            for l in layers]}
    except (OSError, store.StoreError):
        mid = None
    try:
        kid, masks = store.read_masks_index()
        out["masks"] = {"model_id": kid, "stale": kid != mid, "layers": [
            {"name": m.name, "method": m.method, "tie": m.tie, "sparsity_bp": m.bp,
             "n": m.n, "pruned": _count_pruned(store.MASKS, m)} for m in masks]}
    except (OSError, store.StoreError):
        pass
    print(json.dumps(out))
