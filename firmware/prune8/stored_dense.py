# int8 inference on a stored layer bigger than RAM (docs/streaming.md; docs/spec.md §5.3,
# §8.3, the masked model of §4.3): the weights stay in /prune8/model.bin and are read a
# tile at a time for every input; the layer's mask (any unit) zeroes what it prunes in
# each tile as it is read. Per output row a partial sum is kept (rows x int32), so a tile
# may end anywhere in a row (dense.dense_tiles); the row is requantized as dense.Dense
# does once its sum is complete. Outputs equal dense.Dense's on the same pruned weights,
# bit for bit.

from array import array

from . import dense, errors, quant_params, scorers
from .tiles import ROW, Stream, TiledMask


class StoredDense:
    """A stored layer (store.LayerInfo) run from flash with its mask (a store.MaskInfo
    in masks.bin, or None); forward(x, out) as dense.Dense. RAM: a tile of `tile`
    weights, rows x int32 biases and sums, cols x int16 inputs, and the mask's tile."""

    def __init__(self, info, model_path, multiplier, shift, mask=None, masks_path=None,
                 tile=2048):
        from . import store
        rows, cols = info.rows, info.cols
        if not 1 <= rows <= dense.MAX_UNITS or not 1 <= cols <= dense.MAX_UNITS:
            raise errors.dense_shape(rows, cols)
        self.rq = dense.Requant(rows, multiplier, shift)
        quant_params.int_in("in_zp", info.in_zp, -128, 127)
        quant_params.int_in("out_zp", info.out_zp, -128, 127)
        self.rows, self.cols = rows, cols
        self.in_zp, self.out_zp, self.relu = info.in_zp, info.out_zp, bool(info.relu)
        self.lo = (self.out_zp if self.out_zp > -128 else -128) if self.relu else -128
        self.bias = array("i", bytes(4 * rows))
        self._acc = array("i", bytes(4 * rows))
        self._xs = array("h", bytes(2 * cols))
        self.f = open(model_path, "rb")
        self.mf = None
        ok = False
        try:
            store.load_bias(info, self.bias, self.f)
            for r in range(rows):
                b = self.bias[r]
                if b < -dense.SAT or b >= dense.SAT:
                    raise errors.quant_bias(b, r)
            self.w = Stream("b", 1, tile)
            self.w.start(self.f, info.offset, info.n)
            self.tiled = None
            if mask is not None:
                unit = scorers.unit(mask.method)
                self.tiled = TiledMask(unit, rows, cols, mask.br, mask.bc, tile)
                self.mf = open(masks_path, "rb")
                self.tiled.attach(self.mf, mask.offset)
                if unit == ROW:  # a pruned neuron outputs its zero point (infer.network)
                    bits = self.tiled.bits
                    for r in range(rows):
                        if not (bits[r >> 3] >> (r & 7)) & 1:
                            self.bias[r] = 0
            ok = True
        finally:
            if not ok:
                self.close()

    def __repr__(self):
        return "StoredDense(%d x %d, from flash)" % (self.rows, self.cols)

    def close(self):
        for f in (self.f, self.mf):
            if f is not None:
                f.close()
        self.f = self.mf = None

    def forward(self, x, out):
        """out[r] = the layer's int8 output r for input x."""
        cols = self.cols
        if len(x) != cols:
            raise errors.dense_length("input", len(x), cols)
        if len(out) != self.rows:
            raise errors.dense_length("output", len(out), self.rows)
        xs = self._xs
        t = dense.S8
        zp = self.in_zp
        for c in range(cols):
            xs[c] = t[x[c]] - zp
        acc = self._acc
        for r in range(self.rows):
            acc[r] = self.bias[r]
        dense.dense_tiles(self.w, self.tiled, xs, acc, self.rows, cols)
        rq = self.rq
        dense.requantize_rows(acc, rq.m2, rq.m1, rq.m0, rq.left, rq.right, out, self.out_zp,
                              self.lo)
