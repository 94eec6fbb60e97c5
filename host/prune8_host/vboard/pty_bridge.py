"""PtyBridge: the virtual board's serial port, a pseudo-terminal pair and the thread behind it.

The pty's slave end is the "USB-serial port" (`port`, and `port_link` outside /dev/pts)
that mpremote opens; the bridge keeps the master end and one thread that moves bytes
between it and the board through the UART model (uart.py: `rx` host -> board, `tx`
board -> host), paced at `baud` (0: unpaced).

Contract:
- open() creates the pty pair; start(vm) starts the thread, which powers `vm` on (see
  vm_process.py) and from then on runs the selector loop: pty, the VM's pipes (their
  handlers belong to the VM) and a wake-up pipe for commands. With vm=None (a "silent"
  board) what the host writes is read and discarded, and nothing ever answers.
- Flow control, as a USB-serial adapter gives it: with more than RX_BACKLOG_MAX bytes
  not yet delivered on the wire the bridge stops reading the pty (the host's write()
  blocks); with more board output not yet on the wire than the UART's transmit buffer
  it stops reading the VM's output (its print() blocks).
- Baud: the host's rate is its port's termios speed, read on the slave fd; the board's
  is the one its firmware last set (vm_process.py, "B" control lines; none at
  power-on: it then takes whatever the host sends). When both are known and differ,
  the bytes arrive as line noise (uart.line_noise), in both directions.
- rx_hook, when set, sees each chunk read from the pty before it goes onto the wire and
  returns the bytes to send instead (fault injection); it runs on the bridge thread,
  and an exception in it is logged and the chunk passes unchanged.
- power_cycle() makes the thread power the VM on anew; close() stops the thread, powers
  the VM off and closes the pty; open() and start() may follow again.
"""

from __future__ import annotations

import logging
import os
import queue
import selectors
import shutil
import tempfile
import termios
import threading
import time
import tty
from typing import Callable

from prune8_host.errors import VirtualBoardError

from .uart import RxPath, TxPath
from .vm_process import VmProcess

log = logging.getLogger(__name__)

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
MIN_TICK_S = 0.001  # pacing granularity: bytes due within a tick go out together
# termios speed constants -> rates: how the bridge learns the rate the host set its port
# to (pyserial sets the slave's termios; the bridge reads it back on its own slave fd)
_SPEEDS = {getattr(termios, f"B{r}"): r for r in
           (9600, 19200, 38400, 57600, 115200, 230400, 460800, 500000, 576000, 921600,
            1000000, 1152000, 1500000, 2000000) if hasattr(termios, f"B{r}")}

# A selector registration's data: called with the ready events and the time.
Handler = Callable[[int, float], None]


