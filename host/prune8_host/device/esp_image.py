"""Check a firmware file before it is flashed: is it an application image for the chip?

`check_image` reads the file and refuses, with a FlashError that says why, anything
that is not an ESP application image for the board profile's chip: another format
(ELF, UF2, HEX, zip), another chip's image, a cut-short or damaged one. It opens no
port. `rom_class` gives esptool's class for the profile's chip.
"""

from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass

from esp_pylib.errors import FatalError
from esptool.bin_image import LoadFirmwareImage
from esptool.loader import ESPLoader
from esptool.targets import CHIP_DEFS, ROM_LIST

from prune8_host.boards import BoardProfile, load_board
from prune8_host.errors import BoardProfileError, FlashError

from .esptool_output import first_line

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


@dataclass(frozen=True)
class FirmwareImage:
    """A firmware file that passed `check_image`, with the bytes that will be written."""
    path: str
    data: bytes
    chip: str          # esptool chip key, e.g. "esp32"
    chip_name: str     # esptool's display name, e.g. "ESP32"
    segments: int      # segments of the first image in the file
    md5: str


def rom_class(profile: BoardProfile) -> type[ESPLoader]:
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
    rom = rom_class(profile)
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
        raise ImageError(f"{path} is a damaged {rom.CHIP_NAME} image: {first_line(e)}") from None
    if image.calculate_checksum() != image.checksum:
        raise ImageError(f"{path} is a damaged {rom.CHIP_NAME} image: checksum "
                         f"{image.checksum:#04x} stored, {image.calculate_checksum():#04x} computed")
    if image.append_digest and image.stored_digest != image.calc_digest:
        raise ImageError(f"{path} is a damaged {rom.CHIP_NAME} image: "
                         f"its SHA-256 digest does not match its contents")
    return FirmwareImage(path=path, data=data, chip=profile.chip, chip_name=rom.CHIP_NAME,
                         segments=len(image.segments), md5=hashlib.md5(data).hexdigest())
