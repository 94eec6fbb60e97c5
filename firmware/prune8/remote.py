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
from array import array

from . import __version__, dense, errors, scores, store
from .board import MAX_UNITS, MAX_WEIGHTS, NAME
from .link import REPLY, Link, crc32_halves

try:
    import micropython
except ImportError:  # CPython
    micropython = None

_B, _L, _D, _K, _E, _O, _R, _X, _W, _C, _I = b"BLDKEORXWCI"
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
        self.sumsq = array("i", bytes(4 * MAX_UNITS))   # Wanda sums of the layer
        self.bias = bytearray(4 * MAX_UNITS)           # int32 biases, as received
        self.col = 0
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
        rows, cols, act_len, calib = struct.unpack("<HHII", payload[1 + k:13 + k])
        quant, mult, shift, in_zp, out_zp, relu = struct.unpack("<BibbbB",
                                                                payload[13 + k:22 + k])
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
        if quant:  # the same checks as building the layer's Dense would make
            dense.multiplier_limbs(mult)
            dense.check_int("shift", shift, -31, 30)
        self.cur = store.LayerInfo(name, rows, cols, act_len, calib, 0, 0, quant, mult, shift,
                                   in_zp, out_zp, relu)
        self.got = 0
        self.col = 0
        for c in range(cols):
            self.sumsq[c] = 0

    def data(self, payload):
        """A layer's bytes in order: weights and activations into the buffers, calibration
        samples straight into the per-column sums of squares (never held whole), then the
        biases of a quantized layer."""
        cur = self.cur
        if cur is None:
            raise ValueError("data before a layer header")
        n, na = cur.n, cur.act_len
        ends = (n, n + na, n + na + cur.calib * cur.cols,
                n + na + cur.calib * cur.cols + (4 * cur.rows if cur.quant else 0))
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
                self.bias[pos - ends[2]:pos - ends[2] + k] = payload[i:i + k]
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
            sums = b"".join(struct.pack("<I", self.sumsq[c]) for c in range(cur.cols))
        bias = bytes(self.bias[:4 * cur.rows]) if cur.quant else b""
        data = bytes(w) + bytes(a) + sums + bias
        c = crc32_halves(data, len(data))
        cur.crc = c[0] | (c[1] << 16)
        self.f.write(cur.record_header())
        self.f.write(data)
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
            left = info.data_len
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

def _store_path(payload):
    path = bytes(payload).decode()
    if not path.startswith(store.ROOT + "/") or ".." in path:
        raise ValueError("only files under %s/ can be read or written" % store.ROOT)
    return path


def files():
    """Serve reads and writes of files under /prune8/ until the host ends the session.

    Writes go to PATH.tmp and become PATH on commit (frame C), so an interrupted write
    never replaces a file with a partial one.
    """
    link = Link()
    chunk = bytearray(256)
    mv = memoryview(chunk)
    f = None
    wpath = None
    _kbd_intr(-1)
    try:
        while True:
            t = link.recv()
            if link.duplicate and t == _D:  # a write delivered twice is applied once
                link.ok()
                continue
            try:
                if t == _X or t == _E:
                    link.ok()
                    return
                if t == _O:
                    path = _store_path(link.payload())
                    if f is not None:
                        f.close()
                    f = open(path, "rb")
                    link.send(REPLY, struct.pack("<I", os.stat(path)[6]))
                    continue
                if t == _R:
                    off, n = struct.unpack("<IH", link.payload())
                    f.seek(off)
                    got = f.readinto(mv[:min(n, 256)])
                    if not got:
                        raise ValueError("read past the end of the file")
                    link.send(REPLY, mv, got)
                    continue
                if t == _W:
                    wpath = _store_path(link.payload())
                    if f is not None:
                        f.close()
                    store.ensure_root()
                    f = open(wpath + ".tmp", "wb")
                elif t == _D:
                    f.write(link.payload())
                elif t == _C:
                    f.close()
                    f = None
                    store.commit(wpath + ".tmp", wpath)
                else:
                    raise ValueError("unexpected frame type %d while serving files" % t)
                link.ok()
            except OSError as e:
                link.error(_oserror_text(e, "writing a file" if wpath else "reading a file"))
            except Exception as e:
                link.error("%s: %s" % (type(e).__name__, e))
    finally:
        if f is not None:
            f.close()
            if wpath:
                store.discard(wpath + ".tmp")
        _kbd_intr(INTERRUPT_CHAR)


# -- prune ----------------------------------------------------------------------------