class PtyBridge:
    """The port of one virtual board and the bridge thread; see the module docstring."""

    def __init__(self, baud: int):
        self.baud = baud
        self.rx = RxPath(baud)
        self.tx = TxPath(baud)
        self.rx_hook: Callable[[bytes], bytes] | None = None
        self.port: str | None = None
        self.port_link: str | None = None
        self._link_dir: str | None = None
        self._master = self._slave = None
        self._wake_r = self._wake_w = None
        self._vm: VmProcess | None = None
        self._thread: threading.Thread | None = None
        self._cmds: queue.Queue = queue.Queue()
        self._sel: selectors.BaseSelector | None = None

    # ------------------------------------------------------------------ any thread

    @property
    def running(self) -> bool:
        return self._thread is not None

    def on_bridge_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def open(self) -> None:
        """Create the pseudo-terminal pair: `port` and `port_link` exist from now on."""
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

    def start(self, vm: VmProcess | None) -> None:
        """Start the bridge thread; it powers `vm` on first (None: a silent board)."""
        self._vm = vm
        self._thread = threading.Thread(target=self._run, name=f"vboard {self.port}",
                                        daemon=True)
        self._thread.start()

    def power_cycle(self, timeout: float) -> int:
        """Have the bridge thread power the VM on anew; returns the power-on's number
        (for VmProcess.wait_booted) once the new Node process is started."""
        done: queue.Queue = queue.Queue()
        self._command(("power_on", done))
        try:
            return done.get(timeout=timeout)
        except queue.Empty:
            raise VirtualBoardError(self._vm.error or "the virtual board's bridge thread did "
                                    f"not respond within {timeout:.0f} s") from None

    def close(self) -> None:
        """Stop the thread, power the VM off, close the port (idempotent)."""
        if self._thread is not None:
            self._command(("stop", None))
            self._thread.join(timeout=30)
            if self._thread.is_alive():  # pragma: no cover - would be a bug
                log.error("vboard bridge thread did not stop")
            self._thread = None
        if self._vm is not None:
            self._vm.kill()
        for name in ("_master", "_slave", "_wake_r", "_wake_w"):
            fd = getattr(self, name)
            if fd is not None:
                os.close(fd)
                setattr(self, name, None)
        if self._link_dir is not None:
            shutil.rmtree(self._link_dir, ignore_errors=True)
            self._link_dir = None

    def _command(self, cmd) -> None:
        self._cmds.put(cmd)
        try:
            os.write(self._wake_w, b"!")
        except BlockingIOError:
            pass  # the loop is already due to wake up

    # ------------------------------------------------------------------ the thread

    def _run(self) -> None:
        vm = self._vm
        self._sel = sel = selectors.DefaultSelector()
        sel.register(self._wake_r, selectors.EVENT_READ, self._on_wake)
        try:
            if vm is not None:
                vm.power_on(sel, time.monotonic())
            while True:
                now = time.monotonic()
                while not self._cmds.empty():
                    what, reply = self._cmds.get_nowait()
                    if what == "stop":
                        return
                    if what == "power_on":
                        reply.put(vm.power_on(sel, now))
                self._pump(now)
                self._update_interest()
                for key, mask in sel.select(self._timeout(now)):
                    key.data(mask, time.monotonic())
        except Exception as e:  # keep the reason for whoever waits for the boot
            log.exception("vboard bridge failed")
            if vm is not None:
                vm.fail(f"virtual board bridge failed: {e!r}")
        finally:
            if vm is not None:
                vm.kill()
            sel.close()
            self._sel = None

    def _timeout(self, now: float) -> float | None:
        dues = [d for d in (self.rx.next_due(now), self.tx.next_due(now)) if d is not None]
        if not dues:
            return None
        return max(min(dues) - now, MIN_TICK_S)

    def _update_interest(self) -> None:
        want = 0
        if self.rx.backlog() < RX_BACKLOG_MAX:
            want |= selectors.EVENT_READ
        if self.tx.pending:
            want |= selectors.EVENT_WRITE
        self._set_interest(self._master, want, self._on_pty)
        out_fd = self._vm.output_fd if self._vm is not None else None
        if out_fd is not None:
            limit = TX_BUFFER_PACED if self.baud else TX_BUFFER_UNPACED
            self._set_interest(out_fd, selectors.EVENT_READ if len(self.tx) < limit else 0,
                               self._vm.on_output)

    def _set_interest(self, fd: int, events: int, handler: Handler) -> None:
        try:
            key = self._sel.get_key(fd)
        except KeyError:
            if events:
                self._sel.register(fd, events, handler)
            return
        if not events:
            self._sel.unregister(fd)
        elif key.events != events:
            self._sel.modify(fd, events, handler)

    def _on_wake(self, mask: int, now: float) -> None:
        try:
            os.read(self._wake_r, 4096)
        except BlockingIOError:
            pass

    def _on_pty(self, mask: int, now: float) -> None:
        if mask & selectors.EVENT_READ:
            self._read_pty(now)
        if mask & selectors.EVENT_WRITE:
            self._write_pty()

    def _read_pty(self, now: float) -> None:
        try:
            data = os.read(self._master, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # EIO: no slave end open; cannot happen while we hold one
            return
        if not data or self._vm is None:
            return  # silent board: the bytes go out on a line where nothing listens
        hook = self.rx_hook
        if hook is not None:
            try:
                data = bytes(hook(data))
            except Exception:
                log.exception("vboard rx_hook failed; passing the bytes through unchanged")
        if data:
            self.rx.receive(data, now, self.host_rate())

    def _write_pty(self) -> None:
        pending = self.tx.pending
        if not pending:
            return
        try:
            n = os.write(self._master, pending)
        except (BlockingIOError, InterruptedError):
            return
        del pending[:n]

    def _pump(self, now: float) -> None:
        if self._vm is not None:
            self._vm.feed(now)
        self.tx.step(now, self.host_rate() if len(self.tx.wire) else None)
        self._write_pty()

    def host_rate(self) -> int | None:
        """The rate the host's port is set to (None: not a standard rate, or no port)."""
        if self._slave is None:
            return None
        try:
            return _SPEEDS.get(termios.tcgetattr(self._slave)[5])
        except termios.error:
            return None
