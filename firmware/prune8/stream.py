# Pruning a stored layer bigger than RAM, tile by tile (docs/streaming.md;
# docs/spec.md §5.3).
#
# The layer stays in /prune8/model.bin. The Pruner's fixed buffers hold one tile at a
# time: its weights, its scores, its mask bits. Per-weight scores (int16) and unit
# scores (rows, columns, blocks: int32) go to a scratch file; the exact-k threshold is
# a radix select over that file, one pass per score byte, with the histogram summed
# over all tiles; then the mask is filled in index order, the number of ties still to
# prune carried from tile to tile, so the mask is the one a single pass over the whole
# layer gives (prune8_host.twin's), bit for bit.
#
# RAM besides the Pruner and the tile buffers, per layer: O(rows + cols) values, each
# allocated once when the layer starts: flows or L1 sums (4 * (rows + cols) bytes),
# Wanda's sums and norms (8 * cols), activations (cols), scale multipliers (4 * rows),
# per-channel cuts (8 * rows), a block row's sums (4 * cols / bc). At the 4096-unit
# limit that is under 100 KB; for a 256 x 256 layer about 5 KB.

import gc
from array import array

from . import bp as _bp
from . import check, errors, scores, select, store
from . import mask as _mask
from .mask import Mask
from .patterns import nm_span
from .protocol import (
    MASK_STEP_PATH,
    MODEL_PATH,
    RUNNING_PATH,
    SCALE,
    SCORES_PATH,
    SUM,
    WORK_PATH,
)
from .tiles import COL, ROW, UNIT_OF, WEIGHT, TiledMask, read_into, write_from

_NO_LIMIT = errors.MAX_WEIGHTS_LIMIT * 16   # blocks: a stored layer bounds them itself


