"""VirtualBoard: a MicroPython VM behind a pseudo-terminal that mpremote takes for an ESP32.

The host side of the virtual board, put together from three parts: flash_dir.py (the
directory that holds the flash, locked while the board runs), pty_bridge.py (the
pseudo-terminal that stands for the USB-serial port, and the one bridge thread that
paces bytes through the UART model of uart.py) and vm_process.py (the Node.js process
running vboard.mjs, which holds the real MicroPython VM). The bridge thread runs in the
calling process, so a test can inject faults (`rx_hook`) and look at `dropped` while
mpremote talks to `port`.

Limitations, by construction:
- The VM runs single-threaded inside Node: code that neither reads stdin nor prints
  cannot be interrupted by Ctrl-C (the interrupt is delivered when it next reads or
  prints), and a soft reset (Ctrl-D) cannot stop it; `hard_reset()` always can.
- The VM's heap grows as needed and is far larger than an ESP32's: compare
  `gc.mem_alloc()` figures against `profile.heap_bytes` instead of waiting for a
  MemoryError. `micropython.heap_lock()` hangs this VM.
- Bytecode .mpy files load but native-code ones (xtensawin, rv32imc) do not: this is
  not an ESP32 CPU.
- Board output is never lost: when nobody reads the port, the VM's print() blocks
  (like USB-CDC), where a real UART would drop the bytes.
- One virtual board per flash directory at a time: a board holds a lock on its flash
  directory (an flock on .NAME.lock beside it) while it runs; a second one with the
  same directory waits for it (`on_flash_busy` is told first).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from prune8_host.boards import BoardProfile, load_board
from prune8_host.errors import UsageError, VirtualBoardError

from . import node as nodejs
from .flash_dir import FlashDir
from .pty_bridge import PtyBridge
from .vm_process import VmProcess

MODES = ("micropython", "silent")
BOOT_TIMEOUT_S = 60.0  # generous: a shared 2-core machine can be slow; a boot takes < 1 s


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
    the flash directory when another virtual board holds it, before waiting for it;
    timing: apply the profile's flash erase and program times and CPU factor (None: when
    paced, i.e. a board as slow as a real one whenever the line is; see `timed`).
    """

    def __init__(self, board: str | BoardProfile | None = "esp32", baud: int | None = None,
                 flash_dir: str | os.PathLike | None = None, *, mode: str = "micropython",
                 micropython_version: tuple[int, ...] | None = None,
                 flash_bytes: int | None = None,
                 on_flash_busy: Callable[[Path], None] | None = None,
                 timing: bool | None = None):
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
        self.timed = bool(self.baud) if timing is None else bool(timing)
        if micropython_version is not None:
            micropython_version = tuple(int(v) for v in micropython_version)
            if not 2 <= len(micropython_version) <= 3 or min(micropython_version) < 0:
                raise UsageError("micropython_version must be like (1, 19, 1), "
                                 f"got {micropython_version!r}")
        self.micropython_version = micropython_version
        self.on_flash_busy = on_flash_busy
        self._flash = FlashDir(flash_dir)
        self._bridge = PtyBridge(self.baud)
        self._vm: VmProcess | None = None

    @property
    def port(self) -> str | None:
        """The pseudo-terminal mpremote opens (None until start())."""
        return self._bridge.port

    @property
    def port_link(self) -> str | None:
        """The same port through a path outside /dev/pts (see docs/vboard.md)."""
        return self._bridge.port_link

    @property
    def flash_dir(self) -> Path | None:
        """The host directory holding the board's files (None until start() when a
        temporary one is made)."""
        return self._flash.path

    @property
    def rx_hook(self) -> Callable[[bytes], bytes] | None:
        """Sees each chunk the host writes, on the bridge thread, and returns the bytes
        the board receives instead (fault injection); None passes them through."""
        return self._bridge.rx_hook

    @rx_hook.setter
    def rx_hook(self, hook: Callable[[bytes], bytes] | None) -> None:
        self._bridge.rx_hook = hook

    @property
    def dropped(self) -> int:
        """Bytes the bounded receive FIFO dropped since start (it was full)."""
        return self._bridge.rx.dropped

    @property
    def board_rate(self) -> int | None:
        """The baud its firmware last set its UART to (a baud switch, prune8.baud); None
        since power-on: it takes whatever rate the host's port is set to."""
        return self._bridge.rx.board_rate

    @property
    def host_rate(self) -> int | None:
        """The baud the host's port is set to now (None: no standard rate)."""
        return self._bridge.host_rate()

    @property
    def node_pid(self) -> int | None:
        """PID of the Node process running the VM (None when there is none)."""
        return self._vm.pid if self._vm is not None else None

    def start(self) -> "VirtualBoard":
        """Open the port and power the board on; returns once it shows its prompt."""
        if self._bridge.running:
            raise VirtualBoardError("this virtual board was already started")
        # Node and the VM package first: when they are missing, nothing was made yet.
        runtime = (nodejs.find_node(), nodejs.micropython_module()) \
            if self.mode == "micropython" else None
        flash = self._flash.acquire(self.on_flash_busy)
        try:
            self._bridge.open()
            if runtime is not None:
                node, mpy = runtime
                self._vm = VmProcess(
                    node=node, mpy=mpy, flash_dir=flash, profile=self.profile,
                    rx=self._bridge.rx, tx=self._bridge.tx,
                    micropython_version=self.micropython_version,
                    flash_bytes=self.flash_bytes, paced=bool(self.baud), timed=self.timed,
                    label=self.port)
            self._bridge.start(self._vm)
            if self._vm is not None:
                self._vm.wait_booted(1, BOOT_TIMEOUT_S)
        except BaseException:
            self.stop()
            raise
        return self

    def hard_reset(self, timeout: float = BOOT_TIMEOUT_S) -> None:
        """Press RESET: drop the running VM (even mid-execution), power on a fresh one
        from the flash directory; returns once its prompt is up. Files written but not
        closed are lost, as on a board."""
        if not self._bridge.running:
            raise VirtualBoardError("the virtual board is not running (call start())")
        if self._bridge.on_bridge_thread():
            raise VirtualBoardError("hard_reset() cannot be called from rx_hook (the bridge "
                                    "thread); call it from another thread")
        if self._vm is None:
            return
        spawn = self._bridge.power_cycle(timeout)
        self._vm.wait_booted(spawn, timeout)

    def stop(self) -> None:
        """Power off: end the Node process and the bridge, close the port."""
        self._bridge.close()
        self._flash.release()

    def __enter__(self) -> "VirtualBoard":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return (f"VirtualBoard(board={self.profile.name!r}, baud={self.baud}, "
                f"timed={self.timed}, "
                f"port={self.port!r}, flash_dir={str(self.flash_dir)!r}, mode={self.mode!r})")
