# The scorers of a board prune, in one table (docs/spec.md §2, §5.3), as TensorFlow Lite
# Micro's operator registrations tell its interpreter how to prepare and run each op.
# prune8.prune_model (a layer in RAM) and prune8.stream (a stored layer a tile at a time)
# both dispatch through it; formats.SCORERS stays the names' definition (masks.bin
# stores a scorer's index there).
#
#   TABLE[name] = (unit, needs, in_ram, streamed)
#
# unit      what one mask entry covers: tiles.WEIGHT, ROW, COL or BLOCK.
# needs     what the scorer takes besides the weights, as bits:
#             ACT    activations: the layer's own (NAME.act) or the board's calibration,
#                    one per column (kept whole when streamed) or one per weight (read
#                    beside each tile)
#             CALIB  Wanda's per-column sums of squares (kept as their norms)
#             SCALES the per-row scale multipliers (32768 each when none are stored)
#             SEED   opts["seed"]; streamed, the LCG's state goes on from tile to tile
#             BLOCK_SIZE  opts["block"] (br, bc); streamed, one block row's sums are kept
#             FLOWS  the row and column L1 sums of the whole layer, before any score
#                    (streamed: a pre-pass over the stored layer)
#           The rows and columns a scorer takes are in its in_ram call.
# in_ram    in_ram(p, w, info, a, sumsq, scale, opts): score the layer held in RAM with
#           the Pruner's public call (w: a view of its n weights; a, sumsq, scale: the
#           Pruner-sized buffers the layer was loaded into).
# streamed  A per-weight scorer: streamed(s, i0, m) scores weights i0 .. i0 + m - 1 (the
#           tile in s.w) into s.p.scores[0:m]. A unit scorer: streamed(s, out) writes
#           every unit score (int32, in index order) to the score file out. s is the
#           prune8.stream.LayerStream: s.p, s.info, s.w, s.a (the tile's activations),
#           s.x (the LCG state), the arrays load() made, start() and read(i0, m).
#
# Errors: missing() raises errors.no_activations, no_calibration or no_block_size for a
# layer without what `needs` asks for, first, on both paths; then come the Pruner's own
# checks, which the streamed path makes itself in the same order (stream.py).
#
# Adding a scorer: its name at the end of formats.SCORERS, its kernel in scores.py
# (and in viper.py when it is hot), the Pruner method that scores a layer with it (its
# public call, which in_ram makes), an entry here, its twin in prune8_host.twin, tests.
# The entries call the kernels as scores.NAME at run time: prune8.kernels swaps kernels
# by module attribute, so the table never holds a kernel itself. Nothing here allocates
# per tile.

from array import array

from . import check, errors, scores
from .formats import SCALE, SUM
from .store import read_ints
from .tiles import BLOCK, COL, ROW, WEIGHT, read_into

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

ACT = const(1)
CALIB = const(2)
SCALES = const(4)
SEED = const(8)
BLOCK_SIZE = const(16)
FLOWS = const(32)


# -- in RAM: the Pruner's calls ---------------------------------------------------------

def _magnitude(p, w, info, a, sumsq, scale, opts):
    p.magnitude(w)


def _l2(p, w, info, a, sumsq, scale, opts):
    p.l2(w)


def _random(p, w, info, a, sumsq, scale, opts):
    p.random(info.n, opts["seed"])


def _gradient(p, w, info, a, sumsq, scale, opts):
    na = info.act_len
    p.gradient(w, memoryview(a)[:na], None if na == info.n else info.cols)


def _wanda(p, w, info, a, sumsq, scale, opts):
    p.wanda(w, info.rows, info.cols, memoryview(sumsq)[:info.cols])


def _mincut(p, w, info, a, sumsq, scale, opts):
    p.mincut(w, info.rows, info.cols)


def _scaled(p, w, info, a, sumsq, scale, opts):
    p.scaled(w, info.rows, info.cols, memoryview(scale)[:info.rows])


def _rows(p, w, info, a, sumsq, scale, opts):
    p.rows(w, info.rows, info.cols)


def _cols(p, w, info, a, sumsq, scale, opts):
    p.cols(w, info.rows, info.cols)


def _blocks(p, w, info, a, sumsq, scale, opts):
    block = opts["block"]
    p.blocks(w, info.rows, info.cols, block[0], block[1])


# -- streamed: a tile of weight scores, or a layer's unit scores ------------------------

def _magnitude_tile(s, i0, m):
    scores.magnitude(s.w, m, s.p.scores)


def _l2_tile(s, i0, m):
    scores.l2(s.w, m, s.p.scores)


def _random_tile(s, i0, m):
    s.x = scores.random(m, s.x, s.p.scores)


def _gradient_tile(s, i0, m):
    if s.a_cols is None:  # one activation per weight, read beside the tile
        scores.gradient(s.w, s.a, m, 0, s.p.scores, 0)
    else:
        cols = s.info.cols
        scores.gradient(s.w, s.a_cols, m, cols, s.p.scores, i0 % cols)


