# Board side of the serial link (docs/protocol.md; docs/spec.md §12, the REPL UART):
# framed, acknowledged transfers over the REPL UART while a receiver runs from the raw
# REPL. The frame layout and its constants are in protocol.py.
#
# The host drives every exchange; the board only waits for the next frame, so it needs
# no timer. The host may have a window of frames in flight: the board applies them in
# seq order only, answers a copy of a frame it already applied without applying it
# again, and ignores a frame that comes after a missing one (the host goes back and
# sends from the missing one). One frame buffer is allocated per link; payloads are
# copied from it into the caller's buffers (never a second copy of a layer).

import sys

try:
    from binascii import crc32
except ImportError:  # a port built without it: compute CRC-32 in 16-bit halves
    crc32 = None

from . import errors
from .protocol import ABORT, ACK, ERROR, HEADER, MAX_PAYLOAD, NAK, SYNC, TRAILER

_T_LO = None
_T_HI = None


def _table():
    # The reflected CRC-32 table split into low and high 16-bit halves, so that the
    # fallback never forms an integer >= 2**30 (a heap object on MicroPython).
    global _T_LO, _T_HI
    from array import array
    lo = array("H", bytes(512))
    hi = array("H", bytes(512))
    for i in range(256):
        cl, ch = i, 0
        for _ in range(8):
            if cl & 1:
                cl = ((cl >> 1) | ((ch & 1) << 15)) ^ 0x8320
                ch = (ch >> 1) ^ 0xEDB8
            else:
                cl = (cl >> 1) | ((ch & 1) << 15)
                ch >>= 1
        lo[i] = cl
        hi[i] = ch
    _T_LO, _T_HI = lo, hi


def crc32_halves(data, n, lo=0, hi=0):
    """CRC-32 of data[:n] as (low 16 bits, high 16 bits); (lo, hi) continues a running
    CRC, as binascii.crc32(data, crc) does."""
    if crc32 is not None:
        c = crc32(data[:n] if len(data) != n else data, lo | (hi << 16))
        return c & 0xFFFF, (c >> 16) & 0xFFFF
    if _T_LO is None:
        _table()
    tlo, thi = _T_LO, _T_HI
    lo ^= 0xFFFF
    hi ^= 0xFFFF
    for i in range(n):
        j = (lo ^ data[i]) & 0xFF
        lo = ((lo >> 8) | ((hi & 0xFF) << 8)) ^ tlo[j]
        hi = (hi >> 8) ^ thi[j]
    return lo ^ 0xFFFF, hi ^ 0xFFFF


class Link:
    """Frames over a byte stream pair (default: the REPL UART's stdin / stdout)."""

    def __init__(self, inp=None, out=None):
        self.inp = inp if inp is not None else sys.stdin.buffer
        self.out = out if out is not None else sys.stdout.buffer
        # MicroPython's stdio is unbuffered (a write has reached the UART driver when it
        # returns), so only CPython's buffered stdout (the tests) needs a flush per answer
        self.flush = None if sys.implementation.name == "micropython" else \
            getattr(self.out, "flush", None)
        self.buf = bytearray(HEADER + MAX_PAYLOAD + TRAILER)
        self.mv = memoryview(self.buf)
        self.ack = bytearray(3)
        self.type = 0
        self.seq = -1       # the frame being answered (its seq goes in ACK, NAK, replies)
        self.applied = -1   # the last frame taken in order (copies of it and of older
                            # ones are duplicates: answered, not applied)
        self.len = 0
        self.duplicate = False
        self.idle = None    # while switched (baud.py): called before a frame's first byte
        self.wait = None    # while a baud switch waits for its confirmation (baud.py): called
                            # before each byte, raises when the time is up


    # -- low level --------------------------------------------------------------------

    def _read(self, start, end):
        mv = self.mv
        wait = self.wait
        while start < end:
            if wait is not None:
                wait()
            got = self.inp.readinto(mv[start:end] if wait is None else mv[start:start + 1])
            if not got:
                raise errors.link_closed()
            start += got

    def _write(self, data):
        self.out.write(data)
        if self.flush is not None:
            self.flush()

    def _answer(self, code, seq):
        a = self.ack
        a[0] = code
        a[1] = seq & 0xFF
        a[2] = seq >> 8
        self._write(a)

    # -- frames -----------------------------------------------------------------------

    def recv(self):
        """Wait for the next good frame; NAK bad ones. Sets type, seq, len, duplicate.

        The payload is self.mv[HEADER:HEADER + self.len]. A frame whose seq is past the
        next one expected (one before it was lost) is dropped unanswered; ABORT is taken
        whatever its seq.
        """
        buf = self.buf
        while True:
            if self.idle is not None:
                self.idle()
            self._read(0, 1)
            if buf[0] != SYNC:
                continue  # hunting for sync: skips filler and line noise
            self._read(1, HEADER)
            n = buf[4] + 1
            self._read(HEADER, HEADER + n + TRAILER)
            lo, hi = crc32_halves(self.mv[1:HEADER + n], HEADER - 1 + n)
            t = HEADER + n
            seq = buf[2] | (buf[3] << 8)
            if buf[t] | (buf[t + 1] << 8) != lo or buf[t + 2] | (buf[t + 3] << 8) != hi:
                self._answer(NAK, seq)
                continue
            ahead = (seq - self.applied) & 0xFFFF
            if buf[1] != ABORT and 1 < ahead < 0x8000:
                continue  # out of order: the host resends from the missing frame
            self.duplicate = buf[1] != ABORT and ahead != 1
            self.type = buf[1]
            self.seq = seq
            if not self.duplicate:
                self.applied = seq
            self.len = n
            return self.type

    def payload(self):
        return self.mv[HEADER:HEADER + self.len]

    def ok(self):
        self._answer(ACK, self.seq)

    def send(self, ftype, data, n=None):
        """Send a framed reply (type REPLY or ERROR) carrying data[:n], seq = last frame's."""
        if n is None:
            n = len(data)
        buf = self.buf
        buf[0] = SYNC
        buf[1] = ftype
        buf[2] = self.seq & 0xFF
        buf[3] = (self.seq >> 8) & 0xFF
        buf[4] = n - 1
        self.mv[HEADER:HEADER + n] = data[:n] if len(data) != n else data
        lo, hi = crc32_halves(self.mv[1:HEADER + n], HEADER - 1 + n)
        t = HEADER + n
        buf[t] = lo & 0xFF
        buf[t + 1] = lo >> 8
        buf[t + 2] = hi & 0xFF
        buf[t + 3] = hi >> 8
        self._write(self.mv[:t + TRAILER])

    def error(self, message):
        data = message.encode()[:MAX_PAYLOAD]
        self.send(ERROR, data)
