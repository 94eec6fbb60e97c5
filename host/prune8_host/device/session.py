"""A session with a board: mpremote's serial transport plus prune8's checks.

`BoardSession(port)` opens the port, ends any prune8 receiver left running (a host
killed mid-transfer), enters the raw REPL, and checks that the board runs a recent
enough MicroPython and the same prune8 as this host. Every failure becomes a
`BoardUnavailable` (a `FirmwareMissing` when prune8 is not deployed or is another
version) with one sentence saying what was wrong and what to do.

A slow board is waited for (patience.py): mpremote's reads go through `PatientPort`,
which gives up only after the board has been silent for the operation's bound, not
after the 0.1 s a single read of the port lasts.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import re
import time

import serial
from mpremote.transport import TransportError
from mpremote.transport_serial import SerialTransport

import prune8
from prune8_host.errors import BoardExecError, BoardUnavailable, FirmwareMissing, last_error_line

from . import calls, patience
from .link import RESET_SIGNS, HostLink, abort_sequence

MIN_MICROPYTHON = (1, 22, 0)
# errno of a port another program holds: its exclusive lock (flock) or the device itself
_BUSY = (errno.EAGAIN, errno.EWOULDBLOCK, errno.EBUSY)
# After an ABORT at a switched rate: the time a board takes to end its receiver and put
# its UART back (an ESP32 needs a few ms; a paced virtual board with its CPU factor more)
SWITCH_SETTLE_S = 0.1


class PatientPort:
    """The serial port as mpremote sees it: read(n) waits for n bytes for as long as the
    board keeps talking, and returns short only after `silence` seconds without a byte,
    counted from when the host's last write can have reached the board at `baud`.
    Everything else is the underlying port's (`raw`, whose reads last 0.1 s at most)."""

    def __init__(self, raw, baud: int, silence: float = patience.REPL_S):
        self.raw = raw
        self.baud = baud
        self.silence = silence
        self._heard = time.monotonic()
        self._wire_free = 0.0

    def write(self, data) -> int | None:
        n = self.raw.write(data)
        now = time.monotonic()
        self._wire_free = max(now, self._wire_free) + patience.wire_seconds(len(data),
                                                                             self.baud)
        return n

    def read(self, size: int = 1) -> bytes:
        out = bytearray()
        while len(out) < size:
            got = self.raw.read(size - len(out))
            now = time.monotonic()
            if got:
                out += got
                self._heard = now
            elif now >= max(self._heard, self._wire_free) + self.silence:
                break
        return bytes(out)

    def __getattr__(self, name):
        return getattr(self.raw, name)


class _Reset(Exception):
    def __init__(self, seen: bytes):
        self.seen = seen


