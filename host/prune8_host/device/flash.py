"""Flash stock MicroPython onto an ESP32-family board, with esptool used as a library.

`check_image` refuses a file that is not an application image for the board's chip
before any port is opened. `flash_firmware` connects, checks that the chip on the port
is the one the board profile names, optionally erases, writes, verifies the flash
against the file with esptool's own verify, and resets. `verify_flash` does only the
verify.

esptool prints through a process-wide logger (esp_pylib's EspLog). For the length of
one of our calls we install `_EsptoolOutput` in its place, so esptool never writes to
the terminal itself: its progress reaches a callback (by default a tqdm bar on stderr)
and its messages reach `on_message`, where the caller decides what to show.

Every refusal or failure is a `FlashError`, which is also a ValueError (bad input:
the file, the chip) or an OSError (the port, the board, the flash), so the CLI reports
it on one line; a profile naming a chip esptool does not know is a BoardProfileError.
"""

from __future__ import annotations

import hashlib
import os
import struct
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import serial
from esp_pylib.errors import FatalError
from esp_pylib.logger import EspLog, EspLogBase
from esptool import cmds
from esptool.bin_image import LoadFirmwareImage
from esptool.loader import DEFAULT_CONNECT_ATTEMPTS, ESPLoader
from esptool.targets import CHIP_DEFS, ROM_LIST
from rich.errors import MarkupError
from rich.text import Text
from tqdm import tqdm

from prune8_host.boards import BoardProfile, all_boards, load_board
from prune8_host.errors import BoardProfileError, FlashError, UsageError

# (task, done, total): task names the step esptool reports progress for ("write";
# esptool 5.6 reports none for erase and MD5 verify); done and total count the bytes
# it sends, compressed ones when it compresses.
ProgressCallback = Callable[[str, int, int], None]
# (level, text): level is "info", "note", "warning", "error" or "debug".
MessageCallback = Callable[[str, str], None]

# Every ESP32-family image starts with this byte (esptool: ESPLoader.ESP_IMAGE_MAGIC).
IMAGE_MAGIC = ESPLoader.ESP_IMAGE_MAGIC
# The 8-byte common header (magic, segment count, flash mode, flash size/freq, entry
# point) is followed by a 16-byte extended header whose bytes 4..5 are the chip id
# (esptool bin_image.py, ESP32FirmwareImage.EXTENDED_HEADER_STRUCT_FMT "<BBBBHBHH...").
_CHIP_ID_OFFSET = 8 + 4
_HEADER_LEN = 8 + 16


class FirmwareFileError(FlashError, OSError):
    """The firmware file is missing or unreadable."""


class ImageError(FlashError, ValueError):
    """The file is not an application image for the board's chip."""


class BoardNotFoundError(FlashError, OSError):
    """The port cannot be opened, or no ESP bootloader answered on it."""


class ChipMismatchError(FlashError, ValueError):
    """The chip on the port is not the chip the board profile names."""


class FlashWriteError(FlashError, OSError):
    """The board answered, but an esptool step (stub, erase, write, reset) failed."""


class VerifyMismatchError(FlashError, OSError):
    """The flash contents at the board's offset differ from the file."""


@dataclass(frozen=True)
class FirmwareImage:
    """A firmware file that passed `check_image`, with the bytes that will be written."""
    path: str
    data: bytes
    chip: str          # esptool chip key, e.g. "esp32"
    chip_name: str     # esptool's display name, e.g. "ESP32"
    segments: int      # segments of the first image in the file
    md5: str


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


def _rom_class(profile: BoardProfile) -> type[ESPLoader]:
    try:
        return CHIP_DEFS[profile.chip]
    except KeyError:
        raise BoardProfileError(f"board profile {profile.name!r} names chip {profile.chip!r}, "
                                f"which esptool does not know") from None


def _chip_name_for_id(chip_id: int) -> str | None:
    # ESP8266 has no chip id field; every later ROM class carries IMAGE_CHIP_ID.
    for cls in ROM_LIST:
        if getattr(cls, "IMAGE_CHIP_ID", None) == chip_id and cls.CHIP_NAME != "ESP8266":
            return cls.CHIP_NAME
    return None


# A few files people pass by mistake, named so the refusal says what to do instead.
_OTHER_FORMATS = (
    (b"\x7fELF", "an ELF file: flash the .bin image built from it"),
    (b"UF2\n", "a UF2 file: flash the .bin image instead"),
    (b":", "an Intel HEX file: flash the .bin image instead"),
    (b"PK\x03\x04", "a zip archive: unpack it and flash the .bin image"),
)


