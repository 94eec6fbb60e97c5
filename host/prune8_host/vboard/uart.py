"""The serial line between host and virtual board: pacing and the board's receive FIFO.

Pure bookkeeping with explicit timestamps (no threads, no I/O), so pty_bridge.py's bridge
loop can drive it and tests can reason about it.

Host -> board: bytes go onto the wire (`Wire`, paced at `baud` with 10 bits per byte:
start + 8 data + stop), then through what the ESP32's UART interrupt handler does
(`RxPath`): a byte equal to the current interrupt char schedules KeyboardInterrupt
and is swallowed; any other byte goes into a bounded FIFO, the stand-in for
MicroPython's stdin ring buffer. The board drains that FIFO only while the VM reads
(the REPL is idle, or code reads sys.stdin); bytes that arrive while it is full are
DROPPED, as on a real board, so a host that ignores flow control loses data.

One allowance for running on a shared, noisy machine: while the FIFO is full the line
holds (nothing is lost) for up to OVERRUN_GRACE_S after the VM last asked for input,
since a VM that keeps asking is merely slow to be scheduled, not busy. A program that
does not read for longer than that loses what does not fit. So an overrun shows up when
the board is busy for more than about half a second, not for a few milliseconds as on
hardware.

Board -> host: the same `Wire` paces the VM's output.
"""

from __future__ import annotations

from collections import deque

from prune8_host.errors import UsageError

BITS_PER_BYTE = 10
# ESP32 MicroPython's stdin ring buffer holds a few hundred bytes; 256 it is here, and
# it is the same figure pyexec assumes for raw-paste windows (MICROPY_REPL_STDIN_BUFFER_MAX).
RX_FIFO_SIZE = 256
OVERRUN_GRACE_S = 0.5
# After the bridge itself was held up (GIL, scheduler), a wire catches up at most this
# much time at once instead of delivering everything it "should have" in one burst.
MAX_CATCH_UP_S = 0.005


def line_noise(data: bytes) -> bytes:
    """What a UART receives of bytes sent at another rate: noise. A real one makes more
    or fewer bytes of them, mostly framing errors; here each byte becomes one byte with
    its low bits flipped and its top bit set, so never a control character (a Ctrl-C
    or Ctrl-D that noise could also make is not modelled)."""
    return bytes((b ^ 0x55) | 0x80 for b in data)


class Wire:
    """One direction of the line: a byte is delivered 10/baud s after the previous one.

    Each byte keeps the rate it was sent at (`rate`, when it was pushed; None: whatever
    the receiver is at) and is paced at its own byte time, so bytes sent before a baud
    switch still arrive at the old rate."""

    def __init__(self, baud: int):
        if baud < 0:
            raise UsageError(f"baud must be >= 0 (0 = unpaced), got {baud}")
        self.byte_time = BITS_PER_BYTE / baud if baud else 0.0  # for bytes pushed from now
        self.rate: int | None = None                             # ... and their rate
        self._segments: deque = deque()  # [bytearray, byte time, rate], oldest first
        self._len = 0
        self._start = 0.0  # when the first queued byte started (or the line became free)

    def __len__(self) -> int:
        return self._len

    def push(self, data: bytes, now: float, rate: int | None = None,
             byte_time: float | None = None) -> None:
        if not data:
            return
        if not self._segments:
            self._start = max(self._start, now)
        bt = self.byte_time if byte_time is None else byte_time
        rate = self.rate if rate is None else rate
        last = self._segments[-1] if self._segments else None
        if last is not None and last[1] == bt and last[2] == rate:
            last[0] += data
        else:
            self._segments.append([bytearray(data), bt, rate])
        self._len += len(data)

    def take_segments(self, now: float, limit: int | None = None) -> list:
        """The bytes fully transmitted by `now` (at most `limit`), removed from the line,
        as (bytes, rate) runs."""
        out = []
        while self._segments and (limit is None or limit > 0):
            buf, bt, rate = self._segments[0]
            if bt:
                n = int((now - self._start) / bt)
                cap = max(1, int(MAX_CATCH_UP_S / bt))
                if n > cap:  # we were held up: deliver a burst's worth, the line goes on from now
                    n = cap
                    self._start = now - cap * bt
            else:
                n = len(buf)
            if limit is not None:
                n = min(n, limit)
                limit -= min(n, len(buf))
            n = min(n, len(buf))
            if n <= 0:
                break
            out.append((bytes(buf[:n]), rate))
            del buf[:n]
            self._len -= n
            self._start += n * bt
            if buf:
                break
            self._segments.popleft()
        return out

    def take(self, now: float, limit: int | None = None) -> bytes:
        """The bytes fully transmitted by `now` (at most `limit`), removed from the line."""
        return b"".join(data for data, _ in self.take_segments(now, limit))

    def next_due(self, now: float) -> float | None:
        """When the next byte will have arrived (None: nothing on the line)."""
        if not self._segments:
            return None
        return max(now, self._start + self._segments[0][1])

    def clear(self) -> None:
        self._segments.clear()
        self._len = 0


