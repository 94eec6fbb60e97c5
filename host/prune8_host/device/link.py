"""Host side of the serial link (docs/protocol.md): frames, acknowledgements, retries.

`HostLink` sends frames over a pyserial-like port (mpremote's `transport.serial`) to a
receiver running on the board (`prune8.receiver`), and waits for each answer. The host
drives every exchange, so all timers live here. The frame layout and its constants are
the firmware's own (`prune8.protocol`).
"""

from __future__ import annotations

import struct
import time
import zlib

from prune8.protocol import (
    ABORT,
    ACK,
    CRC,
    DATA,
    ERROR,
    FRAME_HEAD,
    HEADER,
    MAX_PAYLOAD,
    NAK,
    REPLY,
    SEQ,
    SYNC,
    TRAILER,
)
from prune8_host.errors import BoardError, LinkError

FILLER = bytes(HEADER + MAX_PAYLOAD + TRAILER)  # completes any partial frame on the board
ATTEMPTS = 8
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
    """Stop-and-wait frames with retransmission over `port` (read(n) with a timeout)."""

    def __init__(self, port, timeout: float = 2.0, progress=None):
        self.port = port
        self.timeout = timeout
        self.progress = progress    # called with the payload bytes of each delivered frame
        self.seq = 0
        self.tx_bytes = 0           # everything written, retries and filler included
        self.rx_bytes = 0
        self.retries = 0

    # -- io --------------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        self.port.write(data)
        self.tx_bytes += len(data)

    def _read(self, n: int, deadline: float) -> bytes:
        out = b""
        while len(out) < n and time.monotonic() < deadline:
            got = self.port.read(n - len(out))
            if got:
                out += got
        self.rx_bytes += len(out)
        return out

    def _answer(self, seq: int, deadline: float):
        """('ack'|'nak', None), ('reply'|'error', payload), ('reset', what was seen) or
        ('timeout', what was seen)."""
        seen = b""
        while time.monotonic() < deadline:
            if any(sign in seen for sign in RESET_SIGNS):
                # the rest of the board's line, to quote it (no more frames are sent)
                seen += self._read(120, min(deadline, time.monotonic() + 0.3))
                return "reset", seen
            b = self._read(1, deadline)
            if not b:
                break
            c = b[0]
            if c in (ACK, NAK):
                tail = self._read(2, deadline)
                if len(tail) == 2 and struct.unpack(SEQ, tail)[0] == seq & 0xFFFF:
                    return ("ack" if c == ACK else "nak"), None
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
                        fseq == seq & 0xFFFF and ftype in (REPLY, ERROR):
                    return ("reply" if ftype == REPLY else "error"), rest[:-TRAILER]
                seen += b + head + rest
                continue
            seen += b
            if len(seen) > 4096:
                seen = seen[-4096:]
        return "timeout", seen

    # -- exchanges ---------------------------------------------------------------------

    def request(self, ftype: int, payload: bytes = b"\0") -> bytes | None:
        """Deliver one frame; return the board's reply payload (None for a plain ACK)."""
        data = frame(ftype, self.seq, payload)
        seen = b""
        for attempt in range(ATTEMPTS):
            if attempt:
                self.retries += 1
            self._write(data)
            kind, value = self._answer(self.seq, time.monotonic() + self.timeout)
            if kind in ("ack", "reply"):
                self.seq = (self.seq + 1) & 0xFFFF
                if self.progress and ftype == DATA:
                    self.progress(len(payload))
                return value
            if kind == "error":
                raise BoardError(value.decode(errors="replace"))
            if kind == "reset":
                raise LinkError(_describe(value, "the board reset during the transfer; "
                                                 "nothing was committed, run the command "
                                                 "again"))
            if kind == "timeout":
                seen = value or seen
                if b"\x04" in value:  # the raw REPL's end marker: the receiver has ended
                    raise LinkError(_describe(value, "the board program ended unexpectedly"))
                self._write(FILLER)  # complete a partial frame; the board NAKs it
                self._drain()
        raise LinkError(_describe(seen, f"no answer to frame {self.seq} after {ATTEMPTS} "
                                        f"attempts"))

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