def check_image(path: str | os.PathLike, profile: BoardProfile | str | None = None) -> FirmwareImage:
    """Read `path` and check it is an application image for the profile's chip.

    Checks the first image in the file (in MicroPython's merged firmware.bin, the
    second-stage bootloader written at the flash offset): the magic byte (0xE9), the
    chip id in its extended header, and that esptool's image parser reads it whole with
    a matching checksum (and SHA-256 digest, when it carries one). Opens no port.
    """
    profile = load_board(profile)
    rom = _rom_class(profile)
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise FirmwareFileError(f"cannot read firmware {path}: {e.strerror or e}") from None

    if len(data) < _HEADER_LEN:
        raise ImageError(f"{path} is not an ESP application image: "
                         f"{len(data)} bytes, shorter than an image header ({_HEADER_LEN})")
    if data[0] != IMAGE_MAGIC:
        what = next((desc for magic, desc in _OTHER_FORMATS if data.startswith(magic)), None)
        raise ImageError(f"{path} is not an ESP application image: "
                         + (f"it is {what}" if what else
                            f"first byte is {data[0]:#04x}, an image starts with {IMAGE_MAGIC:#04x}"))
    (chip_id,) = struct.unpack_from("<H", data, _CHIP_ID_OFFSET)
    if chip_id != rom.IMAGE_CHIP_ID:
        other = _chip_name_for_id(chip_id) or "an unknown chip"
        raise ImageError(f"{path} is an image for {other} (chip id {chip_id}), but board "
                         f"profile {profile.name!r} is for {rom.CHIP_NAME} "
                         f"(chip id {rom.IMAGE_CHIP_ID})")

    try:
        image = LoadFirmwareImage(profile.chip, data)
    # FatalError: bad magic or a segment cut short; struct.error and TypeError: the
    # file ends inside a segment header or before the checksum byte; RuntimeError: a
    # bad append-digest flag.
    except (FatalError, struct.error, TypeError, RuntimeError) as e:
        raise ImageError(f"{path} is a damaged {rom.CHIP_NAME} image: {_first_line(e)}") from None
    if image.calculate_checksum() != image.checksum:
        raise ImageError(f"{path} is a damaged {rom.CHIP_NAME} image: checksum "
                         f"{image.checksum:#04x} stored, {image.calculate_checksum():#04x} computed")
    if image.append_digest and image.stored_digest != image.calc_digest:
        raise ImageError(f"{path} is a damaged {rom.CHIP_NAME} image: "
                         f"its SHA-256 digest does not match its contents")
    return FirmwareImage(path=path, data=data, chip=profile.chip, chip_name=rom.CHIP_NAME,
                         segments=len(image.segments), md5=hashlib.md5(data).hexdigest())


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _plain(arg: object) -> str:
    """esptool's messages are Rich markup (escaped paths, [bold] tags): give plain text."""
    if not isinstance(arg, str):
        return str(arg)
    try:
        return Text.from_markup(arg).plain
    except MarkupError:
        return arg


class _EsptoolOutput(EspLogBase):
    """Stands in for esptool's logger: forwards progress and messages to callbacks."""

    def __init__(self, progress: ProgressCallback | None, on_message: MessageCallback | None):
        self.task = ""  # set by the caller before each esptool step; labels progress
        self._progress = progress
        self._on_message = on_message
        self._line: list[str] = []  # a line esptool is still printing with end=""

    def _emit(self, level: str, text: str) -> None:
        if self._on_message is not None:
            for line in text.splitlines() or [""]:
                self._on_message(level, line)

    def print(self, *args, sep: str = " ", end: str = "\n", **_rich_options) -> None:
        self._line.append(sep.join(_plain(a) for a in args))
        if "\n" not in end:
            self._line.append(end)
            return
        text, self._line = "".join(self._line), []
        if text.strip():
            self._emit("info", text)

    def note(self, *args) -> None:
        self._emit("note", " ".join(_plain(a) for a in args))

    def hint(self, *args) -> None:
        self._emit("note", " ".join(_plain(a) for a in args))

    def debug(self, *args) -> None:
        self._emit("debug", " ".join(_plain(a) for a in args))

    def warn(self, *args, suggestion: str | None = None) -> None:
        self._emit("warning", " ".join(_plain(a) for a in args))

    def err(self, *args, suggestion: str | None = None) -> None:
        self._emit("error", " ".join(_plain(a) for a in args))

    # esptool still calls these older names in places (e.g. loader.py log.error).
    warning = warn
    error = err

    def set_verbosity(self, mode) -> None:
        """Verbosity is the caller's business (via its callbacks); nothing to set."""

    def progress_bar(self, cur_iter: int, total_iters: int, prefix: str = "",
                     suffix: str = "", bar_length: int = 30) -> None:
        if self._progress is not None:
            self._progress(self.task, cur_iter, total_iters)


@contextmanager
def _esptool_output(out: _EsptoolOutput) -> Iterator[None]:
    previous = EspLog.instance
    EspLog.set_logger(out)
    try:
        yield
    finally:
        # esptool installs its own logger on import, so `previous` is set; restore it
        # so esptool used elsewhere in this process prints as before.
        EspLog.instance = previous


