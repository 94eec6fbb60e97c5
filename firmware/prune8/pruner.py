# The Pruner: every buffer allocated once, at construction (docs/spec.md §5.1, §5.2).
# Its calls implement docs/spec.md §2 (scores), §3 (threshold, ties), §4 (masks).
#
# After __init__, scoring, thresholding, masking, apply and row/column pruning
# allocate nothing (with sparsity_bp=; a float sparsity is converted to bp first,
# which may allocate a float). Checks run before any buffer is written, so a failed
# call leaves the weights, the scores and the last mask as they were.

from array import array

from . import bp as _bp
from . import check, errors, kernels, scores
from . import select as _select
from .mask import Mask
from .profile import MAX_UNITS, MAX_WEIGHTS

# patterns.nm_fill once nm_mask() has loaded it: N:M is the one mask of the Pruner not
# every prune makes, and an import inside the call would allocate on every call
_nm_fill = None

_NONE = 0   # no scores yet
_WEIGHT = 1  # one int16 score per weight, in .scores
_UNIT = 2    # one int32 score per row, column or block, in .units


class Pruner:
    """Fixed-capacity int8 pruner.

    p = Pruner()                  # max_weights=2048, max_units=64 (this board's profile)
    p.magnitude(w)                # or gradient(w, a, cols), mincut(w, rows, cols),
                                  #    rows(w, rows, cols), cols(w, rows, cols)
    m = p.mask(0.5)               # or mask(sparsity_bp=5000, tie="strict", ...)
    p.apply(w, m); p.stats(m)
    """

    def __init__(self, max_weights=MAX_WEIGHTS, max_units=MAX_UNITS, max_sort=None):
        if not (check.is_int(max_weights) and check.is_int(max_units)) \
                or not 1 <= max_weights <= errors.MAX_WEIGHTS_LIMIT \
                or not 1 <= max_units <= errors.MAX_UNITS_LIMIT:
            raise errors.bad_capacity(max_weights, max_units)
        if max_sort is None:
            max_sort = max_weights
        elif not check.is_int(max_sort) or not 0 <= max_sort <= max_weights:
            raise errors.bad_sort(max_sort, max_weights)
        self.max_weights = max_weights
        self.max_units = max_units
        # The most scores method="bubble" sorts (its copy's size, docs/spec.md §5.1): a
        # caller that never asks for bubble past what "auto" gives it (prune8.prune_model)
        # saves the copy, 2 bytes a weight.
        self.max_sort = max_sort
        self.max_blocks = max_units if max_units > max_weights // 4 else max_weights // 4
        # Each type's first array is built from a range (its values are never read
        # before a call writes them), the others are slices of it, copied bytewise:
        # array(code, bytes(k)) would leave a bytes object of each buffer's size behind
        # as garbage, and a board's peak is the Pruner plus that garbage (docs/heap.md).
        # A range's values fit int16 up to 32,768 entries; a bigger capacity iterates a
        # zeroed bytes object instead.
        ulen = self.max_blocks if self.max_blocks < max_sort else max_sort
        ulen = ulen if ulen > 256 else 256
        z = range(max_weights) if max_weights <= 32768 else memoryview(bytes(max_weights))
        self.scores = array("h", z)                        # weight scores, int16
        # row / column / block scores, int32: blocks of >= 4 weights always fit
        self.units = array("i", range(self.max_blocks))
        # Scratch is shared where two uses are never live together: bubble sort's copy
        # of unit scores and radix select's 256 counts (one threshold runs one
        # algorithm); the per-unit work arrays of the scorers (each lives for one
        # scoring call) and of channel_mask (after scoring). Wanda's sums persist.
        self._scratch = self.scores[:max_sort]             # bubble sort's copy
        self._uscratch = self.units[:ulen] if ulen <= self.max_blocks \
            else array("i", range(ulen))                   # ... of unit scores
        self._hist = self._uscratch                        # radix select counts
        self._sumsq = self.units[:max_units]               # Wanda: per-column sums of x*x
        self.wanda_reset()                                 # ... which start at 0
        a = self.units[:max_units]                         # a slice is a copy
        b = self.units[:max_units]
        self._row_flow = a                                 # mincut's flows
        self._col_flow = b
        self._norms = a                                    # wanda(): its column norms
        self._mults = a                                    # scaled(): its multipliers
        self._row_t = a                                    # channel_mask: per-row cut
        self._row_ties = b
        self._t = 0                                         # _cut's result
        self._ties = 0
        self._mask = Mask(0, max_weights if max_weights > max_units else max_units)
        self.n = 0
        self._kind = _NONE
        kernels.chosen()  # viper where this port runs it, loaded now (prune8.kernels)

    def __repr__(self):
        kind = ("none", "weight", "unit")[self._kind]  # unit: rows, columns or blocks
        return "Pruner(max_weights=%d, max_units=%d, scores=%d %s)" % (
            self.max_weights, self.max_units, self.n, kind)

    # -- checks ----------------------------------------------------------------------

    def _layer(self, w, rows, cols, writable=False):
        check.int8_buffer(w, "weights", writable)
        n = len(w)
        check.not_empty(n, "weights")
        check.shape(n, rows, cols)
        check.capacity(n, self.max_weights)
        check.units("rows", rows, self.max_units)
        check.units("cols", cols, self.max_units)
        return n

    # -- scoring -------------------------------------------------------------------

    def _per_weight(self, w, scorer):
        check.int8_buffer(w, "weights")
        n = len(w)
        check.not_empty(n, "weights")
        check.capacity(n, self.max_weights)
        scorer(w, n, self.scores)
        self.n = n
        self._kind = _WEIGHT
        return n

    def magnitude(self, w):
        """Score |w| per weight. Returns the number of scores."""
        return self._per_weight(w, scores.magnitude)

    def l2(self, w):
        """Score w * w per weight (squared magnitude)."""
        return self._per_weight(w, scores.l2)

    def random(self, n, seed):
        """Score n entries with the seeded LCG (an ablation baseline)."""
        check.count(n, "random scores")
        check.capacity(n, self.max_weights)
        check.seed(seed)
        scores.random(n, seed, self.scores)
        self.n = n
        self._kind = _WEIGHT
        return n

    def wanda_add(self, x):
        """Add one calibration sample x (int8, one per column) to the Wanda sums."""
        check.int8_buffer(x, "activations")
        cols = len(x)
        check.not_empty(cols, "activations")
        check.units("cols", cols, self.max_units)
        if self._sumsq_cols and cols != self._sumsq_cols:
            raise errors.sumsq_mismatch(cols, self._sumsq_cols)
        self._sumsq_cols = cols
        scores.add_squares(self._sumsq, x, cols, 0, cols)

    def wanda_reset(self):
        """Forget the accumulated Wanda sums."""
        for c in range(self.max_units):
            self._sumsq[c] = 0
        self._sumsq_cols = 0

    def wanda(self, w, rows, cols, sumsq=None):
        """Score |w| * isqrt(sum of x*x over calibration samples) >> 4 (Wanda).

        sumsq: one sum per column; default: the sums accumulated by wanda_add().
        """
        n = self._layer(w, rows, cols)
        if sumsq is None:
            if self._sumsq_cols != cols:
                raise errors.sumsq_mismatch(self._sumsq_cols, cols)
            sumsq = self._sumsq
        else:
            if len(sumsq) != cols:
                raise errors.sumsq_mismatch(len(sumsq), cols)
            check.sumsq(sumsq)
        norms = self._norms  # the kernels read an int32 array, whatever sumsq is
        for c in range(cols):
            norms[c] = sumsq[c]
        scores.wanda(w, rows, cols, norms, norms, self.scores)
        self.n = n
        self._kind = _WEIGHT
        return n

    def scaled(self, w, rows, cols, mults):
        """Score |w| scaled by its row's multiplier: (|w| * mults[r]) >> 7, saturated at
        32767 (the scale-aware magnitude of a per-channel quantized layer)."""
        n = self._layer(w, rows, cols)
        check.scales(mults, rows)
        own = self._mults  # the kernels read an int32 array, whatever mults is
        for r in range(rows):
            own[r] = mults[r]
        scores.scaled(w, rows, cols, own, self.scores)
        self.n = n
        self._kind = _WEIGHT
        return n

    def blocks(self, w, rows, cols, br, bc):
        """Score each br x bc block by its L1 sum; mask() then masks blocks."""
        self._layer(w, rows, cols)
        check.blocks(rows, cols, br, bc, self.max_blocks)
        scores.block_l1(w, rows, cols, br, bc, self.units)
        self.n = (rows // br) * (cols // bc)
        self._kind = _UNIT
        return self.n

    def gradient(self, w, a, cols=None):
        """Score |w * a| >> 4; a per weight, or per column (len(a) == cols)."""
        check.int8_buffer(w, "weights")
        check.int8_buffer(a, "activations")
        n = len(w)
        check.not_empty(n, "weights")
        if cols is not None:
            if not check.is_int(cols) or cols < 1:
                raise errors.bad_cols(cols)
            if n % cols:
                raise errors.cols_mismatch(n, cols)
        na = len(a)
        if na == n:
            per_column = 0
        elif cols is not None and na == cols:
            per_column = cols
        else:
            raise errors.activations_mismatch(na, n, cols)
        check.capacity(n, self.max_weights)
        if cols is not None:
            check.units("cols", cols, self.max_units)
        scores.gradient(w, a, n, per_column, self.scores, 0)
        self.n = n
        self._kind = _WEIGHT
        return n

    def mincut(self, w, rows, cols):
        """Score min-cut edge importance of a rows x cols layer (row-major)."""
        n = self._layer(w, rows, cols)
        scores.mincut(w, rows, cols, self._row_flow, self._col_flow, self.scores)
        self.n = n
        self._kind = _WEIGHT
        return n

    def rows(self, w, rows, cols):
        """Score each row (output neuron) by its L1 norm; mask() then masks rows."""
        self._layer(w, rows, cols)
        scores.row_l1(w, rows, cols, self.units)
        self.n = rows
        self._kind = _UNIT
        return rows

    def cols(self, w, rows, cols):
        """Score each column (input) by its L1 norm; mask() then masks columns."""
        self._layer(w, rows, cols)
        scores.col_l1(w, rows, cols, self.units)
        self.n = cols
        self._kind = _UNIT
        return cols

    def score(self, i):
        """Score i of the last scoring call."""
        if i < 0 or i >= self.n:
            raise errors.index_range("score index", i, self.n)
        return (self.units if self._kind == _UNIT else self.scores)[i]

    # -- threshold and mask ----------------------------------------------------------

    def threshold(self, pos, method="auto"):
        """The current scores' value at sorted position pos (0-based)."""
        check.method(method)
        if pos < 0 or pos >= self.n:
            raise errors.index_range("position", pos, self.n)
        self._sortable(method, self.n)
        return self._threshold(pos, method)

    def _sortable(self, method, n):
        # method="bubble" sorts a copy of the n scores: at most max_sort of them
        if method == "bubble" and n > self.max_sort:
            raise errors.capacity_sort(n, self.max_sort)

    def _threshold(self, pos, method, n=None, off=0):
        """The value at sorted position pos of scores[off:off + n] (default: all)."""
        if n is None:
            n = self.n
        unit = self._kind == _UNIT
        src = self.units if unit else self.scores
        if method == "bubble" or (method == "auto" and n <= _select.BUBBLE_MAX
                                  and n <= self.max_sort):
            return _select.bubble(src, n, pos, self._uscratch if unit else self._scratch, off,
                                  unit)
        # unit scores (block sums included) are < 128 * 2**20 < 2**32; weight scores < 2**15
        return _select.radix(src, n, pos, self._hist, 24 if unit else 8, off)

    def _cut(self, k, strict, min_score, method, n, off):
        """The rule of docs/spec.md §3.1-§3.4 for the n scores at off: prune those below
        self._t and the first self._ties equal to it. (Attributes, not a returned tuple: a
        tuple would be a heap allocation on every call.)"""
        src = self.units if self._kind == _UNIT else self.scores
        t = 0  # k <= 0: no score is below 0, so nothing is pruned by rank
        ties = 0
        if k > 0:
            t = self._threshold(k - 1 if not strict else (k if k < n - 1 else n - 1), method,
                                n, off)
            if not strict:  # exact: prune the first k - count(< t) entries equal to t
                ties = k - _select.count_below(src, off, n, t, self._kind == _UNIT)
        if min_score > t:
            t = min_score
            ties = 0
        self._t = t
        self._ties = ties

    def _fill_mask(self, k, strict, min_score, method):
        n = self.n
        self._cut(k, strict, min_score, method, n, 0)
        unit = self._kind == _UNIT
        self._mask.fill(self.units if unit else self.scores, n, self._t, self._ties, unit)
        return self._mask

    def channel_mask(self, rows, cols, sparsity=None, *, sparsity_bp=None, tie="exact",
                     min_keep=1, min_score=0, method="auto"):
        """Mask the current weight scores of a rows x cols layer per channel: in every row
        prune k = min(cols * bp // 10000, cols - min_keep) lowest, by the same rules as
        mask() within the row. Returns the pruner's own Mask."""
        strict = check.tie(tie)
        check.method(method)
        bp = _bp.resolve(sparsity, sparsity_bp)
        if self._kind != _WEIGHT:
            raise errors.scope_weights()
        check.shape(self.n, rows, cols)
        check.units("rows", rows, self.max_units)
        check.min_keep(min_keep, cols)
        check.min_score(min_score)
        self._sortable(method, cols)
        k = _bp.prune_count(cols, bp, min_keep)
        ts = self._row_t
        ties = self._row_ties
        for r in range(rows):
            self._cut(k, strict, min_score, method, cols, r * cols)
            ts[r] = self._t
            ties[r] = self._ties
        self._mask.fill_rows(self.scores, rows, cols, ts, ties)
        return self._mask

    def mask(self, sparsity=None, *, sparsity_bp=None, tie="exact", min_keep=1, min_score=0,
             method="auto"):
        """Mask the current scores: prune k = min(n * bp // 10000, n - min_keep) lowest.

        Returns the pruner's own Mask, overwritten by the next call (m.copy() keeps one).
        """
        strict = check.tie(tie)
        check.method(method)
        bp = _bp.resolve(sparsity, sparsity_bp)
        n = self.n
        if n == 0:
            raise errors.no_scores()
        check.min_keep(min_keep, n)
        check.min_score(min_score)
        self._sortable(method, n)
        return self._fill_mask(_bp.prune_count(n, bp, min_keep), strict, min_score, method)

    def nm_mask(self, n, m, rows, cols):
        """N:M mask of the current weight scores: keep n of every m along each row."""
        check.nm(n, m)
        if self._kind != _WEIGHT:
            raise errors.no_weight_scores()
        check.shape(self.n, rows, cols)
        if cols % m:
            raise errors.nm_cols(cols, m)
        global _nm_fill
        if _nm_fill is None:
            from .patterns import nm_fill
            _nm_fill = nm_fill
        _nm_fill(self._mask, self.scores, self.n, n, m)
        return self._mask

    # -- applying ------------------------------------------------------------------

    def apply(self, w, mask):
        """Zero, in place, every weight whose mask bit is 0."""
        check.int8_buffer(w, "weights", True)
        n = len(w)
        check.not_empty(n, "weights")
        check.capacity(n, self.max_weights)
        if (mask.n + 31) >> 5 != (n + 31) >> 5:
            raise errors.words_mismatch((mask.n + 31) >> 5, n)
        if mask.n != n:
            raise errors.mask_mismatch(mask.n, n)
        mask.apply(w, n)

    def _prune_units(self, by_rows, w, rows, cols, sparsity, sparsity_bp, tie, min_keep, method):
        strict = check.tie(tie)
        check.method(method)
        bp = _bp.resolve(sparsity, sparsity_bp)
        self._layer(w, rows, cols, True)
        count = rows if by_rows else cols
        check.min_keep(min_keep, count)
        self._sortable(method, count)
        if by_rows:
            scores.row_l1(w, rows, cols, self.units)
        else:
            scores.col_l1(w, rows, cols, self.units)
        self.n = count
        self._kind = _UNIT
        m = self._fill_mask(_bp.prune_count(count, bp, min_keep), strict, 0, method)
        bits = m._bits
        for u in range(count):
            if not (bits[u >> 3] >> (u & 7)) & 1:
                if by_rows:
                    base = u * cols
                    for i in range(base, base + cols):
                        w[i] = 0
                else:
                    i = u
                    while i < rows * cols:  # range() with a variable step would allocate
                        w[i] = 0
                        i += cols
        return m

    def prune_rows(self, w, rows, cols, sparsity=None, *, sparsity_bp=None, tie="exact",
                   min_keep=1, method="auto"):
        """Zero whole rows with the lowest L1 norms, in place; returns the keep mask over rows."""
        return self._prune_units(True, w, rows, cols, sparsity, sparsity_bp, tie, min_keep,
                                 method)

    def prune_cols(self, w, rows, cols, sparsity=None, *, sparsity_bp=None, tie="exact",
                   min_keep=1, method="auto"):
        """Zero whole columns with the lowest L1 norms, in place; returns the keep mask."""
        return self._prune_units(False, w, rows, cols, sparsity, sparsity_bp, tie, min_keep,
                                 method)

    def stats(self, mask=None):
        """{'n', 'pruned', 'kept', 'sparsity_bp'} of a mask (default: the last one)."""
        return (self._mask if mask is None else mask).stats()
