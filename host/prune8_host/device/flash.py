"""Flash stock MicroPython onto an ESP32-family board, with esptool used as a library.

`flash_firmware` checks the file (esp_image.check_image) before any port is opened,
connects, checks that the chip on the port is the one the board profile names,
optionally erases, writes, verifies the flash against the file with esptool's own
verify, and resets. `verify_flash` does only the verify.

For the length of one of these calls esptool's output goes through an EsptoolOutput
(esptool_output.py): its progress reaches a callback (by default a TaskProgress bar on
stderr, progress.py) and its messages reach `on_message`, where the caller decides
what to show.

Every refusal or failure is a `FlashError`, which is also a ValueError (bad input:
the file, the chip) or an OSError (the port, the board, the flash), so the CLI reports
it on one line; a profile naming a chip esptool does not know is a BoardProfileError.
The image check's names (check_image, FirmwareImage, FirmwareFileError, ImageError)
are this module's too, so callers need only this one.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import serial
from esp_pylib.errors import FatalError
from esptool import cmds
from esptool.loader import DEFAULT_CONNECT_ATTEMPTS, ESPLoader
from esptool.targets import CHIP_DEFS

from prune8_host.boards import BoardProfile, all_boards, load_board
from prune8_host.errors import FlashError, UsageError

from .esp_image import FirmwareFileError, FirmwareImage, ImageError, check_image, rom_class
from .esptool_output import EsptoolOutput, MessageCallback, ProgressCallback, first_line
from .progress import TaskProgress

__all__ = [
    "check_image", "resolve_baud", "flash_firmware", "verify_flash",
    "FirmwareImage", "FlashReport", "ProgressCallback", "MessageCallback",
    "FirmwareFileError", "ImageError", "BoardNotFoundError", "ChipMismatchError",
    "FlashWriteError", "VerifyMismatchError",
]


class BoardNotFoundError(FlashError, OSError):
    """The port cannot be opened, or no ESP bootloader answered on it."""


class ChipMismatchError(FlashError, ValueError):
    """The chip on the port is not the chip the board profile names."""


class FlashWriteError(FlashError, OSError):
    """The board answered, but an esptool step (stub, erase, write, reset) failed."""


class VerifyMismatchError(FlashError, OSError):
    """The flash contents at the board's offset differ from the file."""


@dataclass(frozen=True)
class FlashReport:
    """What `flash_firmware` or `verify_flash` did."""
    port: str
    board: str
    chip_name: str
    offset: int
    size: int
    md5: str
    baud: int
    erased: bool
    written: bool
    verified: bool
    reset: bool
    chip_source: str = "detected"  # or "profile": the ROM did not say, the profile did


def _unreachable(port: str, reason: str,
                 hint: str = "check the cable, and that --port names the board's serial device"):
    return BoardNotFoundError(f"no board answered on {port}: {reason.rstrip('.')}; {hint}")


def _open_port(port: str) -> serial.SerialBase:
    """Open a serial path or pyserial URL (socket://host:port, rfc2217://...)."""
    try:
        ser = serial.serial_for_url(port, do_not_open=True, exclusive=True)
    except ValueError as e:  # an unknown URL scheme
        raise _unreachable(port, str(e)) from None
    if sys.platform == "win32":
        # As esptool does: on Windows, opening asserts DTR/RTS unless released first,
        # which would reset the board at the wrong moment.
        ser.rts = False
        ser.dtr = False
    try:
        ser.open()
    except (serial.SerialException, OSError) as e:
        # pyserial wraps the OS error; its strerror ("No such file or directory",
        # "Connection refused") says more than the wrapper's text.
        cause = e.__context__ if isinstance(e.__context__, OSError) else e
        reason = os.strerror(cause.errno) if cause.errno else str(e)
        raise _unreachable(port, f"cannot open it ({reason})") from None
    return ser


def resolve_baud(profile: BoardProfile, baud: int | None) -> int:
    """The write baud rate: `baud`, or the profile's flash_baud when None."""
    baud = profile.flash_baud if baud is None else baud
    if type(baud) is not int or baud <= 0:
        raise UsageError(f"baud rate must be a positive integer, got {baud!r}")
    return baud


