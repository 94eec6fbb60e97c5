# A streamed layer's scores in a scratch file, and the exact-k cut over them
# (docs/streaming.md, "The passes"; docs/spec.md §3, §5.3).
#
# write(s) scores the layer of a stream.LayerStream into /prune8/scores.tmp in index
# order: int16 per weight, int32 per row, column or block. After open():
#   cut(start, count, k, strict, min_score) sets t and ties as Pruner._cut does for the
#     scores start .. start + count - 1: a radix select over the file, one pass per score
#     byte, the 256 counts summed over every chunk read;
#   fill(start, count, t, ties, bits, out) reads those scores again in order into a
#     mask_writer.BitWriter (prune those below t and the first `ties` equal to it) and
#     returns the ties not used.
# Chunks are read into the Pruner's own score buffers, so nothing here grows with the
# layer.

from . import select
from .formats import SCORES_PATH
from .tiles import WEIGHT, read_into, write_from


class ScoreFile:
    def __init__(self, pruner, tile):
        p = pruner
        self.p = p
        self.sv = memoryview(p.scores)[:tile]       # a tile of int16 scores
        self.uchunk = len(p.units)                  # unit scores (int32) per read
        self.uv = memoryview(p.units)
        self.tile = tile
        self.hist = p._hist
        self.wide = False                           # int32 unit scores, not int16
        self.f = None
        self.t = 0                                  # cut()'s result
        self.ties = 0
        self._pos = 0
        self._m = 0                                 # the length _view was made for
        self._view = None

    def write(self, s):
        # The scores of s's layer into the scratch file.
        self.wide = s.unit != WEIGHT
        self._view = None
        f = open(SCORES_PATH, "wb")
        try:
            s.begin()
            if self.wide:
                s.streamed(s, f)
            else:
                n = s.info.n
                s.start()
                i0 = 0
                while i0 < n:
                    m = n - i0 if n - i0 < self.tile else self.tile
                    s.read(i0, m)
                    s.score(i0, m)
                    write_from(f, self.sv, m)
                    i0 += m
        finally:
            f.close()
        s.sample_heap()

    def open(self):
        self.f = open(SCORES_PATH, "rb")

    def close(self):
        self.f.close()

    def _chunk(self, m):
        """Read the next m scores of the file into the Pruner's buffers, through a view
        of m scores made when m changes: a per-channel prune reads every row, all of one
        length, three times, and a slice made per read is garbage each time."""
        if m != self._m or self._view is None:
            self._m = m
            self._view = (self.uv if self.wide else self.sv)[:m]
        if self.wide:
            read_into(self.f, self._view, m, "scores", 4)
            return self.p.units
        read_into(self.f, self._view, m, "scores", 2)
        return self.p.scores

    def _limit(self):
        return self.uchunk if self.wide else self.tile

    def _select(self, start, count, pos):
        """The value at sorted position pos of scores start .. start + count - 1; sets
        self._pos to pos's rank among the scores equal to it."""
        hist = self.hist
        width = 4 if self.wide else 2
        top = 24 if self.wide else 8   # unit scores < 2**32; int16 scores < 2**15
        limit = self._limit()
        prefix = 0
        shift = top
        while True:
            for d in range(256):
                hist[d] = 0
            self.f.seek(start * width)
            left = count
            while left:
                m = left if left < limit else limit
                src = self._chunk(m)
                select.radix_count(src, 0, m, hist, shift, top, prefix)
                left -= m
            d = select.radix_bucket(hist, pos)
            pos -= select.radix_below(hist, d)
            prefix = (prefix << 8) | d
            if shift == 0:
                self._pos = pos
                return prefix
            shift -= 8

    def cut(self, start, count, k, strict, min_score):
        """Pruner._cut's rule over scores start .. start + count - 1: self.t, self.ties."""
        t = 0
        ties = 0
        if k > 0:
            t = self._select(start, count,
                             k - 1 if not strict else (k if k < count - 1 else count - 1))
            if not strict:  # k - count(< t) = the rank of position k - 1 among equals + 1
                ties = self._pos + 1
        if min_score > t:
            t = min_score
            ties = 0
        self.t = t
        self.ties = ties

    def fill(self, start, count, t, ties, bits, out):
        """Mask bits of scores start .. start + count - 1 into bits (written to out);
        returns the ties left."""
        limit = self._limit()
        self.f.seek(start * (4 if self.wide else 2))
        left = count
        while left:
            m = left if left < limit else limit
            ties = bits.fill(self._chunk(m), m, t, ties, self.wide, out)
            left -= m
        return ties
