"""Which board a command talks to: the one on --port, or a virtual board started for it.

Without --port, commands run on a virtual board (prune8 vboard) whose flash lives in a
per-user directory, so `prune8 push`, `prune8 prune` and `prune8 pull` run one after the
other see the same stored model. The firmware is deployed to it when missing or older
than this host's, as a user would after flashing a board. Two commands at once take
turns: the virtual board holds a lock on its flash, and the second one waits (saying so).
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

from prune8_host.boards import load_board

from .build import MANIFEST, build_firmware
from .deploy import deploy, deployed_manifest
from .session import BoardSession


def default_flash_dir(board: str) -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "prune8" / "vboard" / board / "flash"


@contextlib.contextmanager
def port_or_fresh_vboard(port: str | None, board: str = "esp32", note: str | None = None):
    """Yield `port`, or the port of a fresh virtual board (empty temporary flash) when
    there is none; `note` is printed on stderr when one is started."""
    if port:
        yield port
        return
    from prune8_host.vboard import VirtualBoard

    if note:
        print(note, file=sys.stderr)
    with VirtualBoard(board=board, baud=0) as vb:
        yield vb.port


@contextlib.contextmanager
def open_board(port: str | None = None, board: str | None = None, baud: int | None = None,
               quiet: bool = False, check_firmware: bool = True,
               baud_switch: int | None = None):
    """Yield a BoardSession for `port`, or for the default virtual board when there is
    none (its flash persists between commands; the firmware is deployed when missing).
    `baud_switch`: the rate transfers switch to (None: the profile's, 0: none)."""
    profile = load_board(board)
    baud = baud or profile.baud
    switch = profile.baud_switch if baud_switch is None else baud_switch
    if port:
        with BoardSession(port, baud=baud, check_firmware=check_firmware,
                          baud_switch=switch) as s:
            yield s
        return
    from prune8_host.vboard import VirtualBoard

    flash = default_flash_dir(profile.name)
    flash.mkdir(parents=True, exist_ok=True)
    if not quiet:
        print(f"prune8: no --port given: using a virtual {profile.name} board "
              f"(flash in {flash})", file=sys.stderr)
    def busy(flash_dir) -> None:
        if not quiet:
            print(f"prune8: waiting for the virtual {profile.name} board: another prune8 "
                  f"command is using its flash ({flash_dir})", file=sys.stderr)

    with VirtualBoard(board=profile.name, baud=0, flash_dir=flash, on_flash_busy=busy) as vb:
        if check_firmware:
            _ensure_firmware(vb.port, profile, quiet)
        with BoardSession(vb.port, baud=baud, check_firmware=check_firmware,
                          baud_switch=switch) as s:
            yield s


def _ensure_firmware(port: str, profile, quiet: bool) -> None:
    """Deploy the bytecode build when the virtual board does not hold exactly it."""
    build = build_firmware(profile, native=False)
    with BoardSession(port, check_firmware=False) as s:
        if deployed_manifest(s) == (build.root / MANIFEST).read_text():
            return
        if not quiet:
            print("prune8: deploying the firmware to the virtual board", file=sys.stderr)
        deploy(s, build, quiet=quiet)