@dataclass
class _Session:
    esp: ESPLoader        # the stub loader, once running
    out: EsptoolOutput
    chip_source: str      # "detected" (esptool read the chip's id) or "profile"


@contextmanager
def _connect(port: str, profile: BoardProfile, baud: int, out: EsptoolOutput,
             connect_attempts: int) -> Iterator[_Session]:
    """Open the port, sync with the ROM bootloader, check the chip, start the stub.

    Yields with the flash attached and the link at `baud`; always closes the port.
    """
    want = rom_class(profile).CHIP_NAME
    ser = _open_port(port)
    try:
        # The ROM bootloader talks at 115200 (it autobauds below that); faster rates
        # are switched to once the stub runs, as the esptool CLI does.
        initial = min(baud, ESPLoader.ESP_ROM_BAUD)
        source = "detected"
        try:
            esp = cmds.detect_chip(ser, initial, connect_mode="default-reset",
                                   connect_attempts=connect_attempts)
        except (FatalError, serial.SerialException, OSError) as e:
            reason = first_line(e)
            # esptool 5.6 words a sync failure "Failed to connect ..."; anything else
            # came after a bootloader answered: a ROM that does not answer the chip-magic
            # read (esptool's own --chip auto fails the same way), or an id it does not
            # know. Then the profile says which chip it is, as --chip would.
            if not isinstance(e, FatalError) or reason.startswith("Failed to connect"):
                raise _unreachable(port, reason, "check the cable, that the board is in "
                                                 "download mode and that --port names its "
                                                 "serial device") from None
            out.note(f"esptool could not identify the chip ({reason}); using the board "
                     f"profile's: {want}")
            esp = rom_class(profile)(ser, initial)
            try:
                esp.connect("default-reset", connect_attempts, detecting=False)
            except (FatalError, serial.SerialException, OSError) as e2:
                raise FlashWriteError(f"the board on {port} answered, but neither esptool's "
                                      f"detection ({reason}) nor a connection as the "
                                      f"profile's {want} ({first_line(e2)}) worked") from None
            source = "profile"
        if source == "detected" and esp.CHIP_NAME != want:
            raise ChipMismatchError(_mismatch_message(port, esp.CHIP_NAME, profile, want))
        out.task = "stub"
        try:
            esp = cmds.run_stub(esp)
            if baud > initial:
                esp.change_baud(baud)
            cmds.attach_flash(esp)
        except (FatalError, serial.SerialException, OSError) as e:
            raise FlashWriteError(f"{want} on {port}: could not start esptool's flasher "
                                  f"stub: {first_line(e)}") from None
        yield _Session(esp=esp, out=out, chip_source=source)
    finally:
        ser.close()


def _mismatch_message(port: str, found: str, profile: BoardProfile, want: str) -> str:
    text = (f"the board on {port} is an {found}, but board profile "
            f"{profile.name!r} is for an {want}")
    matching = [b.name for b in all_boards()
                if b.chip in CHIP_DEFS and CHIP_DEFS[b.chip].CHIP_NAME == found]
    return text + (f": pass --board {matching[0]}" if matching else "")


def _verify(s: _Session, where: str, offset: int, image: FirmwareImage) -> None:
    s.out.task = "verify"
    try:
        cmds.verify_flash(s.esp, [(offset, image.data)])
    except FatalError as e:
        # esptool 5.6 raises exactly this after an MD5 mismatch; any other FatalError
        # is a failure to talk to the board.
        if str(e) == "Verification failed.":
            raise VerifyMismatchError(
                f"flash at {offset:#x}..{offset + len(image.data):#x} on {where} does not "
                f"match {image.path} (MD5 differs)") from None
        raise FlashWriteError(f"verify on {where} failed: {first_line(e)}") from None
    except (serial.SerialException, OSError) as e:
        raise FlashWriteError(f"verify on {where} failed: {first_line(e)}") from None


