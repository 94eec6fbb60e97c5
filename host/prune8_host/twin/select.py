"""Threshold selection (docs/spec.md §3.1, §3.5): the twin of prune8.select.

The exact k-th smallest score without a general sort. np.partition is an introselect
that NumPy vectorises only with AVX-512; elsewhere it costs ~30x a widening copy on
16M scores (docs/benchmarks.md, "The twin at memory speed"). Here a strided sample
guesses the k-th value t and a band of values around it; one pass over the scores,
in cache-sized blocks, packs the keep bits `score >= t` and `score >= t + 1` into
mask bytes. Their counts confirm t (fewer than k scores below t, at least k up to
it) or say which neighbour to pack next, within the band. The two bit sets are the
mask on either side of the tie cut, and where they differ are the scores equal to t,
which places the cut. For magnitude, |w| is taken per block: no int16 array at all.

A band of many distinct values (wide score ranges) keeps its entries instead and
selects among them. When the sample misled (the k-th lies outside the band: a skewed
or periodic order can do that), np.partition answers: slower, never different.
Passes over large inputs are split across threads (threads.py).
"""

from __future__ import annotations

import math
import threading

import numpy as np

from prune8 import errors

from . import threads
from .bits import popcount, word_counts
from .scores import abs_u8

BLOCK = 1 << 18   # scores per block (a multiple of 8): block, bools and bits fit in L2
SAMPLE = 1 << 16  # scores sampled to guess the band (rank error ~ n / 512 at the median)
DIRECT = 1 << 17  # up to this many scores np.partition alone is as fast
MAX_WALK = 8      # a band of fewer values is walked from the guess; a wider one keeps
                  # its entries and selects among them
SIGMAS = 3        # band half-width in standard deviations of the sample's rank


def check_range(s: np.ndarray) -> None:
    """Scores must lie in 0..MAX_SMALL (int16 ones cannot exceed it)."""
    lo = int(s.min())
    if lo < 0 or (s.dtype.itemsize > 2 and int(s.max()) > errors.MAX_SMALL):
        raise errors.score_range(lo, int(s.max()))


_scratch = threading.local()  # per-thread buffers that outlive a call (see _buffers)


