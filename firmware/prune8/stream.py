# Pruning a stored layer bigger than RAM, tile by tile (docs/streaming.md; docs/spec.md
# §5.3).
#
# The layer stays in /prune8/model.bin; the Pruner's fixed buffers hold one tile at a
# time. A LayerStream is the layer being pruned: it checks the layer and the prune's
# options (the in-RAM path's errors, in its order), loads its scorer's per-layer arrays
# (prune8.scorers), reads the weights a tile at a time and scores them. The mask is made
# by one pass per pattern: prune8.mask_writer's one-shot (layer or channel scope, over
# a score file: prune8.score_file) and N:M passes, prune8.gradual's steps. Each gives
# the mask a single pass over the whole layer gives (prune8_host.twin's), bit for bit.
#
# RAM besides the Pruner and the tile buffers, per layer: O(rows + cols) values, each
# allocated once when the layer starts: flows or L1 sums (4 * (rows + cols) bytes),
# Wanda's sums and norms (8 * cols), activations (cols), scale multipliers (4 * rows),
# per-channel cuts (8 * rows), a block row's sums (4 * cols / bc). At the 4096-unit
# limit that is under 100 KB; for a 256 x 256 layer about 5 KB.

import gc

from . import bp as _bp
from . import check, errors, scorers, scores, store
from .formats import MASK_STEP_PATH, MODEL_PATH, RUNNING_PATH, SCORES_PATH, WORK_PATH
from .mask_writer import BitWriter, n_of_m, one_shot
from .score_file import ScoreFile
from .tiles import WEIGHT, read_into

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
        self.a = a   # ... of per-weight activations: allocated by the first layer
        self.av = None if a is None else memoryview(a)[:tile]  # whose scorer reads them
        self.score_file = ScoreFile(p, tile)   # the layer's scores, and the cut over them
        uchunk = self.score_file.uchunk
        self.bits = BitWriter(tile if tile > uchunk else uchunk)  # the mask, as written
        self.peak = 0                               # heap high-water mark, sampled
        self.x = 0                                  # the random scorer's LCG state
        # What prepare(), scorers.load() and write_mask() set, named now: the instance's
        # table of attributes grows to its size here, before the prune's work (grown
        # mid-prune, its last copy, ~0.5 KB, needs room in one piece: docs/heap.md).
        self.info = self.opts = self.what = self.what_act = self.unit = None
        self.needs = self.streamed = self.br = self.bc = self.act_per_weight = None
        self.count = self.strict = self.model = self.weights = self.weights_offset = None
        self.a_cols = self.row_acc = self.col_acc = self.norms = self.mults = None
        self.band = self.own_rows = self.own_cols = self.own_sums = None
        self.own_mults = self.own_band = None

    def sample_heap(self):
        """Note the live heap (after a collection) at the end of a pass, when everything
        the layer needs is allocated."""
        if hasattr(gc, "mem_alloc"):  # MicroPython
            gc.collect()
            a = gc.mem_alloc()
            if a > self.peak:
                self.peak = a

    # -- a layer's checks and arrays ----------------------------------------------------

    def prepare(self, info, method, opts, act=None):
        """Check a layer and its options (the in-RAM path's errors, in its order) and
        load its O(rows + cols) arrays. act: the board's calibrated activations (one per
        column), which win over the stored ones for the gradient proxy."""
        rows, cols, n = info.rows, info.cols, info.n
        self.info = info
        self.opts = opts
        self.what = "layer " + info.name                 # for messages, made once
        self.what_act = "activations of " + info.name
        self.unit, self.needs, _, self.streamed = scorers.TABLE[method]
        needs = self.needs
        if needs & scorers.ACT and self.a is None:
            self.a = bytearray(self.tile)
            self.av = memoryview(self.a)
        check.shape(n, rows, cols)
        if needs & scorers.SEED:  # Pruner.random's checks
            check.count(n, "random scores")
            check.seed(opts["seed"])
        block = opts["block"]
        scorers.missing(info, needs, block)
        if needs & scorers.BLOCK_SIZE:
            check.blocks(rows, cols, block[0], block[1], _NO_LIMIT)
        self.br, self.bc = block or (1, 1)
        with open(MODEL_PATH, "rb") as f:
            scorers.load(self, f, info, needs, act)
        self.act_per_weight = needs & scorers.ACT and self.a_cols is None
        self.count = scorers.unit_count(self.unit, rows, cols, self.br, self.bc)
        nm = opts["nm"]
        self.strict = False
        if nm:  # Pruner.nm_mask's checks
            check.nm(nm[0], nm[1])
            if self.unit != WEIGHT:
                raise errors.no_weight_scores()
            if cols % nm[1]:
                raise errors.nm_cols(cols, nm[1])
        else:  # Pruner.mask's / channel_mask's
            self.strict = check.tie(opts["tie"])
            _bp.resolve(None, opts["bp"])
            if opts["scope"] == "channel":
                if self.unit != WEIGHT:
                    raise errors.scope_weights()
                check.min_keep(opts["min_keep"], cols)
            else:
                check.min_keep(opts["min_keep"], self.count)
            check.min_score(opts["min_score"])

    def write_mask(self, out):
        """Write the prepared layer's mask (its bytes, as masks.bin stores them) to out;
        returns the number of pruned entries."""
        opts = self.opts
        nm = opts["nm"]
        self.bits.reset()
        self.model = open(MODEL_PATH, "rb")
        self.weights = self.model                   # where passes read the weights
        self.weights_offset = self.info.offset
        try:
            if nm:
                n_of_m(self, nm[0], nm[1], out)
                return self.bits.pruned
            if not opts["steps"]:
                one_shot(self, opts["bp"], out)
                return self.bits.pruned
            from .gradual import gradual  # steps > 0 only: loaded when asked for
            return gradual(self, out)
        finally:
            if self.weights is not self.model:
                self.weights.close()
            self.model.close()
            for path in (SCORES_PATH, MASK_STEP_PATH, RUNNING_PATH, WORK_PATH):
                store.discard(path)

    # -- reading and scoring the weights ------------------------------------------------

    def start(self):
        # Start a pass over the layer's weights as they are now (the model's, or those a
        # gradual prune has pruned so far).
        self.weights.seek(self.weights_offset)

    def read(self, i0, m):
        """Read weights i0 .. i0 + m - 1 (the pass reads them in order) into self.w, and
        their activations into self.a when the scorer takes one per weight."""
        src = self.weights
        read_into(src, self.wv, m, self.what)
        if self.act_per_weight:
            pos = src.tell()  # src may be the model file itself
            self.model.seek(self.info.offset + self.info.n + i0)
            read_into(self.model, self.av, m, self.what_act)
            src.seek(pos)

    def use_work(self, tmp):
        # The weights as pruned so far were written to tmp: they become the work file,
        # which later passes read.
        if self.weights is not self.model:
            self.weights.close()
        store.commit(tmp, WORK_PATH)
        self.weights = open(WORK_PATH, "rb")
        self.weights_offset = 0

    def begin(self):
        # Before a scoring pass: the flows pre-pass when the scorer needs it, and the
        # random scorer's seed.
        if self.needs & scorers.FLOWS:
            self._flows()
        self.x = self.opts["seed"]

    def score(self, i0, m):
        """A per-weight scorer's scores of weights i0 .. i0 + m - 1 (in self.w) into the
        Pruner's scores."""
        self.streamed(self, i0, m)

    def _flows(self):
        """The row and column L1 sums of the whole layer: a pass of their own."""
        info = self.info
        cols = info.cols
        ra, ca = self.row_acc, self.col_acc
        for r in range(info.rows):
            ra[r] = 0
        for c in range(cols):
            ca[c] = 0
        self.start()
        i0 = 0
        n = info.n
        while i0 < n:
            m = n - i0 if n - i0 < self.tile else self.tile
            self.read(i0, m)
            scores.add_l1(self.w, m, i0 // cols, i0 % cols, cols, ra, ca)
            i0 += m
        self.sample_heap()
