# Tiles of a stored layer (docs/streaming.md; docs/spec.md §5.3): a layer bigger than RAM
# is read, scored, masked and run a tile of weights at a time, in index order (row-major).
# What every tiled pass shares: reading a tile into a fixed buffer, and zeroing the
# weights of a tile that a mask prunes, whatever the mask's unit (weights, rows, columns,
# blocks).

from . import errors

# Mask units (the twin's: prune8_host.twin.scorers; prune8.scorers gives each scorer's):
WEIGHT = 0  # one bit per weight,
ROW = 1     # per row,
COL = 2     # per column,
BLOCK = 3   # per br x bc block, blocks row-major over the grid


def read_into(f, view, m, what, size=1):
    """Read m items of `size` bytes into view (a memoryview of a fixed buffer or array):
    the whole view when m is its length, so a tile of the usual size allocates nothing."""
    dst = view if m == len(view) else view[:m]
    if f.readinto(dst) != m * size:
        raise errors.truncated(what)


def write_from(f, view, m):
    """Write the first m items of view."""
    f.write(view if m == len(view) else view[:m])


class TiledMask:
    """A stored mask seen a tile of weights at a time: zero(w, off, m, i0) zeroes, in
    w[off:off + m] (weights i0 .. i0 + m - 1 of the layer), those the mask prunes.

    A row or column mask is read whole (rows or cols bits: O(rows + cols)); a weight
    or block mask only for the tile at hand, into a buffer of (tile + 2 * cols) / 8
    bytes (the block rows a tile of `tile` weights touches)."""

    def __init__(self, unit, rows, cols, br, bc, tile):
        self.unit = unit
        self.rows = rows
        self.cols = cols
        self.br = br if unit == BLOCK else 1
        self.bc = bc if unit == BLOCK else 1
        self.gc = cols // self.bc
        if unit == ROW:
            size = (rows + 7) >> 3
        elif unit == COL:
            size = (cols + 7) >> 3
        else:
            size = ((tile + 2 * cols) >> 3) + 2
        self._own = bytearray(size)
        self.view = memoryview(self._own)
        self.bits = self._own
        self.b0 = 0         # the mask byte that self.bits[0] holds
        self.f = None
        self.offset = 0

    def attach(self, f, offset):
        """Read the mask from file f, whose bits start at `offset`."""
        self.f = f
        self.offset = offset
        self.bits = self._own
        self.b0 = 0
        if self.unit == ROW or self.unit == COL:
            f.seek(offset)
            read_into(f, self.view, len(self.bits), "mask")

    def use(self, bits):
        """Use a whole mask held in RAM (its bytes) instead of a file."""
        self.f = None
        self.bits = bits
        self.b0 = 0

    def _load(self, i0, m):
        """The mask bytes that weights i0 .. i0 + m - 1 need, into self.bits."""
        unit = self.unit
        if self.f is None or unit == ROW or unit == COL:
            return
        if unit == WEIGHT:
            u0 = i0
            u1 = i0 + m - 1
        else:
            cols = self.cols
            u0 = (i0 // cols // self.br) * self.gc
            u1 = ((i0 + m - 1) // cols // self.br + 1) * self.gc - 1
        b0 = u0 >> 3
        self.b0 = b0
        self.f.seek(self.offset + b0)
        read_into(self.f, self.view, (u1 >> 3) - b0 + 1, "mask")

    def zero(self, w, off, m, i0):
        self._load(i0, m)
        zero_tile(w, off, m, i0, self.bits, self.b0, self.unit, self.cols, self.br, self.bc,
                  self.gc)


def zero_tile(w, off, m, i0, bits, b0, unit, cols, br, bc, gc):
    """w[off + i] = 0 for the weights i0 + i (i < m) whose unit's bit is 0; bits[0] holds
    mask byte b0 (a kernel: prune8.kernels may put prune8.viper's in its place)."""
    r = i0 // cols
    c = i0 - r * cols
    for i in range(m):
        if unit == WEIGHT:
            u = i0 + i
        elif unit == ROW:
            u = r
        elif unit == COL:
            u = c
        else:
            u = (r // br) * gc + c // bc
        if not (bits[(u >> 3) - b0] >> (u & 7)) & 1:
            w[off + i] = 0
        c += 1
        if c == cols:
            c = 0
            r += 1


class Stream:
    """A run of `count` items (array typecode `code`, `size` bytes each) of a stored
    layer, read `chunk` items at a time into a fixed buffer, in order.

    s.start(f, offset, count) or s.hold(items) (all in RAM: never read again); then
    s.buf[0:s.end] holds the current items and s.more() reads the next ones (returns
    the new s.end). s.rewind() starts over (a held stream just stays)."""

    def __init__(self, code, size, chunk):
        from array import array
        self.size = size
        self.chunk = chunk
        self.buf = array(code, bytes(size * chunk)) if chunk else None
        self.view = memoryview(self.buf) if chunk else None
        self.f = None
        self.offset = 0
        self.count = 0
        self.pos = 0
        self.left = 0
        self.end = 0

    def hold(self, items):
        self.f = None
        self.buf = items
        self.end = len(items)

    def start(self, f, offset, count):
        self.f = f
        self.offset = offset
        self.count = count
        self.rewind()

    def rewind(self):
        if self.f is not None:
            self.pos = self.offset
            self.left = self.count
            self.end = 0

    def more(self):
        k = self.left if self.left < self.chunk else self.chunk
        if k == 0:
            raise errors.past_layer_end()
        self.f.seek(self.pos)
        read_into(self.f, self.view, k, "layer", self.size)
        self.pos += k * self.size
        self.left -= k
        self.end = k
        return k


# the viper kernels take over these names where chosen (prune8.kernels)
from . import kernels as _kernels  # noqa: E402

_kernels.bind(__name__)