def _is_terminal(f) -> bool:
    """Progress bars are drawn on a terminal only: a log or a pipe gets no \\r updates."""
    return bool(getattr(f, "isatty", lambda: False)())


class TqdmProgress:
    """A ProgressCallback drawing one tqdm bar per esptool task (on stderr by default).

    `write()` prints a message above the bar without garbling it.
    """

    def __init__(self, file=None):
        self.file = file if file is not None else sys.stderr
        self._bar: tqdm | None = None
        self._key: tuple[str, int] | None = None

    def __call__(self, task: str, done: int, total: int) -> None:
        # esptool opens a new task with a new total and counts from 0: start a new bar.
        if self._bar is None or self._key != (task, total) or done < self._bar.n:
            self.close()
            self._bar = tqdm(total=total, desc=task, unit="B", unit_scale=True,
                             unit_divisor=1024, file=self.file, leave=True,
                             dynamic_ncols=True, disable=not _is_terminal(self.file))
            self._key = (task, total)
        self._bar.update(done - self._bar.n)
        if done >= total:
            self.close()

    def write(self, text: str) -> None:
        tqdm.write(text, file=self.file)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
            self._key = None


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
    out: _EsptoolOutput
    chip_source: str      # "detected" (esptool read the chip's id) or "profile"


@contextmanager
def _connect(port: str, profile: BoardProfile, baud: int, out: _EsptoolOutput,
             connect_attempts: int) -> Iterator[_Session]:
    """Open the port, sync with the ROM bootloader, check the chip, start the stub.

    Yields with the flash attached and the link at `baud`; always closes the port.
    """
    want = _rom_class(profile).CHIP_NAME
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
            reason = _first_line(e)
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
            esp = _rom_class(profile)(ser, initial)
            try:
                esp.connect("default-reset", connect_attempts, detecting=False)
            except (FatalError, serial.SerialException, OSError) as e2:
                raise FlashWriteError(f"the board on {port} answered, but neither esptool's "
                                      f"detection ({reason}) nor a connection as the "
                                      f"profile's {want} ({_first_line(e2)}) worked") from None
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
                                  f"stub: {_first_line(e)}") from None
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
        raise FlashWriteError(f"verify on {where} failed: {_first_line(e)}") from None
    except (serial.SerialException, OSError) as e:
        raise FlashWriteError(f"verify on {where} failed: {_first_line(e)}") from None


def _reset(s: _Session, where: str) -> None:
    s.out.task = "reset"
    try:
        # Hard reset (RTS pulse) boots the new firmware; over a TCP socket esptool
        # cannot pulse RTS and the board must be reset by hand.
        cmds.reset_chip(s.esp, "hard-reset")
    except (FatalError, serial.SerialException, OSError) as e:
        raise FlashWriteError(f"reset of {where} failed: {_first_line(e)}") from None


def _progress_callback(progress: bool | ProgressCallback | None):
    """(callback or None, the TqdmProgress we own and must close, or None)."""
    if progress is True:
        bar = TqdmProgress()
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
    `baud` defaults to the profile's flash_baud. `progress` is True for a tqdm bar on
    stderr, False for none, or a ProgressCallback. `on_message` receives esptool's own
    messages (dropped if None). Raises a FlashError on any refusal or failure; the
    file is checked before the port is opened.
    """
    profile = load_board(profile)
    image = check_image(path, profile)
    baud = resolve_baud(profile, baud)
    callback, owned_bar = _progress_callback(progress)
    out = _EsptoolOutput(callback, on_message)
    offset = profile.flash_offset
    try:
        with _esptool_output(out), _connect(port, profile, baud, out, connect_attempts) as s:
            where = f"{image.chip_name} on {port}"
            if erase:
                out.task = "erase"
                try:
                    cmds.erase_flash(s.esp)
                except (FatalError, serial.SerialException, OSError) as e:
                    raise FlashWriteError(f"erase of {where} failed: {_first_line(e)}") from None
            out.task = "write"
            try:
                # flash_mode/freq/size "keep": the image header MicroPython built
                # is written as is, so the flash matches the file byte for byte.
                cmds.write_flash(s.esp, [(offset, image.data)], no_progress=callback is None)
            except (FatalError, serial.SerialException, OSError) as e:
                raise FlashWriteError(f"write to {where} at {offset:#x} failed: "
                                      f"{_first_line(e)}") from None
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
    out = _EsptoolOutput(None, on_message)
    with _esptool_output(out), _connect(port, profile, baud, out, connect_attempts) as s:
        where = f"{image.chip_name} on {port}"
        _verify(s, where, profile.flash_offset, image)
        if reset:
            _reset(s, where)
    return FlashReport(port=port, board=profile.name, chip_name=image.chip_name,
                       offset=profile.flash_offset, size=len(image.data), md5=image.md5,
                       baud=baud, erased=False, written=False, verified=True, reset=reset,
                       chip_source=s.chip_source)