def _wanda_tile(s, i0, m):
    cols = s.info.cols
    scores.wanda_tile(s.w, m, i0 % cols, cols, s.norms, s.p.scores)


def _mincut_tile(s, i0, m):
    cols = s.info.cols
    scores.mincut_tile(s.w, m, i0 // cols, i0 % cols, cols, s.row_acc, s.col_acc,
                       s.p.scores)


def _scaled_tile(s, i0, m):
    cols = s.info.cols
    scores.scaled_tile(s.w, m, i0 // cols, i0 % cols, cols, s.mults, s.p.scores)


def _rows_file(s, out):  # the row L1 norms: the FLOWS pre-pass summed them
    out.write(s.row_acc)


def _cols_file(s, out):
    out.write(s.col_acc)


def _blocks_file(s, out):
    # Each block row (a band of br rows) is summed over the tiles that hold it, and
    # written when it is complete; a tile may end anywhere in a band.
    info = s.info
    n, cols = info.n, info.cols
    band = s.band
    band_len = s.br * cols
    s.start()
    i0 = 0
    while i0 < n:
        m = n - i0 if n - i0 < s.tile else s.tile
        s.read(i0, m)
        i = 0
        while i < m:
            g = i0 + i
            end = (g // band_len + 1) * band_len
            k = m - i if m - i < end - g else end - g
            scores.add_blocks(s.w, i, k, g % cols, cols, s.bc, band)
            i += k
            if g + k == end:
                out.write(band)
                for j in range(len(band)):
                    band[j] = 0
        i0 += m


# The table, one entry per name of formats.SCORERS.
TABLE = {
    "magnitude": (WEIGHT, 0, _magnitude, _magnitude_tile),
    "gradient": (WEIGHT, ACT, _gradient, _gradient_tile),
    "mincut": (WEIGHT, FLOWS, _mincut, _mincut_tile),
    "rows": (ROW, FLOWS, _rows, _rows_file),
    "cols": (COL, FLOWS, _cols, _cols_file),
    "l2": (WEIGHT, 0, _l2, _l2_tile),
    "random": (WEIGHT, SEED, _random, _random_tile),
    "wanda": (WEIGHT, CALIB, _wanda, _wanda_tile),
    "blocks": (BLOCK, BLOCK_SIZE, _blocks, _blocks_file),
    "scaled": (WEIGHT, SCALES, _scaled, _scaled_tile),
}


def unit(name):
    return TABLE[name][0]


def unit_count(u, rows, cols, br, bc):
    # The entries of a rows x cols layer's mask of unit u (blocks of br x bc)
    if u == ROW:
        return rows
    if u == COL:
        return cols
    if u == BLOCK:
        return (rows // br) * (cols // bc)
    return rows * cols


def missing(info, needs, block):
    # What the stored layer (or the prune's options) lacks for the scorer: the first error.
    if needs & ACT and not info.act_len:
        raise errors.no_activations(info.name)
    if needs & CALIB and not info.calib:
        raise errors.no_calibration(info.name, info.cols)
    if needs & BLOCK_SIZE and not block:
        raise errors.no_block_size()


def _ints(s, name, n, zero=False):
    """A view of n int32 values of an array s keeps under `name`, grown when short: a
    prune of many layers allocates each once, and array("i", range(n)) leaves no bytes
    object of its size behind as array("i", bytes(4 * n)) would (docs/heap.md). zero:
    the values start at 0, else they are the caller's to set."""
    own = getattr(s, name, None)
    if own is None or len(own) < n:
        own = array("i", range(n))
        setattr(s, name, own)
    v = memoryview(own)[:n]
    if zero:
        for i in range(n):
            v[i] = 0
    return v


def load(s, f, info, needs, act):
    # The streamed path's per-layer arrays, O(rows + cols), from the open model file f;
    # act: the board's calibrated activations (one per column), which win over the
    # stored ones. Checks each value read as the Pruner's call would.
    rows, cols = info.rows, info.cols
    if needs & FLOWS:
        s.row_acc = _ints(s, "own_rows", rows, True)
        s.col_acc = _ints(s, "own_cols", cols, True)
    if needs & ACT:
        s.a_cols = act
        if act is None and info.act_len == cols and info.act_len != info.n:
            s.a_cols = bytearray(cols)
            f.seek(info.offset + info.n)
            read_into(f, memoryview(s.a_cols), cols, "activations of " + info.name)
    if needs & CALIB:
        sums = _ints(s, "own_sums", cols)
        f.seek(info.sums_offset)
        read_ints(f, SUM, sums, cols, "layer data")
        check.sumsq(sums)
        s.norms = sums  # isqrt in place: one array
        scores.wanda_norms(sums, cols, s.norms)
    if needs & SCALES:
        s.mults = _ints(s, "own_mults", rows)
        if info.scaled:
            f.seek(info.scale_offset)
            read_ints(f, SCALE, s.mults, rows, "layer data")
        else:
            for r in range(rows):
                s.mults[r] = errors.MAX_SCALE
        check.scales(s.mults, rows)
    if needs & BLOCK_SIZE:
        s.band = _ints(s, "own_band", cols // s.bc, True)
