# A file written in whole 4 KB blocks (docs/protocol.md, "Storage on the board"): what a
# push writes /prune8/model.bin through. LittleFS's block on the ESP32 is one 4 KB flash
# sector, erased whole before it is programmed; written 256 bytes a frame, a file costs
# one call through the VFS per frame and its last block grows piecemeal; written a block
# at a time, one call per 16 frames.

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

_BLOCK = const(4096)  # LittleFS's block on the ESP32: one flash sector, erased whole


class BlockWriter:
    """File `f` written in whole blocks at the filesystem's block boundaries: write()
    gathers bytes in RAM and writes a block once it is full; patch() changes bytes
    already written (still in RAM, or in the file); close() writes the rest. RAM: one
    block."""

    def __init__(self, f):
        self.f = f
        self.buf = bytearray(_BLOCK)
        self.mv = memoryview(self.buf)
        self.at = 0     # file offset of buf[0]: what is in the file
        self.fill = 0   # bytes in buf

    def tell(self):
        return self.at + self.fill

    def write(self, data):
        mv = self.mv
        n = len(data)
        i = 0
        while i < n:
            k = min(n - i, _BLOCK - (self.at % _BLOCK) - self.fill)  # up to the block's end
            mv[self.fill:self.fill + k] = data[i:i + k] if k != n else data
            self.fill += k
            i += k
            if (self.at + self.fill) % _BLOCK == 0:
                self._flush()

    def _flush(self):
        if self.fill:
            self.f.write(self.mv[:self.fill])
            self.at += self.fill
            self.fill = 0

    def patch(self, offset, data):
        """Overwrite len(data) bytes at file offset `offset` (all before tell()): those
        still in RAM there, those in the file with a write of their own (the blocks in
        RAM go on from where they were)."""
        n = len(data)
        k = min(n, self.at - offset) if offset < self.at else 0  # bytes in the file
        if k:
            self.f.seek(offset)
            self.f.write(data[:k] if k != n else data)
            self.f.seek(self.at)
        if k < n:
            i = offset + k - self.at
            self.mv[i:i + n - k] = data[k:] if k else data

    def close(self, keep=True):
        """Write what is left in RAM (unless not `keep`: a file about to be discarded)
        and close the file."""
        try:
            if keep:
                self._flush()
        finally:
            self.f.close()
