"""VmProcess: the virtual board's chip, a Node.js process running the MicroPython VM.

One VmProcess stands for the board's chip across power-ons: each power-on starts a new
Node process running vboard.mjs (a "spawn"), which boots the VM from the flash directory.
It speaks the VM's side of the line through the UART model it is given (uart.py):

- its output goes onto `tx`, and a power-on clears `tx` and puts the ROM bootloader's
  first lines on it;
- the control channel (a pipe, one line per message) updates `rx`: "R <char>" the VM asks
  for input, "I <char>" the interrupt char changed, "U <n>" n bytes of the last frame are
  still unread; "B <rate>" the firmware set its UART's rate (what it printed before is
  sent at the old one); "T <char> <ms>" the VM asks for input for at most ms (an empty
  frame answers when nothing came); and the boot state: "RUN <script>" boot.py / main.py starts, "BOOTED" a
  prompt is up;
- `feed()` moves what `rx` holds into the VM: a frame on Node's stdin ("D" + uint16 LE
  length + bytes, an empty one wakes the VM) and a byte on the interrupt pipe per Ctrl-C;
- what Node prints on stderr is logged, and its tail goes into error messages.

If Node exits after the VM started its boot scripts, the board reboots, as a board does
after a fatal error, up to MAX_REBOOTS times in a row; otherwise (or when it exited
before that) the error is kept and whoever waits for the boot is told.

Threads: `power_on`, `feed`, `kill`, `fail` and the selector handlers run on the bridge
thread only (pty_bridge.py), which owns the selector the Node pipes are registered in.
`pid`, `error` and `wait_booted` may be called from any thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import logging
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from prune8_host.boards import BoardProfile
from prune8_host.errors import VirtualBoardError

from . import node as nodejs
from .uart import RxPath, TxPath

log = logging.getLogger(__name__)

# The pipe carrying the VM's output holds this much more (Linux: F_SETPIPE_SZ); shrunk
# only when the line is paced, so that with pty_bridge's TX_BUFFER_PACED a Ctrl-C stops
# the output promptly.
OUTPUT_PIPE_SIZE = 4096
# wait_booted() waits for the prompt, unless boot.py/main.py is still running after this
# long: then the board runs its application, and that is "up" too.
APP_RUNNING_S = 2.0
# Reboots after a crash, in a row (a VM that reaches its boot scripts resets the count).
MAX_REBOOTS = 3
STDERR_TAIL_BYTES = 8192

# The first lines an ESP32's ROM bootloader prints after a power-on reset (abbreviated):
# what a terminal shows after pressing RESET, before MicroPython's banner.
_ROM_BOOT = {
    "esp32": "ets Jul 29 2019 12:21:46\r\n\r\n"
             "rst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\r\n",
}
_ROM_BOOT_RISCV_STYLE = "ESP-ROM:{chip}\r\nrst:0x1 (POWERON),boot:0x8 (SPI_FAST_FLASH_BOOT)\r\n"

if sys.platform.startswith("linux"):
    _libc = ctypes.CDLL(None, use_errno=True)
    _PR_SET_PDEATHSIG = 1
else:  # pragma: no cover - the project runs on Linux
    _libc = None


def _die_with_parent() -> None:
    """In the Node child: get SIGKILL when the bridge thread that started it ends, so
    no Node process outlives its board, even when the Python process is killed."""
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _read_fd(fd: int) -> bytes | None:
    """Bytes read, b"" at EOF, None when nothing was there after all."""
    try:
        return os.read(fd, 65536)
    except BlockingIOError:
        return None


class VmProcess:
    """The board's chip: power_on() starts the VM anew, wait_booted() waits for its prompt.

    node, mpy: the Node.js binary and the pinned micropython.mjs (node.py); flash_dir:
    the board's filesystem; rx, tx: the UART model it shares with the bridge; paced: the
    line has a baud rate; timed: the VM applies the profile's flash and CPU timing;
    label: names the board in log lines (its port). The profile,
    micropython_version and flash_bytes are as VirtualBoard takes them.
    """

    def __init__(self, *, node: str, mpy: Path, flash_dir: Path, profile: BoardProfile,
                 rx: RxPath, tx: TxPath, micropython_version: tuple[int, ...] | None,
                 flash_bytes: int, paced: bool, label: str, timed: bool = False):
        self._node = node
        self._mpy = mpy
        self._flash_dir = flash_dir
        self._profile = profile
        self._rx = rx
        self._tx = tx
        self._micropython_version = micropython_version
        self._flash_bytes = flash_bytes
        self._paced = paced
        self._timed = timed
        self._label = label

        self._sel: selectors.BaseSelector | None = None  # while a Node process runs
        self._proc: subprocess.Popen | None = None
        self._fds: dict[str, int] = {}
        self._ctrl_buf = bytearray()
        self._stderr_tail = bytearray()
        self._crashes = 0

        self._state = threading.Condition()
        self._spawns = 0  # Node processes started (power-ons)
        self._booted_spawn = 0  # the spawn whose VM last reached a prompt
        self._up_spawn = 0  # the spawn whose VM last started running boot scripts
        self._script: tuple[int, str, float] | None = None  # (spawn, name, since)
        self._error: str | None = None

    # ------------------------------------------------------------------ any thread

    @property
    def pid(self) -> int | None:
        """PID of the Node process running the VM (None when there is none)."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    @property
    def error(self) -> str | None:
        """Why the VM cannot come up (None: no failure since the last power-on)."""
        return self._error

    def wait_booted(self, spawn: int, timeout: float) -> None:
        """Return once the VM of power-on number `spawn` (or a later one) shows its
        prompt, or has run boot.py/main.py for APP_RUNNING_S; raise VirtualBoardError
        when it failed or `timeout` passed."""
        deadline = time.monotonic() + timeout
        with self._state:
            while self._booted_spawn < spawn and self._error is None:
                now = time.monotonic()
                script = self._script
                if script and script[0] == spawn and now - script[2] >= APP_RUNNING_S:
                    return  # main.py (or boot.py) runs on: the board is up
                if now >= deadline:
                    raise VirtualBoardError(f"the virtual board did not reach its prompt "
                                            f"within {timeout:.0f} s{self._stderr_note()}")
                self._state.wait(min(deadline - now, 0.1))
            if self._error is not None:
                raise VirtualBoardError(self._error)

    # ------------------------------------------------------------------ bridge thread

    @property
    def output_fd(self) -> int | None:
        """The pipe the VM's output arrives on (None while no Node process runs): the
        bridge stops watching it to make the VM's print() block."""
        return self._fds.get("out")

    def power_on(self, sel: selectors.BaseSelector, now: float) -> int:
        """Power the board on (again): end the running VM, reset the line, start a new
        Node process and register its pipes in `sel`. Returns the power-on's number."""
        self.kill()
        with self._state:
            self._error = None  # a fresh start after an earlier failure
        self._rx.reset()
        self._tx.clear()  # what the UART had not sent yet is lost with the reset
        chip = self._profile.chip
        rom = _ROM_BOOT.get(chip, _ROM_BOOT_RISCV_STYLE.format(chip=chip))
        self._tx.push(rom.encode("ascii"), now)
        self._sel = sel
        self._spawn()
        return self._spawns

    def feed(self, now: float) -> None:
        """Deliver what has arrived on the line: interrupts, and the FIFO's bytes when
        the VM waits for input."""
        if self._proc is None:
            return
        rx = self._rx
        if rx.step(now):
            try:
                os.write(self._fds["intr"], b"\x03")
            except BlockingIOError:
                pass  # the pipe is full of interrupts already
            if rx.waiting:
                rx.waiting = False
                rx.last_request = now
                self._send_frame(b"")  # wake the VM so it sees the interrupt
        data = rx.take_for_vm(now)
        if data:
            self._send_frame(data)
        elif rx.expired(now):
            self._send_frame(b"")  # a timed request (baud switch) with nothing in time

    def fail(self, message: str) -> None:
        """Record why the board cannot run, and tell whoever waits for the boot."""
        with self._state:
            self._error = message
            self._state.notify_all()

    def kill(self) -> None:
        """End the Node process (if any) and close its pipes; the board is off."""
        proc, self._proc = self._proc, None
        fds, self._fds = self._fds, {}
        sel, self._sel = self._sel, None
        if sel is not None:
            for fd in fds.values():
                try:
                    sel.unregister(fd)
                except (KeyError, ValueError):
                    pass
        if proc is not None:
            if proc.poll() is None:
                proc.kill()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover
                log.error("vboard: Node process %d did not exit", proc.pid)
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                try:
                    stream.close()
                except OSError:
                    pass
        for name in ("ctrl", "intr"):
            if name in fds:
                os.close(fds[name])

    def on_output(self, mask: int, now: float) -> None:
        """Selector handler of the output pipe: onto the line, or Node has exited."""
        fd = self._fds.get("out")
        if fd is None:
            return  # an event from before a kill in the same select() batch
        data = _read_fd(fd)
        if data:
            self._tx.push(data, now)
        elif data is not None:
            self._exited(now)

    # ------------------------------------------------------------------ internals

    def _spawn(self) -> None:
        chip = self._profile.chip.upper()
        ctrl_r, ctrl_w = os.pipe()
        intr_r, intr_w = os.pipe()
        os.set_blocking(intr_r, False)  # Node polls it
        os.set_blocking(intr_w, False)
        version = self._micropython_version
        cfg = {
            "mpy": str(self._mpy),
            "vmInit": str(nodejs.VM_INIT_PY),
            "flash": str(self._flash_dir.resolve()),
            "ctrlFd": ctrl_w,
            "intrFd": intr_r,
            "sysname": "esp32" if self._profile.chip.startswith("esp32") else self._profile.chip,
            "machine": f"Generic {chip} module with {chip}",  # as stock firmware names it
            "version": list(version) if version else None,
            "heapBytes": self._profile.heap_bytes,
            "flashBytes": self._flash_bytes,
            # a real board's slowness (boards/*.toml), or none
            "flashEraseUs": self._profile.flash_erase_us if self._timed else 0,
            "flashProgramUs": self._profile.flash_program_us if self._timed else 0,
            "cpuFactor": self._profile.cpu_factor if self._timed else 1,
        }
        try:
            self._proc = subprocess.Popen(
                [self._node, str(nodejs.VBOARD_MJS), json.dumps(cfg)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                pass_fds=(ctrl_w, intr_r), start_new_session=True,
                preexec_fn=_die_with_parent)
        finally:
            os.close(ctrl_w)
            os.close(intr_r)
        self._spawns += 1
        self._stderr_tail.clear()
        self._ctrl_buf.clear()
        self._fds = {"in": self._proc.stdin.fileno(), "out": self._proc.stdout.fileno(),
                     "err": self._proc.stderr.fileno(), "ctrl": ctrl_r, "intr": intr_w}
        if self._paced and hasattr(fcntl, "F_SETPIPE_SZ"):
            with contextlib.suppress(OSError):
                fcntl.fcntl(self._fds["out"], fcntl.F_SETPIPE_SZ, OUTPUT_PIPE_SIZE)
        for name, handler in (("out", self.on_output), ("err", self._on_stderr),
                              ("ctrl", self._on_control)):
            os.set_blocking(self._fds[name], False)
            self._sel.register(self._fds[name], selectors.EVENT_READ, handler)

    def _send_frame(self, data: bytes) -> None:
        frame = b"D" + len(data).to_bytes(2, "little") + data
        fd = self._fds.get("in")
        if fd is None:
            return
        try:
            while frame:
                frame = frame[os.write(fd, frame):]
        except (BrokenPipeError, OSError):
            pass  # Node is gone; its stdout EOF tells the loop

    def _on_control(self, mask: int, now: float) -> None:
        fd = self._fds.get("ctrl")
        if fd is None:
            return
        data = _read_fd(fd)
        if data:
            self._ctrl_buf += data
            while b"\n" in self._ctrl_buf:
                line, _, rest = bytes(self._ctrl_buf).partition(b"\n")
                self._ctrl_buf = bytearray(rest)
                self._control(line.decode("ascii", "replace"), now)
        elif data is not None:
            self._sel.unregister(fd)

    def _control(self, line: str, now: float) -> None:
        word, _, arg = line.partition(" ")
        if word == "R":
            self._rx.request(now, int(arg))
        elif word == "I":
            self._rx.intr_char = int(arg)
        elif word == "U":
            self._rx.in_flight = int(arg)
        elif word == "T":
            char, _, ms = arg.partition(" ")
            self._rx.request(now, int(char), int(ms) / 1000)
        elif word == "B":
            # Output printed before the switch goes out at the old rate: take what the
            # pipe holds onto the line first (the VM wrote it before this line).
            fd = self._fds.get("out")
            while fd is not None:
                data = _read_fd(fd)
                if not data:
                    break
                self._tx.push(data, now)
            self._rx.set_rate(int(arg))
            self._tx.set_rate(int(arg))
        elif word == "RUN":  # the VM is up and runs boot.py / main.py
            self._crashes = 0
            with self._state:
                self._up_spawn = self._spawns
                self._script = (self._spawns, arg, now)
                self._state.notify_all()
        elif word == "BOOTED":  # at the prompt
            with self._state:
                self._booted_spawn = self._spawns
                self._script = None
                self._state.notify_all()
        else:
            log.warning("vboard %s: unknown control line %r", self._label, line)

    def _on_stderr(self, mask: int, now: float) -> None:
        fd = self._fds.get("err")
        if fd is None:
            return
        data = _read_fd(fd)
        if data:
            self._keep_stderr(data)
            for line in data.decode("utf-8", "replace").splitlines():
                log.warning("vboard %s: %s", self._label, line)
        elif data is not None:
            self._sel.unregister(fd)

    def _keep_stderr(self, data: bytes) -> None:
        self._stderr_tail = (self._stderr_tail + data)[-STDERR_TAIL_BYTES:]

    def _stderr_note(self) -> str:
        tail = self._stderr_tail.decode("utf-8", "replace").strip()
        return f"; Node said:\n{tail}" if tail else ""

    def _exited(self, now: float) -> None:
        proc, sel = self._proc, self._sel
        # Collect what it said on stderr before it went.
        err_fd = self._fds.get("err")
        while err_fd is not None:
            data = _read_fd(err_fd)
            if not data:
                break
            self._keep_stderr(data)
        try:
            status = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            status = None
        was_up = self._up_spawn == self._spawns
        self.kill()
        self._crashes += 1
        log.error("vboard %s: the MicroPython VM (Node) exited with status %s%s",
                  self._label, status, self._stderr_note())
        if was_up and self._crashes <= MAX_REBOOTS:
            # What a board does after a fatal error: report it and reboot.
            self._tx.push(f"\r\nvboard: VM exited with status {status}; "
                          "rebooting\r\n".encode("ascii"), now)
            self.power_on(sel, now)
        else:
            self.fail(f"the MicroPython VM (Node) exited with status {status} "
                      f"before reaching its prompt{self._stderr_note()}")