class LayerStream:
    """Prunes stored layers with a Pruner's buffers as tiles of `tile` weights.

    s = LayerStream(pruner)             # tile = pruner.max_weights
    s.prepare(info, "magnitude", opts)  # checks; s.count: the mask's entries
    pruned = s.write_mask(f)            # writes the mask's bytes to f
    """

    def __init__(self, pruner, tile=None, w=None, a=None):
        # w, a: buffers of at least `tile` bytes to hold a tile of weights and of
        # activations (default: allocated here)
        p = pruner
        if tile is None:
            tile = p.max_weights
        if not check.is_int(tile) or not 1 <= tile <= p.max_weights:
            raise errors.tile_size(p.max_weights, tile)
        self.p = p
        self.tile = tile
        self.w = w if w is not None else bytearray(tile)    # a tile of weights
        self.wv = memoryview(self.w)[:tile]
        self.a = a if a is not None else bytearray(tile)    # ... of per-weight activations
        self.av = memoryview(self.a)[:tile]
        self.sv = memoryview(p.scores)[:tile]       # ... of int16 scores
        self.uchunk = len(p.units)                  # unit scores (int32) per read
        self.uv = memoryview(p.units)
        cap = tile if tile > self.uchunk else self.uchunk
        self.window = Mask(0, cap + 8)              # a tile's mask bits, and the byte
        self.bv = memoryview(self.window._bits)     # the last tile left half full
        self.phase = 0                              # bits of that byte already set
        self.hist = p._hist
        self.peak = 0                               # heap high-water mark, sampled
        self._pos = 0
        self._t = 0
        self._ties = 0
        self.x = 0                                  # the random scorer's LCG state

    def sample_heap(self):
        """Note the live heap (after a collection) at the end of a pass, when everything
        the layer needs is allocated."""
        if hasattr(gc, "mem_alloc"):  # MicroPython
            gc.collect()
            a = gc.mem_alloc()
            if a > self.peak:
                self.peak = a

    # -- the layer's geometry and per-layer arrays -------------------------------------

    def _setup(self, info, method, opts):
        """Checks, in the order the in-RAM path makes them, then the layer's O(rows +
        cols) arrays. Raises before anything is written."""
        rows, cols, n = info.rows, info.cols, info.n
        self.info = info
        self.what = "layer " + info.name                 # for messages, made once
        self.what_act = "activations of " + info.name
        self.method = method
        self.unit = UNIT_OF.get(method, WEIGHT)
        check.shape(n, rows, cols)
        if method == "random":
            check.count(n, "random scores")
            check.seed(opts["seed"])
        elif method == "gradient":
            if not info.act_len:
                raise errors.no_activations(info.name)
        elif method == "wanda":
            if not info.calib:
                raise errors.no_calibration(info.name, info.cols)
        elif method == "blocks":
            block = opts["block"]
            if not block:
                raise errors.no_block_size()
            check.blocks(rows, cols, block[0], block[1], _NO_LIMIT)
        with open(MODEL_PATH, "rb") as f:
            self._load_arrays(f, info, method, opts)
        if self.unit == WEIGHT:
            self.count = n
        elif self.unit == ROW:
            self.count = rows
        elif self.unit == COL:
            self.count = cols
        else:
            self.count = (rows // self.br) * (cols // self.bc)

    def _load_arrays(self, f, info, method, opts):
        rows, cols = info.rows, info.cols
        self.br, self.bc = opts["block"] or (1, 1)
        if method == "mincut" or method == "rows" or method == "cols":
            self.row_acc = array("i", bytes(4 * rows))
            self.col_acc = array("i", bytes(4 * cols))
        elif method == "gradient":
            self.a_cols = None
            if self.act is not None:                  # the board's calibration wins
                self.a_cols = self.act
            elif info.act_len == cols and info.act_len != info.n:
                self.a_cols = bytearray(cols)
                f.seek(info.offset + info.n)
                read_into(f, memoryview(self.a_cols), cols, "activations of " + info.name)
        elif method == "wanda":
            sums = array("i", bytes(4 * cols))
            f.seek(info.sums_offset)
            _read_ints(f, SUM, sums, cols)
            check.sumsq(sums)
            self.norms = sums                         # isqrt in place: one array
            scores.wanda_norms(sums, cols, self.norms)
        elif method == "scaled":
            self.mults = array("i", bytes(4 * rows))
            if info.scaled:
                f.seek(info.scale_offset)
                _read_ints(f, SCALE, self.mults, rows)
            else:
                for r in range(rows):
                    self.mults[r] = errors.MAX_SCALE
            check.scales(self.mults, rows)
        elif method == "blocks":
            self.band = array("i", bytes(4 * (cols // self.bc)))

    # -- reading a layer's weights -------------------------------------------------------

    def _tiles(self, src, offset):
        """Start a pass over the layer's weights: from file `src` at `offset`."""
        self.src = src
        self.src_offset = offset
        src.seek(offset)

    def _next(self, i0, m):
        """Read weights i0 .. i0 + m - 1 (the pass reads them in order) into self.w."""
        read_into(self.src, self.wv, m, self.what)
        if self.method == "gradient" and self.a_cols is None:
            pos = self.src.tell()
            self.model.seek(self.info.offset + self.info.n + i0)
            read_into(self.model, self.av, m, self.what_act)
            self.src.seek(pos)

    def _prepass(self):
        """Flows and L1 sums over the whole layer: mincut, rows and cols need them first."""
        info = self.info
        cols = info.cols
        ra, ca = self.row_acc, self.col_acc
        for r in range(info.rows):
            ra[r] = 0
        for c in range(cols):
            ca[c] = 0
        self._tiles(self.weights, self.weights_offset)
        i0 = 0
        n = info.n
        while i0 < n:
            m = n - i0 if n - i0 < self.tile else self.tile
            self._next(i0, m)
            scores.add_l1(self.w, m, i0 // cols, i0 % cols, cols, ra, ca)
            i0 += m
        self.sample_heap()

    def _score_tile(self, i0, m):
        """Scores of weights i0 .. i0 + m - 1 (in self.w) into the Pruner's scores."""
        method = self.method
        w, out = self.w, self.p.scores
        cols = self.info.cols
        if method == "magnitude":
            scores.magnitude(w, m, out)
        elif method == "l2":
            scores.l2(w, m, out)
        elif method == "random":
            self.x = scores.random(m, self.x, out)
        elif method == "gradient":
            if self.a_cols is None:
                scores.gradient(w, self.a, m, 0, out, 0)
            else:
                scores.gradient(w, self.a_cols, m, cols, out, i0 % cols)
        elif method == "wanda":
            scores.wanda_tile(w, m, i0 % cols, cols, self.norms, out)
        elif method == "mincut":
            scores.mincut_tile(w, m, i0 // cols, i0 % cols, cols, self.row_acc,
                               self.col_acc, out)
        else:  # scaled
            scores.scaled_tile(w, m, i0 // cols, i0 % cols, cols, self.mults, out)

    def _write_scores(self, out):
        """The layer's scores into file `out`: int16 per weight, or int32 per unit."""
        info = self.info
        n, cols = info.n, info.cols
        unit = self.unit
        if unit == ROW:
            self._prepass()
            out.write(self.row_acc)
            return
        if unit == COL:
            self._prepass()
            out.write(self.col_acc)
            return
        if self.method == "mincut":
            self._prepass()
        self.x = self.opts["seed"]
        self._tiles(self.weights, self.weights_offset)
        band_len = self.br * cols
        i0 = 0
        while i0 < n:
            m = n - i0 if n - i0 < self.tile else self.tile
            self._next(i0, m)
            if unit == WEIGHT:
                self._score_tile(i0, m)
                write_from(out, self.sv, m)
            else:  # blocks: sum each block row (band) of the tile, write it when complete
                i = 0
                while i < m:
                    g = i0 + i
                    end = (g // band_len + 1) * band_len
                    k = m - i if m - i < end - g else end - g
                    scores.add_blocks(self.w, i, k, g % cols, cols, self.bc, self.band)
                    i += k
                    if g + k == end:
                        out.write(self.band)
                        for j in range(len(self.band)):
                            self.band[j] = 0
            i0 += m
        self.sample_heap()

    # -- threshold and mask over the scores file --------------------------------------

    def _chunk(self, f, m):
        """Read the next m scores of the scores file into the Pruner's buffers."""
        if self.unit == WEIGHT:
            read_into(f, self.sv, m, "scores", 2)
            return self.p.scores
        read_into(f, self.uv, m, "scores", 4)
        return self.p.units

    def _limit(self):
        return self.tile if self.unit == WEIGHT else self.uchunk

    def _select(self, f, start, count, pos):
        """The value at sorted position pos of scores start .. start + count - 1; sets
        self._pos to pos's rank among the scores equal to it."""
        hist = self.hist
        width = 2 if self.unit == WEIGHT else 4
        top = 8 if width == 2 else 24   # int16 scores < 2**15; unit scores < 2**32
        limit = self._limit()
        prefix = 0
        shift = top
        while True:
            for d in range(256):
                hist[d] = 0
            f.seek(start * width)
            left = count
            while left:
                m = left if left < limit else limit
                src = self._chunk(f, m)
                select.radix_count(src, 0, m, hist, shift, top, prefix)
                left -= m
            d = select.radix_bucket(hist, pos)
            pos -= select.radix_below(hist, d)
            prefix = (prefix << 8) | d
            if shift == 0:
                self._pos = pos
                return prefix
            shift -= 8

    def _cut(self, f, start, count, k, strict, min_score):
        """Pruner._cut's rule over scores start .. start + count - 1: self._t, self._ties."""
        t = 0
        ties = 0
        if k > 0:
            t = self._select(f, start, count,
                             k - 1 if not strict else (k if k < count - 1 else count - 1))
            if not strict:  # k - count(< t) = the rank of position k - 1 among equals + 1
                ties = self._pos + 1
        if min_score > t:
            t = min_score
            ties = 0
        self._t = t
        self._ties = ties

    def _flush(self, out, m):
        """Write the complete bytes of the window's m new bits; keep the partial one."""
        bits = self.window._bits
        total = self.phase + m
        full = total >> 3
        if full:
            write_from(out, self.bv, full)
            if total & 7:
                bits[0] = bits[full]
        self.phase = total & 7

    def _finish(self, out, count):
        """The last partial byte and the zero bytes up to the word boundary."""
        bits = self.window._bits
        nbytes = (count + 7) >> 3
        tail = (((count + 31) >> 5) << 2) - nbytes
        if self.phase:
            bits[0] &= (1 << self.phase) - 1  # N:M leaves older bits above the last one
            out.write(self.bv[:1])
        for j in range(tail):
            bits[j] = 0
        if tail:
            out.write(self.bv[:tail])
        self.phase = 0

    def _fill(self, f, start, count, t, ties, out):
        """Mask bits of scores start .. start + count - 1 into out; returns ties left."""
        width = 2 if self.unit == WEIGHT else 4
        limit = self._limit()
        f.seek(start * width)
        left = count
        while left:
            m = left if left < limit else limit
            src = self._chunk(f, m)
            ties = self.window.fill_span(src, 0, self.phase, m, t, ties, self.unit != WEIGHT)
            self._flush(out, m)
            left -= m
        return ties

    # -- a layer's mask -------------------------------------------------------------------

    def prepare(self, info, method, opts, act=None):
        """Check a layer and its options (the in-RAM path's errors, in its order) and
        load its O(rows + cols) arrays. act: the board's calibrated activations (one per
        column), which win over the stored ones for the gradient proxy."""
        self.act = act
        self.opts = opts
        self._setup(info, method, opts)
        nm = opts["nm"]
        self.strict = False
        if nm:
            check.nm(nm[0], nm[1])
            if self.unit != WEIGHT:
                raise errors.no_weight_scores()
            if info.cols % nm[1]:
                raise errors.nm_cols(info.cols, nm[1])
        else:
            self.strict = check.tie(opts["tie"])
            self._check_mask(opts)

    def write_mask(self, out):
        """Write the prepared layer's mask (its bytes, as masks.bin stores them) to out;
        returns the number of pruned entries."""
        info = self.info
        opts = self.opts
        nm = opts["nm"]
        strict = self.strict
        self.window.pruned = 0
        self.phase = 0
        self.model = open(MODEL_PATH, "rb")
        self.weights = self.model
        self.weights_offset = info.offset
        try:
            if nm:
                self._nm_mask(nm[0], nm[1], out)
                return self.window.pruned
            if not opts["steps"]:
                self._one_mask(opts["bp"], strict, out)
                return self.window.pruned
            return self._gradual(strict, out)
        finally:
            if self.weights is not self.model:
                self.weights.close()
            self.model.close()
            for path in (SCORES_PATH, MASK_STEP_PATH, RUNNING_PATH, WORK_PATH):
                store.discard(path)

    def _check_mask(self, opts):
        """Pruner.mask's / channel_mask's checks (and errors), in their order."""
        _bp.resolve(None, opts["bp"])
        count = self.count
        if opts["scope"] == "channel":
            if self.unit != WEIGHT:
                raise errors.scope_weights()
            check.min_keep(opts["min_keep"], self.info.cols)
        else:
            check.min_keep(opts["min_keep"], count)
        check.min_score(opts["min_score"])

    def _one_mask(self, bp, strict, out):
        """Score into the scratch file, cut, fill: the mask of one prune to bp."""
        opts = self.opts
        f = open(SCORES_PATH, "wb")
        try:
            self._write_scores(f)
        finally:
            f.close()
        f = open(SCORES_PATH, "rb")
        try:
            if opts["scope"] == "channel":
                self._channel_mask(f, bp, strict, out)
            else:
                count = self.count
                k = _bp.prune_count(count, bp, opts["min_keep"])
                self._cut(f, 0, count, k, strict, opts["min_score"])
                self._fill(f, 0, count, self._t, self._ties, out)
                self._finish(out, count)
        finally:
            f.close()
        self.sample_heap()

    def _channel_mask(self, f, bp, strict, out):
        rows, cols = self.info.rows, self.info.cols
        opts = self.opts
        k = _bp.prune_count(cols, bp, opts["min_keep"])
        ts = array("i", bytes(4 * rows))
        ties = array("i", bytes(4 * rows))
        for r in range(rows):
            self._cut(f, r * cols, cols, k, strict, opts["min_score"])
            ts[r] = self._t
            ties[r] = self._ties
        for r in range(rows):
            self._fill(f, r * cols, cols, ts[r], ties[r], out)
        self._finish(out, rows * cols)

    def _nm_mask(self, n, m, out):
        """N:M needs no scores file: a tile of whole groups is scored and masked at once."""
        info = self.info
        total = info.n
        if self.method == "mincut":
            self._prepass()
        self.x = self.opts["seed"]
        self._tiles(self.weights, self.weights_offset)
        tile = self.tile - self.tile % m if self.tile >= m else 0
        if tile == 0:
            raise errors.nm_tile(m, self.tile)
        i0 = 0
        while i0 < total:
            k = total - i0 if total - i0 < tile else tile
            self._next(i0, k)
            self._score_tile(i0, k)
            nm_span(self.window, self.p.scores, 0, self.phase, k, n, m)
            self._flush(out, k)
            i0 += k
        self._finish(out, total)
        self.sample_heap()

    # -- gradual pruning: the cubic schedule over the stored layer ----------------------

    def _gradual(self, strict, out):
        """prune_model._layer_mask's steps, with the running mask and the weights as
        pruned so far in scratch files."""
        from .schedule import sparsity_at
        opts = self.opts
        steps = opts["steps"]
        count = self.count
        nbytes = ((count + 31) >> 5) << 2
        info = self.info
        tiled = TiledMask(self.unit, info.rows, info.cols, self.br, self.bc, self.tile)
        kept = count
        for t in range(1, steps + 1):
            bp = sparsity_at(t, steps, opts["bp"])
            with open(MASK_STEP_PATH, "wb") as m:
                self.window.pruned = 0
                self._one_mask(bp, strict, m)
            if t == 1:
                store.commit(MASK_STEP_PATH, RUNNING_PATH)
                kept = count - self.window.pruned
            else:
                kept = self._and_masks(nbytes)
            if t < steps:
                self._zero_work(tiled)
        with open(RUNNING_PATH, "rb") as src:
            _copy(src, out, nbytes, self.bv)
        return count - kept

    def _and_masks(self, nbytes):
        """running &= this step's mask (both files); returns the kept entries."""
        tmp = store.tmp_path(RUNNING_PATH)
        buf = self.window._bits
        half = len(buf) >> 1
        kept = 0
        with open(RUNNING_PATH, "rb") as a, open(MASK_STEP_PATH, "rb") as b, \
                open(tmp, "wb") as o:
            left = nbytes
            va = self.bv[:half]
            vb = self.bv[half:2 * half]
            while left:
                k = left if left < half else half
                read_into(a, va, k, "running mask")
                read_into(b, vb, k, "mask")
                for j in range(k):
                    buf[j] &= buf[half + j]
                kept += _mask.popcount(buf, k)
                write_from(o, va, k)
                left -= k
        store.commit(tmp, RUNNING_PATH)
        return kept

    def _zero_work(self, tiled):
        """The weights as pruned so far: the current ones with the running mask applied."""
        info = self.info
        n = info.n
        tmp = store.tmp_path(WORK_PATH)
        with open(RUNNING_PATH, "rb") as mf, open(tmp, "wb") as o:
            tiled.attach(mf, 0)
            self._tiles(self.weights, self.weights_offset)
            i0 = 0
            while i0 < n:
                m = n - i0 if n - i0 < self.tile else self.tile
                self._next(i0, m)
                tiled.zero(self.w, 0, m, i0)
                write_from(o, self.wv, m)
                i0 += m
        if self.weights is not self.model:
            self.weights.close()
        store.commit(tmp, WORK_PATH)
        self.weights = open(WORK_PATH, "rb")
        self.weights_offset = 0
        self.sample_heap()


def _read_ints(f, fmt, out, count):
    """count little-endian values of struct format fmt into out, a few at a time."""
    import struct
    size = struct.calcsize(fmt)
    buf = bytearray(size * 64)
    i = 0
    while i < count:
        k = count - i if count - i < 64 else 64
        read_into(f, memoryview(buf), k * size, "layer data")
        for j in range(k):
            out[i + j] = struct.unpack_from(fmt, buf, size * j)[0]
        i += k


def _copy(src, dst, nbytes, view):
    left = nbytes
    size = len(view)
    while left:
        k = left if left < size else size
        read_into(src, view, k, "mask")
        write_from(dst, view, k)
        left -= k