def _score(p, method, info, w, a, sumsq, seed, block):
    # Score the first n bytes of the preallocated buffers in place: a memoryview slice
    # is a view, not a second copy of the layer.
    wv = memoryview(w)[:info.n]
    if method == "magnitude":
        p.magnitude(wv)
    elif method == "l2":
        p.l2(wv)
    elif method == "random":
        p.random(info.n, seed)
    elif method == "gradient":
        if not info.act_len:
            raise ValueError("layer %r has no activations for the gradient proxy: push the "
                             "model with %s.act" % (info.name, info.name))
        p.gradient(wv, memoryview(a)[:info.act_len],
                   None if info.act_len == info.n else info.cols)
    elif method == "wanda":
        if not info.calib:
            raise ValueError("layer %r has no calibration samples for Wanda: push the model "
                             "with %s.calib" % (info.name, info.name))
        p.wanda(wv, info.rows, info.cols, memoryview(sumsq)[:info.cols])
    elif method == "mincut":
        p.mincut(wv, info.rows, info.cols)
    elif method == "rows":
        p.rows(wv, info.rows, info.cols)
    elif method == "cols":
        p.cols(wv, info.rows, info.cols)
    else:  # blocks
        if not block:
            raise ValueError("method blocks needs a block size")
        p.blocks(wv, info.rows, info.cols, block[0], block[1])