class BoardSession:
    """Raw-REPL session with a board running prune8's firmware (a context manager)."""

    def __init__(self, port: str, baud: int = 115200, timeout: float = patience.FLASH_S,
                 check_firmware: bool = True, baud_switch: int = 0):
        self.port = port
        self.baud = baud
        self.baud_switch = baud_switch  # the rate transfers ask the board for (0: none)
        self.timeout = timeout
        self.check_firmware = check_firmware
        self.transport: SerialTransport | None = None
        self.info: dict = {}

    # -- opening ------------------------------------------------------------------------

    def __enter__(self) -> "BoardSession":
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def open(self) -> None:
        try:
            # timeout: every read returns within 0.1 s, so no wait can hang forever;
            # PatientPort makes mpremote's reads wait while the board is merely slow
            self.transport = SerialTransport(self.port, baudrate=self.baud, timeout=0.1)
        except TransportError as e:
            raise BoardUnavailable(self._open_failure(e)) from None
        self.transport.serial = PatientPort(self.transport.serial, self.baud,
                                            self._repl_silence())
        try:
            self._enter_raw_repl()
            self._check_micropython()
            if self.check_firmware:
                self.info = self.call_json(calls.INFO)
                self._check_version()
        except BaseException:
            self.close()
            raise

    def _open_failure(self, e: Exception) -> str:
        # mpremote reports only "failed to access PORT"; opening it once more with
        # pyserial gives the operating system's reason (busy, missing, no permission).
        text = str(e.__context__ or e)
        code = None
        try:
            probe = serial.serial_for_url(self.port, do_not_open=True, exclusive=True)
            probe.open()
            probe.close()
        except (serial.SerialException, OSError, ValueError) as err:
            text = str(err)
            code = getattr(err, "errno", None)  # pyserial's lock failure carries flock's
        if code in _BUSY:
            return (f"port {self.port} is busy: another program (mpremote, a serial monitor, "
                    f"another prune8) has it open; close it and retry")
        return (f"cannot open {self.port} ({text.strip() or type(e).__name__}): check the "
                f"cable, and that --port names the board's serial device")

    def _repl_silence(self) -> float:
        """How long the REPL may stay silent before an answer (no flash is written)."""
        return min(self.timeout, patience.REPL_S)

    def _enter_raw_repl(self) -> None:
        serial = self.transport.serial
        if self.baud_switch:
            # A host killed after a baud switch left its receiver at the switched rate:
            # end it there first (it goes back to the REPL's rate as it ends). A REPL at
            # the normal rate sees line noise, which the Ctrl-Cs below clear.
            serial.raw.baudrate = self.baud_switch
            serial.write(abort_sequence())
            serial.raw.flush()
            time.sleep(patience.wire_seconds(len(abort_sequence()), self.baud_switch)
                       + SWITCH_SETTLE_S)
            serial.raw.baudrate = self.baud
        # End a receiver a killed host left running; a plain REPL ignores these bytes.
        serial.write(abort_sequence() + b"\r\x03\x03")
        time.sleep(0.05)
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):  # mpremote prints what it got on failure
                try:
                    self.transport.enter_raw_repl(soft_reset=False,
                                                  timeout_overall=self._repl_silence())
                except TransportError:
                    # A receiver that a host killed after a baud switch hears nothing
                    # at this rate until it goes back by itself (IDLE_MS, shorter than
                    # this wait): end it now.
                    serial.write(abort_sequence() + b"\r\x03\x03")
                    time.sleep(0.05)
                    self.transport.enter_raw_repl(soft_reset=False,
                                                  timeout_overall=self._repl_silence())
        except TransportError:
            seen = (out.getvalue().strip().splitlines() or [""])[-1]  # the last attempt's
            hint = f" (it sent {seen[-80:]})" if seen and seen != "b''" else " (it sent nothing)"
            raise BoardUnavailable(
                f"no MicroPython REPL answered on {self.port} within {self._repl_silence():g} s{hint}: "
                f"is MicroPython flashed (prune8 flash) and is this the right --port?") from None

    def _resync_raw_repl(self) -> None:
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                self.transport.enter_raw_repl(soft_reset=False,
                                              timeout_overall=self._repl_silence())
        except TransportError as e:
            raise BoardUnavailable(f"the board on {self.port} did not come back to its REPL "
                                   f"after the transfer at a switched baud rate ({e}); it "
                                   f"may have reset: run the command again") from None

    def soft_reset(self, timeout: float = 30.0) -> None:
        """Ctrl-D at the raw REPL: a fresh interpreter and heap, as after boot (boot.py
        runs again, no module is loaded). A board that says nothing for `timeout` s
        is reported as gone."""
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                self.transport.enter_raw_repl(soft_reset=True, timeout_overall=timeout)
        except TransportError as e:
            raise BoardUnavailable(f"the board on {self.port} did not come back from a soft "
                                   f"reset within {timeout:g} s ({e})") from None

    def _check_micropython(self) -> None:
        text = self.exec("import sys;print(sys.implementation.name,"
                         "tuple(sys.implementation.version[:3]))")
        m = re.search(r"(\w+) \((\d+), (\d+), (\d+)\)", text)
        if not m or m.group(1) != "micropython":
            raise BoardUnavailable(f"the board on {self.port} does not run MicroPython "
                                   f"(it says {text.strip()[:80]!r})")
        version = tuple(int(m.group(i)) for i in (2, 3, 4))
        if version < MIN_MICROPYTHON:
            have, need = ".".join(map(str, version)), ".".join(map(str, MIN_MICROPYTHON))
            raise BoardUnavailable(f"MicroPython {have} on {self.port} is older than {need}, "
                                   f"which prune8 needs: flash a newer image (prune8 flash)")

    def _check_version(self) -> None:
        theirs = self.info.get("prune8")
        if theirs != prune8.__version__:
            raise FirmwareMissing(f"prune8 {theirs} is deployed on {self.port} but this host "
                                   f"has {prune8.__version__}: run prune8 deploy --port "
                                   f"{self.port}")

    def close(self) -> None:
        if self.transport is not None:
            try:
                if self.transport.in_raw_repl:
                    self.transport.exit_raw_repl()
                self.transport.close()
            except (OSError, TransportError):
                pass
            self.transport = None

    @contextlib.contextmanager
    def filesystem(self, doing: str):
        """Around mpremote's filesystem calls on self.transport: a board that resets or
        stops answering meanwhile is a BoardUnavailable, as in exec()."""
        try:
            yield self.transport
        except TransportError as e:
            self.transport.in_raw_repl = False
            raise BoardUnavailable(f"the board on {self.port} stopped answering while "
                                   f"{doing} ({e}); it may have reset: run the command "
                                   f"again") from None

    # -- running code ---------------------------------------------------------------------

    def exec(self, code: str, timeout: float | None = None) -> str:
        """Run code in the raw REPL; return its output; raise on a board exception.

        A board that resets while the code runs is reported at once (its banner is in
        the output), not after the timeout.
        """
        out = bytearray()

        def consume(chunk: bytes) -> None:
            out.extend(chunk)
            tail = bytes(out[-300:])
            if any(sign in tail for sign in RESET_SIGNS):
                raise _Reset(tail)

        try:
            self.transport.exec_raw_no_follow(code)
            _, err = self.transport.follow(timeout or self.timeout, data_consumer=consume)
        except _Reset as r:
            self.transport.in_raw_repl = False
            line = next((l for l in r.seen.decode(errors="replace").splitlines()
                         if any(sign.decode().strip() in l for sign in RESET_SIGNS)), "")
            raise BoardUnavailable(f"the board on {self.port} reset while running a command "
                                   f"(it printed {line.strip()[:100]!r})") from None
        except TransportError as e:
            raise BoardUnavailable(f"the board on {self.port} stopped answering ({e}); "
                                   f"it may have reset") from None
        if err:
            raise BoardExecError(err.decode(errors="replace"))
        return out.rstrip(b"\x04").decode(errors="replace")

    def call_json(self, code: str, timeout: float | None = None):
        """Run code that prints one JSON line; return it parsed."""
        try:
            text = self.exec(code, timeout)
        except BoardExecError as e:
            if e.exc_type == "ImportError":
                raise FirmwareMissing(f"prune8 is not deployed on the board at {self.port} "
                                      f"({e.last_line}): run prune8 deploy --port "
                                      f"{self.port}") from None
            raise BoardUnavailable(f"the board raised {e.last_line}") from None
        for line in reversed(text.strip().splitlines()):
            if line.startswith("{"):
                return json.loads(line)
        raise BoardUnavailable(f"unexpected answer from the board: {text.strip()[:200]!r}")

    @contextlib.contextmanager
    def link(self, code: str, progress=None):
        """Start a receiver (`code`) on the board and yield a HostLink talking to it."""
        try:
            self.transport.exec_raw_no_follow(code)
        except TransportError as e:
            raise BoardUnavailable(f"could not start {code!r} on the board: {e}") from None
        link = HostLink(self.transport.serial.raw, progress=progress, baud=self.baud)
        try:
            if self.baud_switch:
                link.switch(self.baud_switch)
            yield link
        finally:
            self._finish_link(link)

    def _finish_link(self, link: HostLink) -> None:
        """Collect the receiver's end of output (and any traceback it left)."""
        if link.home:
            # Unwinding while switched: end the receiver at the switched rate; it goes
            # back to the REPL's rate as it ends, and so does the port.
            self.transport.serial.write(abort_sequence(link.seq))
            link.go_home()
        if link.board_reset:  # no receiver and no raw REPL are left to wait for
            self.transport.in_raw_repl = False
            return
        try:
            out, err = self.transport.follow(self.timeout)
        except TransportError:
            # The receiver is still waiting (we are unwinding after an error): end it.
            self.transport.serial.write(abort_sequence(link.seq))
            try:
                self.transport.follow(self.timeout)
            except TransportError:
                pass
            if link.switched:
                self._resync_raw_repl()
            return
        if err:
            raise BoardUnavailable(f"the board raised {last_error_line(err.decode())}")
        if link.switched:
            # Bytes that crossed the line while the two sides' rates differed arrive as
            # noise; what the receiver left unread reaches the REPL after it ends, where a
            # stray Ctrl-A or Ctrl-B changes its mode. Enter the raw REPL anew (Ctrl-C,
            # Ctrl-A, its banner): the next command starts from a known state.
            self._resync_raw_repl()