def _block_flags(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Two bool buffers of `size` for one block, kept per thread like _buffers."""
    flags = getattr(_scratch, "flags", None)
    if flags is None or flags[0].size < size:
        flags = _scratch.flags = (np.empty(size, bool), np.empty(size, bool))
    return flags[0][:size], flags[1][:size]


class Scores:
    """Scores read block by block: a 1-D integer array (any integer dtype).

    With check_range, the first full pass also checks the range (check_range) on the
    blocks it has in cache anyway, and raises at its end: a pass less than checking
    first. Nothing but the answer depends on the pass, so raising late is safe.
    """

    def __init__(self, s: np.ndarray, check_range: bool = False):
        self.s = s.reshape(-1)
        self.n = self.s.size
        self.unchecked = check_range

    def read(self, i: int, buf) -> np.ndarray:
        """The block of scores starting at i (buf: a buffer from self.buffer())."""
        return self.s[i:i + BLOCK]

    def buffer(self):
        return None

    def in_range(self, c: np.ndarray) -> bool:
        return int(c.min()) >= 0 and (c.dtype.itemsize <= 2 or int(c.max()) <= errors.MAX_SMALL)

    def each_block(self, fn) -> None:
        """fn(start, values, scratch) for every block, split across threads by ranges of
        blocks (threads.split); scratch is a per-thread pair of bool buffers."""
        check = self.unchecked
        nblocks = -(-self.n // BLOCK)

        def part(b0, b1):
            buf = self.buffer()
            scratch = _block_flags(min(self.n, BLOCK))
            ok = True
            for i in range(b0 * BLOCK, min(self.n, b1 * BLOCK), BLOCK):
                c = self.read(i, buf)
                ok = ok and (not check or self.in_range(c))
                fn(i, c, scratch)
            return ok

        ok = all(threads.split(part, nblocks, self.n))
        if check:
            self.unchecked = False
            if not ok:
                check_range(self.s)

    def sample(self, step: int) -> np.ndarray:
        return self.s[::step].copy()

    def values(self) -> np.ndarray:
        if self.unchecked:
            check_range(self.s)
            self.unchecked = False
        return self.s


class Magnitudes(Scores):
    """|w| of int8 weights as uint8 (0..128), computed per block, never stored whole."""

    def __init__(self, w: np.ndarray):
        self.w = w.reshape(-1)
        self.n = self.w.size
        self.unchecked = False

    def buffer(self):
        return np.empty(min(self.n, BLOCK), np.int8)

    def read(self, i: int, buf) -> np.ndarray:
        c = self.w[i:i + BLOCK]
        return abs_u8(c, buf[:c.size])

    def sample(self, step: int) -> np.ndarray:
        w = self.w[::step]
        return abs_u8(w, np.empty(w.size, np.int8))

    def values(self) -> np.ndarray:
        return abs_u8(self.w, np.empty(self.n, np.int8))


def _buffers(count: int, nbytes: int) -> list[np.ndarray]:
    """`count` byte buffers of at least nbytes, kept per thread between calls: fresh
    multi-megabyte arrays cost a page fault per 4 KB, more than packing them."""
    pool = getattr(_scratch, "pool", None)
    if pool is None or len(pool) < count or pool[0].size < nbytes:
        size = max(nbytes, pool[0].size if pool else 0)
        pool = [np.empty(size, np.uint8) for _ in range(max(count, len(pool or ())))]
        _scratch.pool = pool
    return [b[:nbytes] for b in pool[:count]]


def release_scratch() -> None:
    """Free this thread's scratch buffers (the next large selection allocates them again)."""
    _scratch.pool = None
    _scratch.flags = None


class Cuts:
    """Per cut value x: the mask bytes of `score >= x` (docs/spec.md §4.1, padded with
    zeros to whole 64-bit words), packed block by block in one pass over the scores.
    The bytes live in per-thread scratch: mask_bytes copies what it returns."""

    def __init__(self, src: Scores):
        self.src = src
        self.nbytes = 8 * ((src.n + 63) // 64)
        self.bits: dict[int, np.ndarray] = {}
        self.kept: dict[int, int] = {}

    def add(self, xs, keep=()) -> Cuts:
        """Pack every x of xs not held yet, all in one pass over the scores; of the
        cuts held before, only those in `keep` stay."""
        xs = [int(x) for x in xs]
        self.bits = {x: v for x, v in self.bits.items() if x in keep or x in xs}
        xs = [x for x in dict.fromkeys(xs) if x not in self.bits]
        if not xs:
            return self
        held = list(self.bits.values())
        pool = _buffers(len(held) + len(xs) + 1, self.nbytes)
        free = [b for b in pool if not any(np.shares_memory(b, h) for h in held)]
        bits = free[:len(xs)]

        def pack(i, c, scratch):
            f = scratch[0][:c.size]
            at = slice(i // 8, (i + c.size + 7) // 8)
            for j, x in enumerate(xs):
                np.greater_equal(c, x, out=f)
                bits[j][at] = np.packbits(f, bitorder="little")

        self.src.each_block(pack)
        tail = (self.src.n + 7) // 8
        for j, x in enumerate(xs):
            bits[j][tail:] = 0
            self.bits[x], self.kept[x] = bits[j], popcount(bits[j])
        return self

    def below(self, x: int) -> int:
        """How many scores are < x."""
        return self.src.n - self.kept[x]

    def mask_bytes(self, x: int, before: int | None = None, cut: int = 0) -> np.ndarray:
        """A new array: the mask bytes of `score >= x`, padded to whole 32-bit words;
        with `before`, the bits of indices < cut come from `score >= before` instead."""
        out = self.bits[x][:4 * ((self.src.n + 31) // 32)].copy()
        if before is not None and cut:
            first = self.bits[before]
            byte, rest = divmod(cut, 8)
            out[:byte] = first[:byte]
            if rest:
                low = (1 << rest) - 1
                out[byte] = (int(first[byte]) & low) | (int(out[byte]) & ~low & 0xFF)
        return out

    def tie_cut(self, t: int, count: int) -> int:
        """Index just past the `count`-th score equal to t (ascending index order);
        t and t + 1 must be held."""
        seen = 0
        step = 1 << 18  # bytes (2M scores) per look, into one reused buffer
        buf = np.empty(min(step, self.nbytes), np.uint8)
        for at in range(0, self.nbytes, step):
            # `>= t + 1` implies `>= t`: the bits that differ are the scores equal to t
            a, b = self.bits[t][at:at + step], self.bits[t + 1][at:at + step]
            equal = np.bitwise_xor(a, b, out=buf[:a.size])
            counts = word_counts(equal)
            m = int(counts.sum(dtype=np.int64))
            if seen + m >= count:  # in this piece: find its 64-bit word, then the bit
                cum = np.cumsum(counts, dtype=np.int64)
                wd = int(np.searchsorted(cum, count - seen))
                before = seen + (int(cum[wd - 1]) if wd else 0)
                bits = np.unpackbits(equal[8 * wd:8 * wd + 8], bitorder="little")
                return 8 * (at + 8 * wd) + int(np.flatnonzero(bits)[count - before - 1]) + 1
            seen += m
        raise AssertionError("fewer ties than counted")  # unreachable: count <= ties


def _band(src: Scores, pos: int) -> tuple[int, int, int]:
    """(lo, hi, guess): values lo..hi hold position pos unless the sample misled;
    guess is the sample's own value at that rank, the likeliest."""
    step = max(1, src.n // SAMPLE)
    sample = np.sort(src.sample(step), kind="stable")  # radix sort for 8/16-bit scores
    m = sample.size
    q = pos / src.n
    j = min(m - 1, int(q * m))
    d = int(SIGMAS * math.sqrt(m * q * (1.0 - q))) + 2
    return int(sample[max(0, j - d)]), int(sample[min(m - 1, j + d)]), int(sample[j])


def _inside(src: Scores, lo: int, hi: int) -> tuple[int, int, np.ndarray]:
    """One pass: (scores < lo, scores <= hi, the scores in lo..hi)."""
    found = {}

    def look(i, c, scratch):
        f, g = scratch[0][:c.size], scratch[1][:c.size]
        np.less(c, lo, out=f)
        first = int(np.count_nonzero(f))
        np.less_equal(c, hi, out=g)
        upto = int(np.count_nonzero(g))
        np.greater(g, f, out=g)  # <= hi and not < lo
        found[i] = (first, upto, c[g])  # one key per block: safe across threads

    src.each_block(look)
    parts = [found[i] for i in sorted(found)]
    return (sum(p[0] for p in parts), sum(p[1] for p in parts),
            np.concatenate([p[2] for p in parts]))


def rank(src: Scores, pos: int) -> tuple[int, Cuts]:
    """The exact value t at position `pos` (0-based) of the scores sorted ascending,
    with the Cuts that hold t and t + 1."""
    t = None
    if src.n > DIRECT:
        lo, hi, guess = _band(src, pos)
        if hi - lo < MAX_WALK:  # few values: pack the guess, step to a neighbour if wrong
            t = guess
            cuts = Cuts(src).add((t, t + 1))
            while lo <= t <= hi:
                if pos < cuts.below(t):  # the k-th is below t
                    t -= 1
                    cuts.add((t,), keep=(t + 1,))
                elif pos >= cuts.below(t + 1):  # the k-th is above t
                    t += 1
                    cuts.add((t + 1,), keep=(t,))
                else:
                    return t, cuts
            t = None
        else:  # many values: keep the entries of the band, select among them
            first, upto, inside = _inside(src, lo, hi)
            if first <= pos < upto:
                t = int(np.partition(inside, pos - first)[pos - first])
    if t is None:  # a small input, or the sample misled
        t = int(np.partition(src.values(), pos)[pos])
    return t, Cuts(src).add((t, t + 1))


def threshold(scores: np.ndarray, pos: int) -> int:
    """The value at position `pos` of the scores sorted ascending."""
    return rank(Scores(np.asarray(scores)), pos)[0]