def _zero_pruned(w, mask, method, info, block):
    """Zero, in w, the weights a mask prunes (whole rows, columns or blocks for those)."""
    bits = mask._bits
    rows, cols = info.rows, info.cols
    if method in ("rows", "cols", "blocks"):
        br, bc = (1, cols) if method == "rows" else (rows, 1) if method == "cols" else block
        gc = cols // bc
        for u in range(mask.n):
            if not (bits[u >> 3] >> (u & 7)) & 1:
                r0, c0 = (u // gc) * br, (u % gc) * bc
                for r in range(r0, r0 + br):
                    for c in range(c0, c0 + bc):
                        w[r * cols + c] = 0
    else:
        mask.apply(w, info.n)


def _layer_mask(p, method, info, w, a, sumsq, opts):
    """The layer's mask, exactly as prune8_host.reference.layer_mask computes it."""
    from .schedule import sparsity_at
    seed, block, nm, steps = opts["seed"], opts["block"], opts["nm"], opts["steps"]
    margs = {"tie": opts["tie"], "min_keep": opts["min_keep"], "min_score": opts["min_score"]}
    if nm:
        _score(p, method, info, w, a, sumsq, seed, block)
        return p.nm_mask(nm[0], nm[1], info.rows, info.cols)
    if not steps:
        _score(p, method, info, w, a, sumsq, seed, block)
        return p.mask(sparsity_bp=opts["bp"], **margs)
    running = None
    for t in range(1, steps + 1):
        _score(p, method, info, w, a, sumsq, seed, block)
        m = p.mask(sparsity_bp=sparsity_at(t, steps, opts["bp"]), **margs)
        if running is None:
            running = m.copy()
        else:
            rb, mb = running._bits, m._bits
            pruned = 0
            for j in range(((m.n + 31) >> 5) << 2):
                b = rb[j] & mb[j]
                rb[j] = b
                while b:
                    pruned += b & 1
                    b >>= 1
            running.pruned = m.n - pruned
        _zero_pruned(w, running, method, info, block)
    return running


def prune(method, sparsity_bp, tie="exact", min_keep=1, min_score=0, layers=None, seed=0,
          block=None, nm=None, steps=0):
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
        sumsq = array("i", bytes(4 * MAX_UNITS))
        opts = {"bp": sparsity_bp, "tie": tie, "min_keep": min_keep, "min_score": min_score,
                "seed": seed, "block": block, "nm": nm, "steps": steps}
        br, bc = block or (0, 0)
        nm_n, nm_m = nm or (0, 0)
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
            calibrated = store.read_calib(mid) if method == "gradient" else {}
            for info in chosen:
                store.load_layer(info, w, a, sumsq)
                if info.name in calibrated:  # the board's own statistic wins
                    info.act_len = len(calibrated[info.name])
                    a[:info.act_len] = calibrated[info.name]
                mask = _layer_mask(p, method, info, w, a, sumsq, opts)
                minfo = store.MaskInfo(info.name, method, tie, sparsity_bp, min_keep,
                                       min_score, mask.n, info.rows, info.cols, 0, seed, br,
                                       bc, nm_n, nm_m, steps)
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


# -- inference: calibration and evaluation ---------------------------------------------

def _current_masks(mid):
    """{layer name: MaskInfo} of masks.bin when it belongs to model `mid`."""
    if not store.exists(store.MASKS):
        return {}
    kid, masks = store.read_masks_index()
    return {m.name: m for m in masks} if kid == mid else {}


def network(with_masks=True):
    """(model id, the stored model as a dense.Network, names): with its current masks
    applied, as prune8_host.reference.masked_model defines it (a pruned row's bias is
    zeroed too, so the neuron outputs its zero point)."""
    from .mask import Mask
    mid, index = store.read_model_index()
    masks = _current_masks(mid) if with_masks else {}
    layers = []
    for info in index:
        if not info.quant:
            raise ValueError("layer %r has no int8 inference parameters: push a quantized "
                             "model (e.g. examples/digits_mlp.npz)" % info.name)
        d = dense.Dense(info.rows, info.cols, info.multiplier, info.shift, info.in_zp,
                        info.out_zp, bool(info.relu))
        store.load_layer(info, d.w, bytearray(info.act_len), None, d.bias)
        m = masks.get(info.name)
        if m is not None:
            with open(store.MASKS, "rb") as f:
                f.seek(m.offset)
                mask = Mask(0, m.n)
                mask.load(f.read(m.nbytes), m.n)
            _zero_pruned(d.w, mask, m.method, info, (m.br, m.bc))
            if m.method == "rows":
                for r in range(info.rows):
                    if not mask.is_kept(r):
                        d.bias[r] = 0
        layers.append(d)
    return mid, dense.Network(layers), [i.name for i in index]


def _serve_images(link, stride, per_image):
    """Receive frames of whole items of `stride` bytes (I frames) and call per_image(view)
    on each: an image (the network's input), optionally followed by a label byte."""
    while True:
        t = link.recv()
        if link.duplicate:
            link.ok()
            continue
        if t == _E:
            return
        if t != _I:
            raise ValueError("unexpected frame type %d while receiving images" % t)
        data = link.payload()
        if len(data) % stride:
            raise ValueError("an image frame must hold whole images of %d bytes" % stride)
        for off in range(0, len(data), stride):
            per_image(data[off:off + stride])
        link.ok()


def calibrate():
    """Run calibration images through the stored model; keep each layer's gradient-proxy
    statistic in /prune8/calib.bin and send them back (docs/spec-decisions.md)."""
    link = Link()
    _kbd_intr(-1)
    try:
        try:
            mid, net, names = network(with_masks=False)
            cols = net.layers[0].cols

            def one(x):
                net.forward(x, True)
            _serve_images(link, cols, one)
            acts = [(names[i], bytes(net.stats[i].result(bytearray(net.layers[i].cols))))
                    for i in range(len(names))]
            store.write_calib(mid, acts)
            link.send(REPLY, b"".join(a for _, a in acts))
        except OSError as e:
            link.error(_oserror_text(e, "saving the calibration"))
        except Exception as e:
            link.error("%s: %s" % (type(e).__name__, e))
    finally:
        _kbd_intr(INTERRUPT_CHAR)


def packed_network():
    """The packed model in /prune8/packed.bin as a network of sparse layers."""
    from .sparse import read_packed
    layers = read_packed(store.PACKED)
    return None, dense.Network([d for _, d in layers]), [n for n, _ in layers]


def evaluate(with_masks=True, packed=False):
    """Classify streamed test images (input bytes, then a label byte) with the stored
    model and its masks (or with the packed model, run from its sparse form); reply with
    the count, the correct ones and a CRC-32 of every logit, so the host can check them
    against the twin without reading them back."""
    link = Link()
    _kbd_intr(-1)
    try:
        try:
            mid, net, names = packed_network() if packed else network(with_masks)
            cols = net.layers[0].cols
            state = [0, 0, 0, 0]  # images, correct, CRC low and high halves

            def one(item):
                out = net.forward(item[:cols])
                best = 0
                for j in range(1, len(out)):
                    if out[j] > out[best]:
                        best = j
                state[0] += 1
                state[1] += best == item[cols]
                state[2], state[3] = crc32_halves(out, len(out), state[2], state[3])
            _serve_images(link, cols + 1, one)
            link.send(REPLY, struct.pack("<IIHH", state[0], state[1], state[2], state[3]))
        except Exception as e:
            link.error("%s: %s" % (type(e).__name__, e))
    finally:
        _kbd_intr(INTERRUPT_CHAR)


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