def _reset(s: _Session, where: str) -> None:
    s.out.task = "reset"
    try:
        # Hard reset (RTS pulse) boots the new firmware; over a TCP socket esptool
        # cannot pulse RTS and the board must be reset by hand.
        cmds.reset_chip(s.esp, "hard-reset")
    except (FatalError, serial.SerialException, OSError) as e:
        raise FlashWriteError(f"reset of {where} failed: {first_line(e)}") from None


def _progress_callback(progress: bool | ProgressCallback | None):
    """(callback or None, the TaskProgress we own and must close, or None)."""
    if progress is True:
        bar = TaskProgress()
        return bar, bar
    if progress is False or progress is None:
        return None, None
    return progress, None


def flash_firmware(port: str, path: str | os.PathLike, profile: BoardProfile | str | None = None,
                   erase: bool = False, baud: int | None = None,
                   progress: bool | ProgressCallback | None = True,
                   on_message: MessageCallback | None = None,
                   connect_attempts: int = DEFAULT_CONNECT_ATTEMPTS) -> FlashReport:
    """Write `path` to the board on `port` at the profile's flash offset, verify, reset.

    `port` is a serial path or a pyserial URL such as socket://127.0.0.1:4000.
    `baud` defaults to the profile's flash_baud. `progress` is True for a progress bar
    on stderr (progress.TaskProgress), False for none, or a ProgressCallback. `on_message` receives esptool's own
    messages (dropped if None). Raises a FlashError on any refusal or failure; the
    file is checked before the port is opened.
    """
    profile = load_board(profile)
    image = check_image(path, profile)
    baud = resolve_baud(profile, baud)
    callback, owned_bar = _progress_callback(progress)
    offset = profile.flash_offset
    try:
        with EsptoolOutput(callback, on_message) as out, \
                _connect(port, profile, baud, out, connect_attempts) as s:
            where = f"{image.chip_name} on {port}"
            if erase:
                out.task = "erase"
                try:
                    cmds.erase_flash(s.esp)
                except (FatalError, serial.SerialException, OSError) as e:
                    raise FlashWriteError(f"erase of {where} failed: {first_line(e)}") from None
            out.task = "write"
            try:
                # flash_mode/freq/size "keep": the image header MicroPython built
                # is written as is, so the flash matches the file byte for byte.
                cmds.write_flash(s.esp, [(offset, image.data)], no_progress=callback is None)
            except (FatalError, serial.SerialException, OSError) as e:
                raise FlashWriteError(f"write to {where} at {offset:#x} failed: "
                                      f"{first_line(e)}") from None
            _verify(s, where, offset, image)
            _reset(s, where)
    finally:
        if owned_bar is not None:
            owned_bar.close()
    return FlashReport(port=port, board=profile.name, chip_name=image.chip_name, offset=offset,
                       size=len(image.data), md5=image.md5, baud=baud, erased=erase,
                       written=True, verified=True, reset=True, chip_source=s.chip_source)


def verify_flash(port: str, path: str | os.PathLike, profile: BoardProfile | str | None = None,
                 baud: int | None = None, on_message: MessageCallback | None = None,
                 reset: bool = True,
                 connect_attempts: int = DEFAULT_CONNECT_ATTEMPTS) -> FlashReport:
    """Check with esptool's verify that the flash at the profile's offset holds `path`.

    Same connection, chip check and refusals as `flash_firmware`; writes nothing.
    Raises VerifyMismatchError when the contents differ. Resets the board afterwards
    unless `reset` is False (then it stays in esptool's flasher stub).
    """
    profile = load_board(profile)
    image = check_image(path, profile)
    baud = resolve_baud(profile, baud)
    # No progress to show: esptool compares an MD5 computed on the board and reads
    # nothing back unless asked for a byte diff.
    with EsptoolOutput(None, on_message) as out, \
            _connect(port, profile, baud, out, connect_attempts) as s:
        where = f"{image.chip_name} on {port}"
        _verify(s, where, profile.flash_offset, image)
        if reset:
            _reset(s, where)
    return FlashReport(port=port, board=profile.name, chip_name=image.chip_name,
                       offset=profile.flash_offset, size=len(image.data), md5=image.md5,
                       baud=baud, erased=False, written=False, verified=True, reset=reset,
                       chip_source=s.chip_source)
