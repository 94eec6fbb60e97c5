"""VirtualBoard: a MicroPython VM behind a pseudo-terminal that mpremote takes for an ESP32.

The host side of the virtual board. It owns the pseudo-terminal (the "USB-serial
port"), runs the UART model of uart.py, and drives one Node.js process running
vboard.mjs, which holds the real MicroPython VM. All of that happens in one bridge
thread in the calling process, so a test can inject faults (`rx_hook`) and look at
`dropped` while mpremote talks to `port`.

Limitations, by construction:
- The VM runs single-threaded inside Node: code that neither reads stdin nor prints
  cannot be interrupted by Ctrl-C (the interrupt is delivered when it next reads or
  prints), and a soft reset (Ctrl-D) cannot stop it; `hard_reset()` always can.
- The VM's heap grows as needed and is far larger than an ESP32's: compare
  `gc.mem_alloc()` figures against `profile.heap_bytes` instead of waiting for a
  MemoryError. `micropython.heap_lock()` hangs this VM.
- The flash has no size limit, and bytecode .mpy files load but native-code ones
  (xtensawin, rv32imc) do not: this is not an ESP32 CPU.
- Board output is never lost: when nobody reads the port, the VM's print() blocks
  (like USB-CDC), where a real UART would drop the bytes.
- One virtual board per flash directory at a time: a board holds a lock on its flash
  directory (an flock on .NAME.lock beside it) while it runs; a second one with the
  same directory waits for it (`on_flash_busy` is told first).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import logging
import os
import queue
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tty
from pathlib import Path
from typing import Callable

from prune8_host.boards import BoardProfile, load_board
from prune8_host.errors import UsageError, VirtualBoardError

from . import node as nodejs
from .uart import RxPath, TxPath

log = logging.getLogger(__name__)

MODES = ("micropython", "silent")
BOOT_TIMEOUT_S = 60.0  # generous: a shared 2-core machine can be slow; a boot takes < 1 s
# Bytes read from the pty that the wire has not delivered yet: beyond this the bridge
# stops reading the pty, the kernel buffer fills and the host's write() blocks, as it
# does when a USB-serial adapter's buffer is full.
RX_BACKLOG_MAX = 4096
# Board output not on the wire yet: beyond this the bridge stops reading the VM's output,
# so its print() blocks. When paced, that is about a UART's transmit buffer, so a Ctrl-C
# stops the output promptly instead of after seconds of already-printed text; unpaced,
# only the pty's consumer limits it.
TX_BUFFER_PACED = 256
TX_BUFFER_UNPACED = 65536
# The pipe carrying the VM's output holds this much more (Linux: F_SETPIPE_SZ).
OUTPUT_PIPE_SIZE = 4096
MIN_TICK_S = 0.001  # pacing granularity: bytes due within a tick go out together
# start()/hard_reset() wait for the prompt, unless boot.py/main.py is still running after
# this long: then the board runs its application, and that is "up" too.
APP_RUNNING_S = 2.0

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


class VirtualBoard:
    """A virtual ESP32 running MicroPython, reachable on a pseudo-terminal.

    with VirtualBoard(board="esp32", baud=0) as vb:
        subprocess.run(["mpremote", "connect", vb.port, "exec", "print(1)"])

    board: profile name or BoardProfile (boards/*.toml); baud: UART speed, 0 = unpaced,
    None = the profile's; flash_dir: the board's filesystem (None: a fresh temporary
    directory, deleted again by stop()); mode: "micropython", or "silent" for a port
    where nothing answers; micropython_version: e.g. (1, 19, 1) to make code see an
    older MicroPython in sys.implementation.version, sys.version and os.uname();
    flash_bytes: the flash's capacity for file contents (None: the profile's fs_bytes); past it a
    write fails with ENOSPC, as on a full littlefs partition; on_flash_busy: called with
    the flash directory when another virtual board holds it, before waiting for it.
    """

    def __init__(self, board: str | BoardProfile | None = "esp32", baud: int | None = None,
                 flash_dir: str | os.PathLike | None = None, *, mode: str = "micropython",
                 micropython_version: tuple[int, ...] | None = None,
                 flash_bytes: int | None = None,
                 on_flash_busy: Callable[[Path], None] | None = None):
        self.profile: BoardProfile = load_board(board)
        if flash_bytes is not None and flash_bytes < 0:
            raise UsageError(f"flash_bytes must be >= 0, got {flash_bytes}")
        self.flash_bytes = self.profile.fs_bytes if flash_bytes is None else flash_bytes
        self.baud = self.profile.baud if baud is None else int(baud)
        if self.baud < 0:
            raise UsageError(f"baud must be >= 0 (0 = unpaced), got {self.baud}")
        if mode not in MODES:
            raise UsageError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.mode = mode
        if micropython_version is not None:
            micropython_version = tuple(int(v) for v in micropython_version)
            if not 2 <= len(micropython_version) <= 3 or min(micropython_version) < 0:
                raise UsageError("micropython_version must be like (1, 19, 1), "
                                 f"got {micropython_version!r}")
        self.micropython_version = micropython_version
        self._own_flash = flash_dir is None
        self.on_flash_busy = on_flash_busy
        self._flash_lock: int | None = None
        self.flash_dir = Path(flash_dir) if flash_dir is not None else None
        self.rx_hook: Callable[[bytes], bytes] | None = None
        self.port: str | None = None
        self.port_link: str | None = None
        self._link_dir: str | None = None

        self._rx = RxPath(self.baud)
        self._tx = TxPath(self.baud)
        self._master = self._slave = None
        self._wake_r = self._wake_w = None
        self._thread: threading.Thread | None = None
        self._cmds: queue.Queue = queue.Queue()
        self._sel: selectors.BaseSelector | None = None
        self._state = threading.Condition()
        self._spawns = 0  # Node processes started (power-ons)
        self._booted_spawn = 0  # the spawn whose VM last reached a prompt
        self._up_spawn = 0  # the spawn whose VM last started running boot scripts
        self._script: tuple[int, str, float] | None = None  # (spawn, name, since)
        self._error: str | None = None
        self._proc: subprocess.Popen | None = None
        self._node_fds: dict[str, int] = {}
        self._ctrl_buf = bytearray()
        self._stderr_tail = bytearray()
        self._crashes = 0

    # ------------------------------------------------------------------ public API

    @property
    def dropped(self) -> int:
        """Bytes the bounded receive FIFO dropped since start (it was full)."""
        return self._rx.dropped

    @property
    def node_pid(self) -> int | None:
        """PID of the Node process running the VM (None when there is none)."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def start(self) -> "VirtualBoard":
        """Open the port and power the board on; returns once it shows its prompt."""
        if self._thread is not None:
            raise VirtualBoardError("this virtual board was already started")
        if self.mode == "micropython":
            self._node = nodejs.find_node()
            self._mpy = nodejs.micropython_module()
        if self.flash_dir is None:
            self.flash_dir = Path(tempfile.mkdtemp(prefix="prune8-flash-"))
        self.flash_dir.mkdir(parents=True, exist_ok=True)
        if not self.flash_dir.is_dir():
            raise VirtualBoardError(f"flash directory {self.flash_dir} is not a directory")
        if not self._own_flash:
            self._lock_flash()
        try:
            self._open_and_boot()
        except BaseException:
            self.stop()
            raise
        return self

    def _lock_flash(self) -> None:
        path = self.flash_dir.parent / f".{self.flash_dir.name}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if self.on_flash_busy:
                    self.on_flash_busy(self.flash_dir)
                fcntl.flock(fd, fcntl.LOCK_EX)  # until the other board stops
        except BaseException:
            os.close(fd)
            raise
        self._flash_lock = fd

    def _open_and_boot(self) -> None:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no CR/LF translation: a plain byte pipe
        os.set_blocking(self._master, False)
        self.port = os.ttyname(self._slave)
        # mpremote reads a /dev/pts/* device without any timeout (its QEMU support), so
        # against a board that never answers it would wait forever; through a path
        # outside /dev/pts it treats the port like a USB-serial one, timeouts included.
        self._link_dir = tempfile.mkdtemp(prefix="prune8-vboard-")
        self.port_link = os.path.join(self._link_dir, "ttyVBOARD")
        os.symlink(self.port, self.port_link)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)

        self._thread = threading.Thread(target=self._run, name=f"vboard {self.port}",
                                        daemon=True)
        self._thread.start()
        if self.mode == "micropython":
            self._wait_booted(1, BOOT_TIMEOUT_S)

    def hard_reset(self, timeout: float = BOOT_TIMEOUT_S) -> None:
        """Press RESET: drop the running VM (even mid-execution), power on a fresh one
        from the flash directory; returns once its prompt is up. Files written but not
        closed are lost, as on a board."""
        self._check_running()
        if threading.current_thread() is self._thread:
            raise VirtualBoardError("hard_reset() cannot be called from rx_hook (the bridge "
                                    "thread); call it from another thread")
        if self.mode != "micropython":
            return
        done: queue.Queue = queue.Queue()
        self._command(("hard_reset", done))
        try:
            spawn = done.get(timeout=timeout)
        except queue.Empty:
            raise VirtualBoardError(self._error or "the virtual board's bridge thread did not "
                                    f"respond within {timeout:.0f} s") from None
        self._wait_booted(spawn, timeout)

    def stop(self) -> None:
        """Power off: end the Node process and the bridge, close the port."""
        if self._thread is not None:
            self._command(("stop", None))
            self._thread.join(timeout=30)
            if self._thread.is_alive():  # pragma: no cover - would be a bug
                log.error("vboard bridge thread did not stop")
            self._thread = None
        self._kill_node()
        for name in ("_master", "_slave", "_wake_r", "_wake_w"):
            fd = getattr(self, name)
            if fd is not None:
                os.close(fd)
                setattr(self, name, None)
        if self._link_dir is not None:
            shutil.rmtree(self._link_dir, ignore_errors=True)
            self._link_dir = None
        if self._own_flash and self.flash_dir is not None:
            shutil.rmtree(self.flash_dir, ignore_errors=True)
        if self._flash_lock is not None:
            os.close(self._flash_lock)  # releases the flock
            self._flash_lock = None

    def __enter__(self) -> "VirtualBoard":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return (f"VirtualBoard(board={self.profile.name!r}, baud={self.baud}, "
                f"port={self.port!r}, flash_dir={str(self.flash_dir)!r}, mode={self.mode!r})")

    # ------------------------------------------------------------------ helpers

    def _check_running(self) -> None:
        if self._thread is None:
            raise VirtualBoardError("the virtual board is not running (call start())")

    def _command(self, cmd) -> None:
        self._cmds.put(cmd)
        try:
            os.write(self._wake_w, b"!")
        except BlockingIOError:
            pass  # the loop is already due to wake up

    def _wait_booted(self, spawn: int, timeout: float) -> None:
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

    def _stderr_note(self) -> str:
        tail = self._stderr_tail.decode("utf-8", "replace").strip()
        return f"; Node said:\n{tail}" if tail else ""

    # ------------------------------------------------------------------ the bridge

    def _run(self) -> None:
        self._sel = sel = selectors.DefaultSelector()
        sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        try:
            if self.mode == "micropython":
                self._power_on(time.monotonic())
            while True:
                now = time.monotonic()
                while not self._cmds.empty():
                    what, reply = self._cmds.get_nowait()
                    if what == "stop":
                        return
                    if what == "hard_reset":
                        self._power_on(now)
                        reply.put(self._spawns)
                self._pump(now)
                self._update_interest()
                for key, mask in sel.select(self._timeout(now)):
                    self._handle(key, mask, time.monotonic())
        except Exception as e:  # keep the reason for start()/hard_reset() callers
            log.exception("vboard bridge failed")
            with self._state:
                self._error = f"virtual board bridge failed: {e!r}"
                self._state.notify_all()
        finally:
            self._kill_node()
            sel.close()
            self._sel = None

    def _timeout(self, now: float) -> float | None:
        dues = [d for d in (self._rx.next_due(now), self._tx.next_due(now)) if d is not None]
        if not dues:
            return None
        return max(min(dues) - now, MIN_TICK_S)

    def _update_interest(self) -> None:
        want = 0
        if self._rx.backlog() < RX_BACKLOG_MAX:
            want |= selectors.EVENT_READ
        if self._tx.pending:
            want |= selectors.EVENT_WRITE
        self._set_interest(self._master, want, "pty")
        out_fd = self._node_fds.get("out")
        if out_fd is not None:
            limit = TX_BUFFER_PACED if self.baud else TX_BUFFER_UNPACED
            self._set_interest(out_fd, selectors.EVENT_READ if len(self._tx) < limit else 0,
                               "node_out")

    def _set_interest(self, fd: int, events: int, tag: str) -> None:
        try:
            key = self._sel.get_key(fd)
        except KeyError:
            if events:
                self._sel.register(fd, events, tag)
            return
        if not events:
            self._sel.unregister(fd)
        elif key.events != events:
            self._sel.modify(fd, events, tag)

    def _handle(self, key, mask: int, now: float) -> None:
        tag = key.data
        if tag == "wake":
            try:
                os.read(self._wake_r, 4096)
            except BlockingIOError:
                pass
        elif tag == "pty":
            if mask & selectors.EVENT_READ:
                self._read_pty(now)
            if mask & selectors.EVENT_WRITE:
                self._write_pty()
        elif tag == "node_out":
            data = self._read_fd(key.fd)
            if data:
                self._tx.push(data, now)
            elif data is not None:
                self._node_exited(now)
        elif tag == "node_ctrl":
            data = self._read_fd(key.fd)
            if data:
                self._ctrl_buf += data
                while b"\n" in self._ctrl_buf:
                    line, _, rest = bytes(self._ctrl_buf).partition(b"\n")
                    self._ctrl_buf = bytearray(rest)
                    self._control(line.decode("ascii", "replace"), now)
            elif data is not None:
                self._sel.unregister(key.fd)
        elif tag == "node_err":
            data = self._read_fd(key.fd)
            if data:
                self._stderr_tail = (self._stderr_tail + data)[-8192:]
                for line in data.decode("utf-8", "replace").splitlines():
                    log.warning("vboard %s: %s", self.port, line)
            elif data is not None:
                self._sel.unregister(key.fd)

    @staticmethod
    def _read_fd(fd: int) -> bytes | None:
        """Bytes read, b"" at EOF, None when nothing was there after all."""
        try:
            return os.read(fd, 65536)
        except BlockingIOError:
            return None

    def _read_pty(self, now: float) -> None:
        try:
            data = os.read(self._master, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # EIO: no slave end open; cannot happen while we hold one
            return
        if not data or self.mode != "micropython":
            return  # silent mode: the bytes go out on a line where nothing listens
        hook = self.rx_hook
        if hook is not None:
            try:
                data = bytes(hook(data))
            except Exception:
                log.exception("vboard rx_hook failed; passing the bytes through unchanged")
        if data:
            self._rx.receive(data, now)

    def _write_pty(self) -> None:
        pending = self._tx.pending
        if not pending:
            return
        try:
            n = os.write(self._master, pending)
        except (BlockingIOError, InterruptedError):
            return
        del pending[:n]

    def _pump(self, now: float) -> None:
        if self._proc is not None:
            rx = self._rx
            if rx.step(now):
                try:
                    os.write(self._node_fds["intr"], b"\x03")
                except BlockingIOError:
                    pass  # the pipe is full of interrupts already
                if rx.waiting:
                    rx.waiting = False
                    rx.last_request = now
                    self._send_frame(b"")  # wake the VM so it sees the interrupt
            data = rx.take_for_vm(now)
            if data:
                self._send_frame(data)
        self._tx.step(now)
        self._write_pty()

    def _send_frame(self, data: bytes) -> None:
        frame = b"D" + len(data).to_bytes(2, "little") + data
        fd = self._node_fds.get("in")
        if fd is None:
            return
        try:
            while frame:
                frame = frame[os.write(fd, frame):]
        except (BrokenPipeError, OSError):
            pass  # Node is gone; its stdout EOF tells the loop

    def _control(self, line: str, now: float) -> None:
        word, _, arg = line.partition(" ")
        if word == "R":
            self._rx.request(now, int(arg))
        elif word == "I":
            self._rx.intr_char = int(arg)
        elif word == "U":
            self._rx.in_flight = int(arg)
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
            log.warning("vboard %s: unknown control line %r", self.port, line)

    # ------------------------------------------------------------------ Node process

    def _power_on(self, now: float) -> None:
        self._kill_node()
        with self._state:
            self._error = None  # a fresh start after an earlier failure
        self._rx.reset()
        self._tx.clear()  # what the UART had not sent yet is lost with the reset
        chip = self.profile.chip
        rom = _ROM_BOOT.get(chip, _ROM_BOOT_RISCV_STYLE.format(chip=chip))
        self._tx.push(rom.encode("ascii"), now)
        self._spawn()

    def _spawn(self) -> None:
        chip = self.profile.chip.upper()
        ctrl_r, ctrl_w = os.pipe()
        intr_r, intr_w = os.pipe()
        os.set_blocking(intr_r, False)  # Node polls it
        os.set_blocking(intr_w, False)
        cfg = {
            "mpy": str(self._mpy),
            "vmInit": str(nodejs.VM_INIT_PY),
            "flash": str(self.flash_dir.resolve()),
            "ctrlFd": ctrl_w,
            "intrFd": intr_r,
            "sysname": "esp32" if self.profile.chip.startswith("esp32") else self.profile.chip,
            "machine": f"Generic {chip} module with {chip}",  # as stock firmware names it
            "version": list(self.micropython_version) if self.micropython_version else None,
            "heapBytes": self.profile.heap_bytes,
            "flashBytes": self.flash_bytes,
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
        self._node_fds = {"in": self._proc.stdin.fileno(), "out": self._proc.stdout.fileno(),
                          "err": self._proc.stderr.fileno(), "ctrl": ctrl_r, "intr": intr_w}
        if self.baud and hasattr(fcntl, "F_SETPIPE_SZ"):
            with contextlib.suppress(OSError):
                fcntl.fcntl(self._node_fds["out"], fcntl.F_SETPIPE_SZ, OUTPUT_PIPE_SIZE)
        for name, tag in (("out", "node_out"), ("err", "node_err"), ("ctrl", "node_ctrl")):
            os.set_blocking(self._node_fds[name], False)
            self._sel.register(self._node_fds[name], selectors.EVENT_READ, tag)

    def _node_exited(self, now: float) -> None:
        proc = self._proc
        # Collect what it said on stderr before it went.
        err_fd = self._node_fds.get("err")
        while err_fd is not None:
            data = self._read_fd(err_fd)
            if not data:
                break
            self._stderr_tail = (self._stderr_tail + data)[-8192:]
        try:
            status = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            status = None
        was_up = self._up_spawn == self._spawns
        self._kill_node()
        self._crashes += 1
        log.error("vboard %s: the MicroPython VM (Node) exited with status %s%s",
                  self.port, status, self._stderr_note())
        if was_up and self._crashes <= 3:
            # What a board does after a fatal error: report it and reboot.
            self._tx.push(f"\r\nvboard: VM exited with status {status}; "
                          "rebooting\r\n".encode("ascii"), now)
            self._power_on(now)
        else:
            with self._state:
                self._error = (f"the MicroPython VM (Node) exited with status {status} "
                               f"before reaching its prompt{self._stderr_note()}")
                self._state.notify_all()

    def _kill_node(self) -> None:
        proc, self._proc = self._proc, None
        fds, self._node_fds = self._node_fds, {}
        if self._sel is not None:
            for fd in fds.values():
                try:
                    self._sel.unregister(fd)
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
