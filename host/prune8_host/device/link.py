"""Host side of the serial link (docs/protocol.md): frames, acknowledgements, retries.

`HostLink` sends frames over a pyserial-like port (mpremote's `transport.serial`) to a
receiver running on the board (`prune8.receiver`), and waits for the answers. The host
drives every exchange, so all timers live here. The frame layout and its constants are
the firmware's own (`prune8.protocol`).

A run of frames (`exchange`) goes with up to `window` of them in flight, so the time
each takes to be answered does not add up; the board applies them in seq order only,
and on a NAK or a timeout the host goes back to the oldest unanswered frame and sends
from there (go-back-N), with the same CRC, ACK/NAK and resend rules as one frame.
How long the host waits (patience.py): it resends after RESEND_S without an answer,
and gives up only when the board has said nothing for the bound of what the frame
makes it do, measured from when the frame can have reached it at the line's baud.
"""

from __future__ import annotations

import struct
import time
import zlib

from prune8.protocol import (
    ABORT,
    ACK,
    BAUD,
    BAUD_CONFIRM,
    BAUD_FMT,
    BAUD_REPLY,
    BAUD_SWITCH,
    BEGIN,
    COMMIT,
    CRC,
    DATA,
    END,
    ERROR,
    FRAME_HEAD,
    HEADER,
    IMAGES,
    KEEP,
    LAYER,
    MAX_PAYLOAD,
    NAK,
    OPEN,
    READ,
    REPLY,
    SEQ,
    SWITCH_MS,
    SYNC,
    TRAILER,
    WRITE,
)
from prune8_host.errors import BoardError, LinkError

from . import patience

FILLER = bytes(HEADER + MAX_PAYLOAD + TRAILER)  # completes any partial frame on the board
ATTEMPTS = 8        # NAKs of one frame in a row before giving up (a line damaging them all)
# Frames in flight: an ESP32's REPL UART holds a 128-byte hardware FIFO and a 260-byte
# stdin ring buffer (MicroPython's ports/esp32/mphalport.c), room for one more full
# frame (265 bytes) while the board is busy with the one before.
WINDOW = 2
# How long the board may stay silent after each frame type (patience.py), and the
# types that take long by nature: they are not resent before that bound.
SILENCE_S = {BEGIN: patience.FLASH_S, LAYER: patience.FLASH_S, DATA: patience.FLASH_S,
             END: patience.FLASH_S, WRITE: patience.FLASH_S, COMMIT: patience.FLASH_S,
             ABORT: patience.FLASH_S, OPEN: patience.REPL_S, READ: patience.REPL_S,
             KEEP: patience.COPY_S, IMAGES: patience.IMAGES_S, BAUD: patience.REPL_S}
# How long the host waits at the new rate for the board's answer to its confirmation:
# longer than the board waits for the confirmation itself (SWITCH_MS), so that when the
# host gives up and goes back, the board has gone back too.
CONFIRM_S = 1.5 * SWITCH_MS / 1000
# After the board's answer to a switch, before the confirmation at the new rate: the
# board re-inits its UART once its answer has left; a confirmation that overtakes the
# re-init is noise, and the switch fails after SWITCH_MS.
SETTLE_S = 0.02
# The frame types that are not resent before their bound: a KEEP copies a layer, an
# IMAGES frame runs the model, and at an END the board closes and commits what it wrote
# (LittleFS flushes the file's last block and renames it over the old one) and then
# its receiver ends, so an END sent again would be typed into the REPL.
LONG_TYPES = (KEEP, IMAGES, END)
# What a board prints when it resets or is back at its REPL: the receiver is gone, and
# anything sent now would be typed into the REPL, so the host must stop at once.
RESET_SIGNS = (b"rst:", b"soft reboot", b"MicroPython v", b"\r\n>>> ", b"raw REPL; CTRL-B")


def frame(ftype: int, seq: int, payload: bytes) -> bytes:
    if not 1 <= len(payload) <= MAX_PAYLOAD:
        raise ValueError(f"frame payload must be 1..{MAX_PAYLOAD} bytes, got {len(payload)}")
    body = struct.pack(FRAME_HEAD, ftype, seq & 0xFFFF, len(payload) - 1) + payload
    return bytes([SYNC]) + body + struct.pack(CRC, zlib.crc32(body))


def abort_sequence(seq: int = 0) -> bytes:
    """Ends any receiver still running on the board (e.g. after the host was killed)."""
    return FILLER + frame(ABORT, seq, b"\0")


