# int8 inference on the stored model (docs/spec.md §8; with its masks, §4.3's masked model):
#
#   calibrate()  run calibration images through it; keep each layer's gradient-proxy
#                statistic in /prune8/calib.bin and reply with them
#   evaluate()   classify test images (each followed by its label byte) with it and its
#                masks, or with the packed model; reply with the count, the correct ones
#                and a CRC-32 of every logit, so the host checks them against the twin
#                without reading them back
#
# Images arrive in IMAGES frames, as many whole items per frame as fit; END asks for the
# result.

import struct

from . import calib, dense, errors, scorers, store
from .formats import MASKS_PATH, MODEL_PATH
from .link import crc32_halves
from .packed_format import PACKED_PATH
from .profile import MAX_WEIGHTS
from .protocol import END, EVAL_FMT, IMAGES
from .prune_model import zero_pruned
from .receiver import Receiver
from .tiles import ROW


def _current_masks(mid):
    """{layer name: MaskInfo} of masks.bin when it belongs to model `mid`."""
    if not store.exists(MASKS_PATH):
        return {}
    kid, masks = store.read_masks_index()
    return {m.name: m for m in masks} if kid == mid else {}


def network(with_masks=True):
    """(model id, the stored model as a dense.Network, names): with its current masks
    applied, as prune8_host.twin.reference.masked_model defines it (a pruned row's bias is
    zeroed too, so the neuron outputs its zero point). A layer bigger than the Pruner's
    capacity runs from flash (prune8.stored_dense): close the network when done."""
    mid, index = store.read_model_index()
    masks = _current_masks(mid) if with_masks else {}
    layers = []
    ok = False
    try:
        for info in index:
            layers.append(_layer(info, masks.get(info.name)))
        net = dense.Network(layers)
        ok = True
    finally:
        if not ok:
            for d in layers:
                if hasattr(d, "close"):
                    d.close()
    return mid, net, [i.name for i in index]


def _layer(info, m):
    """A stored layer as a kernel, with its mask m (a store.MaskInfo, or None) applied."""
    from .mask import Mask
    if not info.quant:
        raise errors.no_quant(info.name)
    multiplier, shift = store.requant_params(info)
    if info.n > MAX_WEIGHTS:
        from .stored_dense import StoredDense
        return StoredDense(info, MODEL_PATH, multiplier, shift, m, MASKS_PATH, MAX_WEIGHTS)
    d = dense.Dense(info.rows, info.cols, multiplier, shift, info.in_zp, info.out_zp,
                    bool(info.relu))
    store.load_layer(info, d.w, None, None, d.bias)
    if m is not None:
        with open(MASKS_PATH, "rb") as f:
            f.seek(m.offset)
            mask = Mask(0, m.n)
            mask.load(f.read(m.nbytes), m.n)
        zero_pruned(d.w, mask, m.method, info, (m.br, m.bc))
        if scorers.unit(m.method) == ROW:
            for r in range(info.rows):
                if not mask.is_kept(r):
                    d.bias[r] = 0
    return d


class ImageReceiver(Receiver):
    """Receives items of `stride` bytes (an image, the network's input, optionally
    followed by a label byte), back to back across IMAGES frames (an item may be
    longer than a frame), and calls one(item) on each; END replies with result()."""

    doing = "receiving images"

    def __init__(self, link=None):
        Receiver.__init__(self, link)
        self.handlers = {IMAGES: self.images, END: self.end}
        self.stride = 0
        self.item = None
        self.got = 0

    def images(self, data):
        stride = self.stride
        if self.item is None:
            self.item = bytearray(stride)
        item = self.item
        i = 0
        m = len(data)
        while i < m:
            k = stride - self.got
            if k > m - i:
                k = m - i
            item[self.got:self.got + k] = data[i:i + k]
            self.got += k
            i += k
            if self.got == stride:
                self.one(item)
                self.got = 0

    def end(self, payload):
        if self.got:
            raise errors.images_cut(self.got, self.stride)
        self.done = True
        return self.result()

    def close(self):
        net = getattr(self, "net", None)
        if net is not None:
            net.close()


class Calibration(ImageReceiver):
    doing = "saving the calibration"

    def start(self):
        self.mid, self.net, self.names = network(with_masks=False)
        self.stride = self.net.layers[0].cols

    def one(self, x):
        self.net.forward(x, True)

    def result(self):
        net, names = self.net, self.names
        acts = [(names[i], bytes(net.stats[i].result(bytearray(net.layers[i].cols))))
                for i in range(len(names))]
        calib.write_calib(self.mid, acts)
        return b"".join(a for _, a in acts)


class Evaluation(ImageReceiver):
    def __init__(self, with_masks, packed):
        ImageReceiver.__init__(self)
        self.with_masks = with_masks
        self.packed = packed
        self.state = [0, 0, 0, 0]  # images, correct, CRC low and high halves

    def start(self):
        _, self.net, _ = packed_network() if self.packed else network(self.with_masks)
        self.cols = self.net.layers[0].cols
        self.stride = self.cols + 1

    def one(self, item):
        cols = self.cols
        out = self.net.forward(memoryview(item)[:cols])
        best = 0
        for j in range(1, len(out)):
            if out[j] > out[best]:
                best = j
        state = self.state
        state[0] += 1
        state[1] += best == item[cols]
        state[2], state[3] = crc32_halves(out, len(out), state[2], state[3])

    def result(self):
        s = self.state
        return struct.pack(EVAL_FMT, s[0], s[1], s[2], s[3])


def calibrate():
    """Run calibration images through the stored model; keep each layer's gradient-proxy
    statistic in /prune8/calib.bin and send them back (docs/spec.md §8.7)."""
    Calibration().serve()


def packed_network():
    """The packed model in /prune8/packed.bin as a network of sparse layers."""
    from .sparse import read_packed
    layers = read_packed(PACKED_PATH, MAX_WEIGHTS)
    return None, dense.Network([d for _, d in layers]), [n for n, _ in layers]


def evaluate(with_masks=True, packed=False):
    """Classify streamed test images (input bytes, then a label byte) with the stored
    model and its masks (or with the packed model, run from its sparse form)."""
    Evaluation(with_masks, packed).serve()
