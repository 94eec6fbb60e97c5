# A streamed layer's mask, written to masks.bin in index order (docs/streaming.md; the
# bit layout of docs/spec.md §4.1): BitWriter, and one pass per pattern over a
# stream.LayerStream `s`:
#   one_shot(s, bp, out)   prune to bp at the layer's scope (one k over every entry) or
#                          the channel scope (the same k in every row), through s's
#                          score file (prune8.score_file);
#   n_of_m(s, n, m, out)   keep n of every m weights along each row: no score file, a
#                          tile of whole groups is scored and masked at once.
# prune8.gradual walks a gradual prune's steps with one_shot. Each pass counts its pruned
# entries in s.bits.pruned.

from array import array

from . import bp as _bp
from . import errors
from .mask import Mask

_nm_span = None  # prune8.patterns.nm_span, once an N:M pass has loaded it


class BitWriter:
    # The bits of up to `cap` entries at a time, written to a file in index order:
    # fill() and nm() set the next m bits and write every byte they complete; the byte a
    # chunk leaves half full waits for the next one; finish() writes it and the zero bytes
    # up to the next 32-bit word, as a mask is stored. pruned: entries pruned since reset().

    def __init__(self, cap):
        self.window = Mask(0, cap + 8)
        self.view = memoryview(self.window._bits)
        self.phase = 0                              # bits of window byte 0 already set
        self._full = 0                              # the length _head was made for
        self._head = self.view[:0]

    @property
    def pruned(self):
        return self.window.pruned

    def reset(self):
        self.window.pruned = 0
        self.phase = 0

    def fill(self, src, m, t, ties, wide, out):
        # Bits of scores src[0:m]: pruned below t and for the first `ties` equal to t
        # (Mask.fill_span); returns the ties not used, which the next chunk goes on with.
        ties = self.window.fill_span(src, 0, self.phase, m, t, ties, wide)
        self._flush(out, m)
        return ties

    def nm(self, src, m, n, g, out):
        # Bits of the whole groups of g scores in src[0:m]: the n highest of each kept.
        global _nm_span
        if _nm_span is None:  # N:M alone needs prune8.patterns: loaded when asked for
            from .patterns import nm_span
            _nm_span = nm_span
        _nm_span(self.window, src, 0, self.phase, m, n, g)
        self._flush(out, m)

    def _flush(self, out, m):
        # Write the complete bytes of the window's m new bits; keep the partial one.
        bits = self.window._bits
        total = self.phase + m
        full = total >> 3
        if full:
            if full != self._full:  # rows of one length complete the same bytes each time
                self._full = full
                self._head = self.view[:full]
            out.write(self._head)
            if total & 7:
                bits[0] = bits[full]
        self.phase = total & 7

    def finish(self, out, count):
        # The last partial byte and the zero bytes up to the word boundary of count bits.
        bits = self.window._bits
        nbytes = (count + 7) >> 3
        tail = (((count + 31) >> 5) << 2) - nbytes
        if self.phase:
            bits[0] &= (1 << self.phase) - 1  # N:M leaves older bits above the last one
            out.write(self.view[:1])
        for j in range(tail):
            bits[j] = 0
        if tail:
            out.write(self.view[:tail])
        self.phase = 0


def one_shot(s, bp, out):
    # Score s's layer into its score file, cut, fill: the mask of one prune to bp.
    sf = s.score_file
    opts = s.opts
    sf.write(s)
    sf.open()
    try:
        if opts["scope"] == "channel":
            _channel(s, sf, bp, out)
        else:
            count = s.count
            sf.cut(0, count, _bp.prune_count(count, bp, opts["min_keep"]), s.strict,
                   opts["min_score"])
            sf.fill(0, count, sf.t, sf.ties, s.bits, out)
            s.bits.finish(out, count)
    finally:
        sf.close()
    s.sample_heap()


def _channel(s, sf, bp, out):
    # Every row's cut first (rows x 2 ints), then the rows' bits in order.
    rows, cols = s.info.rows, s.info.cols
    opts = s.opts
    k = _bp.prune_count(cols, bp, opts["min_keep"])
    ts = array("i", range(rows))  # each set below before it is read; no bytes(4 * rows)
    ties = array("i", range(rows))  # left behind (docs/heap.md)
    for r in range(rows):
        sf.cut(r * cols, cols, k, s.strict, opts["min_score"])
        ts[r] = sf.t
        ties[r] = sf.ties
    for r in range(rows):
        sf.fill(r * cols, cols, ts[r], ties[r], s.bits, out)
    s.bits.finish(out, rows * cols)


def n_of_m(s, n, m, out):
    # A tile is rounded down to whole groups (groups never cross rows: cols % m == 0).
    total = s.info.n
    s.begin()
    tile = s.tile - s.tile % m if s.tile >= m else 0
    if tile == 0:
        raise errors.nm_tile(m, s.tile)
    s.start()
    i0 = 0
    while i0 < total:
        k = total - i0 if total - i0 < tile else tile
        s.read(i0, k)
        s.score(i0, k)
        s.bits.nm(s.p.scores, k, n, m, out)
        i0 += k
    s.bits.finish(out, total)
    s.sample_heap()
