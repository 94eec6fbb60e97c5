# The board side of the baud switch (docs/protocol.md, "Baud switch"), imported only
# when a host asks for one (receiver.py). The host asks with BAUD_SWITCH at the line's
# rate; the board answers there, lets the answer leave its UART, changes rate and waits
# SWITCH_MS for a CRC-checked BAUD_CONFIRM at the new rate, which it answers there. No
# confirmation in time: back to the old rate, as the host goes back when it gets no
# answer. The old rate is restored when the receiver ends (after END, ABORT or a
# failure), so the REPL stays usable at the rate the host opened it with, and when no
# frame has begun for IDLE_MS (a host killed mid-transfer: the next one, or mpremote,
# talks at the REPL's rate; the receiver then ends on its ABORT).

from struct import pack, unpack

from .protocol import BAUD, BAUD_CONFIRM, BAUD_FMT, BAUD_REPLY, IDLE_MS, REPLY, SWITCH_MS

try:
    from time import ticks_diff, ticks_ms
except ImportError:  # CPython
    from time import monotonic

    def ticks_ms():
        return int(monotonic() * 1000)

    def ticks_diff(a, b):
        return a - b


class Late(Exception):
    """No byte of the confirmation arrived in time."""


def uart():
    """(set_rate(rate), ready(ms) -> bool) for the REPL's UART, or None: the virtual
    board's stand-in (prune8_host/vboard/vm_init.py), else the ESP32 port's UART 0, whose
    baud a re-init changes without taking it from the REPL; None on ports with neither
    (CPython, unix), which answer every switch with 0 and stay at their rate."""
    try:
        import vboard_uart
        return vboard_uart.rate, vboard_uart.ready
    except ImportError:
        pass
    try:
        import select
        import sys

        from machine import UART
    except ImportError:
        return None
    u = UART(0)
    poll = select.poll()
    poll.register(sys.stdin, select.POLLIN)

    def rate(r):
        u.flush()  # the answer at the old rate leaves the FIFO first
        u.init(baudrate=r)

    return rate, lambda ms: bool(poll.poll(ms))


class Switch:
    """The line's rate for one receiver: `handle` answers BAUD frames, `restore` puts
    the rate the host opened the REPL with back."""

    def __init__(self, link):
        self.link = link
        self.port = uart()
        self.home = 0       # the rate to go back to (0: never switched)
        self.rate = 0       # the current rate, once switched

    def handle(self, payload):
        link = self.link
        rate, back, step = unpack(BAUD_FMT, payload)
        if step == BAUD_CONFIRM:  # outside a switch: the host's probe after a failed one
            link.send(REPLY, pack(BAUD_REPLY, self.rate or back))
            return
        if self.port is None or link.duplicate or not rate:
            link.send(REPLY, pack(BAUD_REPLY, 0))  # cannot; or a repeat: its switch is over
            return
        link.send(REPLY, pack(BAUD_REPLY, rate))
        set_rate, ready = self.port
        set_rate(rate)
        if not self._confirmed(rate, ready):
            set_rate(back)
            return
        if not self.home:
            self.home = back
        self.rate = rate
        link.idle = self._idle
        if rate == self.home:  # switched back: nothing left to restore
            self.restore()

    def _confirmed(self, rate, ready):
        link = self.link
        start = ticks_ms()

        def wait():
            left = SWITCH_MS - ticks_diff(ticks_ms(), start)
            if left <= 0 or not ready(left):
                raise Late()

        link.wait = wait
        try:
            while True:
                if link.recv() == BAUD:
                    r, _, step = unpack(BAUD_FMT, link.payload())
                    if step == BAUD_CONFIRM and r == rate:
                        link.send(REPLY, pack(BAUD_REPLY, rate))
                        return True
        except Late:
            return False
        finally:
            link.wait = None

    def _idle(self):
        if not self.port[1](IDLE_MS):
            self.restore()

    def restore(self):
        self.link.idle = None
        if self.home:
            self.port[0](self.home)
            self.home = self.rate = 0