class RxPath:
    """Host -> board: wire, interrupt-char check, bounded FIFO drained on VM request."""

    def __init__(self, baud: int, fifo_size: int = RX_FIFO_SIZE,
                 grace: float = OVERRUN_GRACE_S):
        self.wire = Wire(baud)
        self.paced = bool(baud)
        self.byte_time = self.wire.byte_time  # the line's pacing until the board sets a rate
        # The board's UART rate once its firmware set one (a baud switch); None: it takes
        # whatever rate the host sends at, as the line was opened (power-on)
        self.board_rate: int | None = None
        self.deadline: float | None = None  # a timed request: wake the VM empty-handed then
        self.fifo_size = fifo_size
        self.grace = grace
        self.fifo = bytearray()
        self.held = bytearray()  # arrived while the FIFO was full, within the grace time
        # Bytes handed to the VM in the last frame; the VM asks again only when it has
        # used them all, so until then they still take up room, as unread bytes in a
        # ring buffer do.
        self.in_flight = 0
        self.intr_char = -1  # as last reported by the VM (-1: none)
        self.waiting = False  # the VM is blocked waiting for input
        self.last_request = 0.0
        self.dropped = 0
        self.interrupts = 0

    def room(self) -> int:
        return self.fifo_size - len(self.fifo) - self.in_flight

    def _deaf_for(self, now: float) -> float:
        return 0.0 if self.waiting else now - self.last_request

    def receive(self, data: bytes, now: float, host_rate: int | None = None) -> None:
        """Bytes the host wrote with its port at `host_rate` (None: not known). Once the
        board has set a rate, they are paced at the host's rate."""
        byte_time = None
        if self.board_rate is not None and host_rate and self.paced:
            byte_time = BITS_PER_BYTE / host_rate
        self.wire.push(data, now, rate=host_rate, byte_time=byte_time)

    def set_rate(self, rate: int) -> None:
        """The board's firmware changed its UART's rate (bytes on the wire from now on
        are received at it; those sent at another rate arrive as noise)."""
        self.board_rate = rate

    def backlog(self) -> int:
        """Bytes received from the host that are not in the FIFO yet."""
        return len(self.wire) + len(self.held)

    def step(self, now: float) -> int:
        """Handle the bytes that have arrived; returns how many interrupts that raised."""
        arrived = bytearray(self.held)
        for data, rate in self.wire.take_segments(now):
            if self.board_rate is not None and rate is not None and rate != self.board_rate:
                data = line_noise(data)
            arrived += data
        self.held = bytearray()
        raised = 0
        for c in arrived:
            if c == self.intr_char:
                raised += 1  # the ISR schedules KeyboardInterrupt; the byte is not stored
            elif self.room() > 0:
                self.fifo.append(c)
            elif self._deaf_for(now) >= self.grace:
                self.dropped += 1
            else:
                self.held.append(c)  # the VM is reading, just not scheduled yet
        self.interrupts += raised
        return raised

    def request(self, now: float, intr_char: int, timeout: float | None = None) -> None:
        """The VM asks for input: it has used everything it was given. With `timeout`
        (s), it is woken empty-handed when nothing came by then (expired())."""
        self.deadline = None if timeout is None else now + timeout
        self.in_flight = 0
        self.intr_char = intr_char
        self.waiting = True
        self.last_request = now

    def take_for_vm(self, now: float) -> bytes:
        """What to send the waiting VM now (b"" if it is not waiting or nothing is here)."""
        if not (self.waiting and self.fifo):
            return b""
        data = bytes(self.fifo)
        self.fifo.clear()
        self.in_flight = len(data)
        self.waiting = False
        self.deadline = None
        self.last_request = now
        return data

    def expired(self, now: float) -> bool:
        """A timed request's time is up with nothing to give: it is answered empty."""
        if self.waiting and self.deadline is not None and now >= self.deadline:
            self.waiting = False
            self.deadline = None
            return True
        return False

    def next_due(self, now: float) -> float | None:
        due = self.wire.next_due(now)
        if self.waiting and self.deadline is not None:
            due = self.deadline if due is None else min(due, self.deadline)
        if self.held:
            held_due = now if self.room() > 0 or self.waiting else self.last_request + self.grace
            due = held_due if due is None else min(due, held_due)
        return due

    def reset(self) -> None:
        """Power-on: the FIFO is empty and nobody is reading yet."""
        self.wire.clear()
        self.fifo.clear()
        self.held.clear()
        self.in_flight = 0
        self.intr_char = -1
        self.waiting = False
        self.deadline = None
        self.board_rate = None
        self.wire.byte_time = self.byte_time


class TxPath:
    """Board -> host: paced wire, then bytes the pseudo-terminal has not accepted yet."""

    def __init__(self, baud: int):
        self.wire = Wire(baud)
        self.paced = bool(baud)
        self.byte_time = self.wire.byte_time
        self.pending = bytearray()

    def __len__(self) -> int:
        return len(self.wire) + len(self.pending)

    def push(self, data: bytes, now: float) -> None:
        self.wire.push(data, now)

    def set_rate(self, rate: int) -> None:
        """The board's UART sends at `rate` from now on (what is queued keeps its rate)."""
        self.wire.rate = rate
        if self.paced:
            self.wire.byte_time = BITS_PER_BYTE / rate

    def step(self, now: float, host_rate: int | None = None) -> None:
        """Move what has arrived to the pty; bytes sent at another rate than the host's
        port is set to (`host_rate`) arrive as noise."""
        for data, rate in self.wire.take_segments(now):
            if rate is not None and host_rate and rate != host_rate:
                data = line_noise(data)
            self.pending += data

    def next_due(self, now: float) -> float | None:
        return self.wire.next_due(now)

    def clear(self) -> None:
        """Power-on: nothing queued, the UART at its first rate."""
        self.wire.clear()
        self.pending.clear()
        self.wire.rate = None
        self.wire.byte_time = self.byte_time
