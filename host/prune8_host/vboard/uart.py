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

from prune8_host.errors import UsageError

BITS_PER_BYTE = 10
# ESP32 MicroPython's stdin ring buffer holds a few hundred bytes; 256 it is here, and
# it is the same figure pyexec assumes for raw-paste windows (MICROPY_REPL_STDIN_BUFFER_MAX).
RX_FIFO_SIZE = 256
OVERRUN_GRACE_S = 0.5
# After the bridge itself was held up (GIL, scheduler), a wire catches up at most this
# much time at once instead of delivering everything it "should have" in one burst.
MAX_CATCH_UP_S = 0.005


class Wire:
    """One direction of the line: a byte is delivered 10/baud s after the previous one."""

    def __init__(self, baud: int):
        if baud < 0:
            raise UsageError(f"baud must be >= 0 (0 = unpaced), got {baud}")
        self.byte_time = BITS_PER_BYTE / baud if baud else 0.0
        self._queue = bytearray()
        self._start = 0.0  # when the first queued byte started (or the line became free)

    def __len__(self) -> int:
        return len(self._queue)

    def push(self, data: bytes, now: float) -> None:
        if not self._queue:
            self._start = max(self._start, now)
        self._queue += data

    def take(self, now: float, limit: int | None = None) -> bytes:
        """The bytes fully transmitted by `now` (at most `limit`), removed from the line."""
        if not self._queue:
            return b""
        if self.byte_time:
            n = int((now - self._start) / self.byte_time)
            cap = max(1, int(MAX_CATCH_UP_S / self.byte_time))
            if n > cap:  # we were held up: deliver a burst's worth, the line goes on from now
                n = cap
                self._start = now - cap * self.byte_time
        else:
            n = len(self._queue)
        if limit is not None:
            n = min(n, limit)
        n = min(n, len(self._queue))
        data = bytes(self._queue[:n])
        del self._queue[:n]
        self._start += n * self.byte_time
        return data

    def next_due(self, now: float) -> float | None:
        """When the next byte will have arrived (None: nothing on the line)."""
        if not self._queue:
            return None
        return max(now, self._start + self.byte_time)

    def clear(self) -> None:
        self._queue.clear()


class RxPath:
    """Host -> board: wire, interrupt-char check, bounded FIFO drained on VM request."""

    def __init__(self, baud: int, fifo_size: int = RX_FIFO_SIZE,
                 grace: float = OVERRUN_GRACE_S):
        self.wire = Wire(baud)
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

    def receive(self, data: bytes, now: float) -> None:
        self.wire.push(data, now)

    def backlog(self) -> int:
        """Bytes received from the host that are not in the FIFO yet."""
        return len(self.wire) + len(self.held)

    def step(self, now: float) -> int:
        """Handle the bytes that have arrived; returns how many interrupts that raised."""
        arrived = self.held + self.wire.take(now)
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

    def request(self, now: float, intr_char: int) -> None:
        """The VM asks for input: it has used everything it was given."""
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
        self.last_request = now
        return data

    def next_due(self, now: float) -> float | None:
        due = self.wire.next_due(now)
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


class TxPath:
    """Board -> host: paced wire, then bytes the pseudo-terminal has not accepted yet."""

    def __init__(self, baud: int):
        self.wire = Wire(baud)
        self.pending = bytearray()

    def __len__(self) -> int:
        return len(self.wire) + len(self.pending)

    def push(self, data: bytes, now: float) -> None:
        self.wire.push(data, now)

    def step(self, now: float) -> None:
        self.pending += self.wire.take(now)

    def next_due(self, now: float) -> float | None:
        return self.wire.next_due(now)

    def clear(self) -> None:
        self.wire.clear()
        self.pending.clear()
