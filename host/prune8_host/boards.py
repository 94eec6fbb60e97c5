"""Board profiles: one TOML file per board under boards/.

A profile fixes what the host needs to talk to a board (esptool chip, flash offset,
baud rates), how to build for it (mpy-cross arch), what the firmware may use
(heap budget, filesystem size, capacity) and how slow the board is (flash erase and
program times, CPU factor), which the virtual board applies when it is paced. `load_board("esp32")` returns a validated
`BoardProfile`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

from prune8 import errors as fw_errors
from prune8_host.errors import BoardProfileError

DEFAULT_BOARD = "esp32"
MPY_ARCHS = ("xtensawin", "rv32imc")
CONSOLES = ("uart", "usb")
# Rates a baud switch may ask for: what pyserial sets and an ESP32's UART divides to
# within 1% from its 80 MHz APB clock (ESP32 TRM, "UART Controller": the baud divider).
SWITCH_RATES = (230400, 460800, 921600)


@dataclass(frozen=True)
class BoardProfile:
    name: str
    description: str
    chip: str
    flash_offset: int
    baud: int
    baud_switch: int            # the rate a transfer's bulk asks for (0: none), docs/protocol.md
    console: str                # "uart" (a USB-serial bridge) or "usb" (native USB: no baud)
    flash_baud: int
    mpy_arch: str
    heap_bytes: int
    fs_bytes: int
    max_weights: int
    max_units: int
    firmware_image: str
    flash_erase_us: int         # a 4 KB sector erase (typical), applied by a paced vboard
    flash_program_us: int       # a 256-byte page program (typical)
    cpu_factor: int             # how many times slower the board computes than the VM
    path: str = ""


# Keys a profile file must hold, with their types (name and path come from the file).
_KEYS = {f.name: f.type for f in fields(BoardProfile) if f.name not in ("name", "path")}
_TYPES = {"str": str, "int": int}


def boards_dir() -> Path:
    """The directory holding the shipped profiles (boards/ in the source tree)."""
    return Path(str(resources.files("prune8_boards")))


def board_names() -> list[str]:
    return sorted(p.stem for p in boards_dir().glob("*.toml"))


def _check(path: Path, data: dict) -> None:
    where = str(path)
    unknown = sorted(set(data) - set(_KEYS))
    if unknown:
        raise BoardProfileError(f"{where}: unknown key {unknown[0]!r} "
                                f"(allowed: {', '.join(sorted(_KEYS))})")
    for key, type_name in _KEYS.items():
        if key not in data:
            raise BoardProfileError(f"{where}: missing key {key!r} ({type_name})")
        value, want = data[key], _TYPES[type_name]
        if type(value) is not want:  # bool is an int subclass: refuse it too
            raise BoardProfileError(f"{where}: key {key!r} must be {type_name}, "
                                    f"got {type(value).__name__} {value!r}")
    if data["console"] not in CONSOLES:
        raise BoardProfileError(f"{where}: key 'console' must be one of {', '.join(CONSOLES)}, "
                                f"got {data['console']!r}")
    if data["baud_switch"] and data["baud_switch"] not in SWITCH_RATES:
        raise BoardProfileError(f"{where}: key 'baud_switch' must be 0 (none) or one of "
                                f"{', '.join(map(str, SWITCH_RATES))}, got {data['baud_switch']}")
    if data["console"] == "usb" and data["baud_switch"]:
        raise BoardProfileError(f"{where}: key 'baud_switch' must be 0 on a native USB console "
                                f"(its speed does not depend on the baud)")
    if data["mpy_arch"] not in MPY_ARCHS:
        raise BoardProfileError(f"{where}: key 'mpy_arch' must be one of "
                                f"{', '.join(MPY_ARCHS)}, got {data['mpy_arch']!r}")
    for key in ("flash_offset",):
        if data[key] < 0:
            raise BoardProfileError(f"{where}: key {key!r} must be >= 0, got {data[key]}")
    for key in ("baud", "flash_baud", "heap_bytes", "fs_bytes", "cpu_factor"):
        if data[key] <= 0:
            raise BoardProfileError(f"{where}: key {key!r} must be > 0, got {data[key]}")
    for key in ("flash_erase_us", "flash_program_us"):
        if data[key] < 0:
            raise BoardProfileError(f"{where}: key {key!r} must be >= 0, got {data[key]}")
    if not 1 <= data["max_weights"] <= fw_errors.MAX_WEIGHTS_LIMIT:
        raise BoardProfileError(f"{where}: key 'max_weights' must be in "
                                f"1..{fw_errors.MAX_WEIGHTS_LIMIT}, got {data['max_weights']}")
    if not 1 <= data["max_units"] <= fw_errors.MAX_UNITS_LIMIT:
        raise BoardProfileError(f"{where}: key 'max_units' must be in "
                                f"1..{fw_errors.MAX_UNITS_LIMIT}, got {data['max_units']}")


def load_profile_file(path: str | Path) -> BoardProfile:
    """Load and validate one profile file; errors name the file and the key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise BoardProfileError(f"{path}: cannot read board profile ({e.strerror})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise BoardProfileError(f"{path}: not valid TOML ({e})") from None
    _check(path, data)
    return BoardProfile(name=path.stem, path=str(path), **data)


def load_board(name: str | BoardProfile | None = None) -> BoardProfile:
    """A shipped profile by name (default esp32), or a path to a .toml file."""
    if isinstance(name, BoardProfile):
        return name
    name = name or DEFAULT_BOARD
    if name.endswith(".toml") or "/" in name:
        return load_profile_file(name)
    path = boards_dir() / f"{name}.toml"
    if not path.is_file():
        raise BoardProfileError(f"unknown board {name!r}: choose one of "
                                f"{', '.join(board_names())} or give a path to a .toml profile")
    return load_profile_file(path)


def all_boards() -> list[BoardProfile]:
    return [load_board(n) for n in board_names()]