class HostLink:
    """Frames with acknowledgement and retransmission over `port` (read(n) with a
    timeout); `baud` is the line's (0: unknown or unpaced), `window` the frames in
    flight, `timeout` the resend time, `silence` (tests) one bound for every type,
    `bounds` the bound of a type where this exchange needs another than SILENCE_S's."""

    def __init__(self, port, timeout: float = patience.RESEND_S, progress=None,
                 baud: int = 0, window: int | None = None, silence: float | None = None,
                 bounds: dict | None = None):
        self.port = port
        self.timeout = timeout
        self.progress = progress    # called with the bytes each DATA, IMAGES or READ moved
        self.baud = baud
        self.window = max(1, WINDOW if window is None else window)  # None: WINDOW, read now
        self.silence = silence
        self.bounds = dict(bounds or {})
        self.seq = 0
        self.tx_bytes = 0           # everything written, retries and filler included
        self.rx_bytes = 0
        self.retries = 0
        self._wire_free = 0.0       # when the last byte written reaches the board
        self._heard = 0.0           # when the board last sent a well-formed answer
        self.home = 0               # the port's rate before a baud switch (0: not switched)
        self.switched = False       # the line ran at another rate during this receiver
        self.board_reset = False    # the board was seen resetting (its banner came)

    # -- io --------------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        self.port.write(data)
        self.tx_bytes += len(data)
        now = time.monotonic()
        self._wire_free = max(now, self._wire_free) + patience.wire_seconds(len(data),
                                                                             self.baud)

    def _read(self, n: int, deadline: float) -> bytes:
        out = b""
        while len(out) < n and time.monotonic() < deadline:
            got = self.port.read(n - len(out))
            if got:
                out += got
        self.rx_bytes += len(out)
        return out

    def _answer(self, first: int, count: int, deadline: float):
        """The next answer to one of the `count` frames from seq `first`:
        (kind, seq, value) with kind 'ack'|'nak' (value None), 'reply'|'error' (value:
        the payload), or ('reset'|'timeout', None, what was seen)."""
        seen = b""

        def ours(s: int) -> bool:
            return (s - first) & 0xFFFF < count

        while time.monotonic() < deadline:
            if any(sign in seen for sign in RESET_SIGNS):
                # the rest of the board's line, to quote it (no more frames are sent)
                seen += self._read(120, min(deadline, time.monotonic() + 0.3))
                return "reset", None, seen
            b = self._read(1, deadline)
            if not b:
                break
            c = b[0]
            if c in (ACK, NAK):
                tail = self._read(2, deadline)
                if len(tail) == 2:
                    s = struct.unpack(SEQ, tail)[0]
                    self._heard = time.monotonic()
                    if ours(s):
                        return ("ack" if c == ACK else "nak"), s, None
                continue  # an answer to an older frame: ignore it
            if c == SYNC:
                head = self._read(HEADER - 1, deadline)
                if len(head) < HEADER - 1:
                    break
                ftype, fseq, ln = struct.unpack(FRAME_HEAD, head)
                rest = self._read(ln + 1 + TRAILER, deadline)
                body = head + rest[:-TRAILER]
                if len(rest) == ln + 1 + TRAILER and \
                        struct.unpack(CRC, rest[-TRAILER:])[0] == zlib.crc32(body) and \
                        ftype in (REPLY, ERROR):
                    self._heard = time.monotonic()
                    if ours(fseq):
                        return ("reply" if ftype == REPLY else "error"), fseq, rest[:-TRAILER]
                    continue
                seen += b + head + rest
                continue
            seen += b
            if len(seen) > 4096:
                seen = seen[-4096:]
        return "timeout", None, seen

    # -- exchanges ---------------------------------------------------------------------

    def request(self, ftype: int, payload: bytes = b"\0") -> bytes | None:
        """Deliver one frame; return the board's reply payload (None for a plain ACK)."""
        return self.exchange([(ftype, payload)])[0]

    def exchange(self, frames) -> list:
        """Deliver `frames` ((type, payload) pairs) in order, up to `window` in flight;
        return each one's reply payload (None for a plain ACK). After a baud switch the
        line goes back to the port's rate before an END, so that the board's REPL answers
        at that rate once the receiver has ended."""
        frames = list(frames)
        ends = [i for i, (t, _) in enumerate(frames) if t == END]
        if self.home and ends:
            head = self._exchange(frames[:ends[0]])
            self.switch(self.home)
            tail = self._exchange(frames[ends[0]:])
            # the way back failed and both stayed switched: the receiver still goes back
            # to the REPL's rate as it ends, so the port goes back too
            self.go_home()
            return head + tail
        return self._exchange(frames)

    def _exchange(self, frames) -> list:
        replies: list = [None] * len(frames)
        first = self.seq
        data = [frame(t, first + i, p) for i, (t, p) in enumerate(frames)]
        base = nxt = 0          # the oldest unanswered frame; the next one to write
        attempts = 0            # NAKs of `base` in a row
        since = None            # when `base` (first sent) can have reached the board
        seen = b""
        while base < len(frames):
            while nxt < len(frames) and nxt - base < self.window:
                self._write(data[nxt])
                if nxt == base and since is None:
                    since = self._wire_free
                nxt += 1
            ftype = frames[base][0]
            bound = self.silence if self.silence is not None else \
                self.bounds.get(ftype) or SILENCE_S.get(ftype, patience.FLASH_S)
            wait = bound if ftype in LONG_TYPES else min(self.timeout, bound)
            deadline = max(self._wire_free, self._heard) + wait
            kind, s, value = self._answer(first + base, nxt - base, deadline)
            if kind in ("ack", "reply"):
                if s != (first + base) & 0xFFFF:
                    continue  # a later frame's answer: this one's was lost; the timeout resends
                replies[base] = value
                if self.progress and ftype in (DATA, IMAGES):
                    self.progress(len(frames[base][1]))
                elif self.progress and ftype == READ:
                    self.progress(len(value))
                base += 1
                self.seq = (first + base) & 0xFFFF
                attempts, since = 0, None
                continue
            if kind == "error":
                self._abort(first + nxt)
                raise BoardError(value.decode(errors="replace"))
            if kind == "reset":
                self.board_reset = True
                self.go_home()
                raise LinkError(_describe(value, "the board reset during the transfer; "
                                                 "nothing was committed, run the command "
                                                 "again"))
            self.retries += 1
            if kind == "nak":
                attempts += 1
                if attempts >= ATTEMPTS:
                    raise LinkError(_describe(seen, f"no answer to frame {first + base} "
                                                    f"after {ATTEMPTS} attempts"))
            else:  # timeout
                seen = value or seen
                if b"\x04" in value:  # the raw REPL's end marker: the receiver has ended
                    raise LinkError(_describe(value, "the board program ended unexpectedly"))
                quiet = time.monotonic() - max(self._heard, since or 0.0)
                if quiet >= bound:
                    raise LinkError(_describe(seen, f"no answer to frame {first + base} "
                                                    f"after {self.retries} attempts "
                                                    f"({quiet:.0f} s without a word from "
                                                    f"the board)"))
                self._write(FILLER)  # complete a partial frame; the board NAKs it
                self._drain()
            nxt = base  # go back: send again from the oldest unanswered frame
        return replies

    def _abort(self, seq: int) -> None:
        """After an ERROR: end the receiver, which answers every further frame with the
        same ERROR until it sees an ABORT (frames in flight never reach the REPL)."""
        self._write(frame(ABORT, seq, b"\0"))
        self.go_home()  # the board answers at the switched rate, then goes back too

    # -- the baud switch (docs/protocol.md, "Baud switch") -----------------------------

    @property
    def rate(self) -> int:
        return self.port.baudrate

    def _set_rate(self, rate: int) -> None:
        self.port.flush()  # what was written at the old rate leaves first
        self.port.baudrate = rate
        if self.baud:
            self.baud = rate  # the line's pacing, for the silence bounds

    def go_home(self) -> None:
        """After an ABORT, or a board gone: the port's rate from before the switch."""
        if self.home:
            self._set_rate(self.home)
            self.home = 0

    def switch(self, rate: int) -> bool:
        """Move the line to `rate` (host and board) for the rest of the receiver's run.
        True when both now run at `rate`; False when both stayed at the current rate (the
        board cannot switch, or the confirmation at `rate` did not come back in time:
        each side went back by itself). A board that answers at neither rate raises
        LinkError."""
        now = self.rate
        if rate == now:
            return True
        reply = self.request(BAUD, struct.pack(BAUD_FMT, rate, now, BAUD_SWITCH))
        if struct.unpack(BAUD_REPLY, reply)[0] != rate:
            return False
        self._set_rate(rate)
        time.sleep(SETTLE_S)
        silence, self.silence = self.silence, CONFIRM_S
        try:
            self.request(BAUD, struct.pack(BAUD_FMT, rate, now, BAUD_CONFIRM))
            confirmed = True
        except LinkError:
            if self.board_reset:  # it came back at its boot rate: nothing to go back to
                self._set_rate(now)
                raise
            confirmed = False
        finally:
            self.silence = silence
        if confirmed:
            self.home = 0 if self.home == rate else (self.home or now)
            self.switched = True
            return True
        self._set_rate(now)
        try:  # both sides went back: the board's answer at the old rate shows it did
            self.request(BAUD, struct.pack(BAUD_FMT, now, now, BAUD_CONFIRM))
        except LinkError as e:
            raise LinkError(f"the board did not confirm the switch to {rate} baud and then "
                            f"did not answer at {now} baud either ({e}); it may have reset: "
                            f"run the command again") from None
        return False

    def _drain(self) -> None:
        """Discard answers to the damaged frame and filler (they are stale)."""
        deadline = time.monotonic() + min(0.3, self.timeout)
        while time.monotonic() < deadline:
            if not self.port.read(64):
                break


def _describe(seen: bytes, what: str) -> str:
    text = seen.decode(errors="replace")
    if any(sign in seen for sign in RESET_SIGNS):
        banner = next((l for l in text.splitlines() if "MicroPython v" in l or "rst:" in l),
                      text.strip()[-120:])
        return f"{what} (it printed {banner.strip()[:120]!r})"
    if text.strip():
        return f"{what}: the board printed {text.strip()[-200:]!r}"
    return f"{what}: the board sent nothing (check the port, or whether it reset)"
