"""prune8 flash against esp32-mock-bootloader, a ROM-bootloader emulator on loopback TCP.

The firmware files are built here with esptool's own image classes, laid out like
MicroPython's firmware.bin (second-stage bootloader image, partition table at 0x8000,
application image at 0x10000, the file starting at the board's flash offset). Their
segments hold random bytes, not code: the emulator runs nothing, it only stores what
the flasher writes.
"""

from __future__ import annotations

import hashlib
import random
import re
import socket
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from esp32_mock_bootloader import mock_bootloader
from esp_pylib.logger import EspLog
from esptool import cmds
from esptool.bin_image import ELFSection
from esptool.targets import CHIP_DEFS

from prune8_host import cli
from prune8_host.boards import load_board
from prune8_host.device import flash

# A hung connection must fail the test, not the CI run.
pytestmark = pytest.mark.timeout(180)

PROFILES = ["esp32", "esp32s3", "esp32c3"]


# -- firmware files -------------------------------------------------------------------

def _region(chip: str, name: str) -> int:
    return next(start for start, _end, n in CHIP_DEFS[chip].MEMORY_MAP if n == name)


def _image(chip: str, rng: random.Random, *, flash_mapped: bool) -> bytes:
    """One ESP image for `chip` written by esptool's image class (header, segments,
    checksum, SHA-256 digest). An app image also gets a flash-mapped rodata segment."""
    image = CHIP_DEFS[chip].BOOTLOADER_IMAGE()
    segments = [ELFSection(b".dram0.data", _region(chip, "DRAM"), rng.randbytes(512), 0),
                ELFSection(b".iram0.text", _region(chip, "IRAM"), rng.randbytes(2048), 0)]
    if flash_mapped:
        # 0x20 past the page start: where the linker puts it, after the image headers.
        segments.append(ELFSection(b".flash.rodata", _region(chip, "DROM") + 0x20,
                                   rng.randbytes(4096), 0))
    image.segments = segments
    image.entrypoint = _region(chip, "IRAM")
    return image.save(None)


def _partition_table() -> bytes:
    """MicroPython's ESP32 table in ESP-IDF's binary format: 32-byte entries
    <magic 0xAA50, type, subtype, offset, size, name, flags>, an MD5 entry, 0xFF fill."""
    rows = [(1, 0x02, 0x9000, 0x6000, b"nvs"), (1, 0x01, 0xF000, 0x1000, b"phy_init"),
            (0, 0x00, 0x10000, 0x1F0000, b"factory"), (1, 0x81, 0x200000, 0x200000, b"vfs")]
    table = b"".join(struct.pack("<2sBBLL16sL", b"\xaa\x50", t, st, off, size, name, 0)
                     for t, st, off, size, name in rows)
    table += b"\xeb\xeb" + b"\xff" * 14 + hashlib.md5(table).digest()
    return table + b"\xff" * (0xC00 - len(table))


def build_firmware(chip: str, seed: int) -> bytes:
    """A merged firmware for `chip`, as a file to write at the chip's bootloader offset."""
    rng = random.Random(seed)
    start = CHIP_DEFS[chip].BOOTLOADER_FLASH_OFFSET
    parts = [(start, _image(chip, rng, flash_mapped=False)), (0x8000, _partition_table()),
             (0x10000, _image(chip, rng, flash_mapped=True))]
    out = bytearray()
    for address, data in parts:
        out += b"\xff" * (address - start - len(out))
        out += data
    return bytes(out)


@pytest.fixture
def firmware(tmp_path):
    """firmware(chip, seed=1) -> path of a freshly built firmware file."""
    def make(chip: str, seed: int = 1, name: str | None = None) -> Path:
        path = tmp_path / (name or f"{chip}-{seed}.bin")
        path.write_bytes(build_firmware(chip, seed))
        return path
    return make


# -- the emulator -----------------------------------------------------------------------

@pytest.fixture
def emulator(tmp_path, monkeypatch):
    """emulator(chip) -> socket:// URL of a mock ROM bootloader for `chip`, started on a
    free loopback port (the OS picks it) in a subprocess; all are stopped afterwards."""
    # The emulator keeps a registry of running instances; keep ours out of the shared one.
    monkeypatch.setenv("ESP32_MOCK_BOOTLOADER_STATE_DIR", str(tmp_path / "mock-state"))
    handles = []

    def start(chip: str) -> str:
        # Generous startup time: a loaded 2-core machine can take seconds to spawn Python.
        handle = mock_bootloader(chip=chip, startup_timeout=90)
        handles.append(handle)
        return handle.url()

    yield start
    for handle in handles:
        handle.stop()


def board_md5(url: str, chip: str, offset: int, size: int) -> str:
    """The MD5 the board computes over a flash region, asked through esptool directly,
    independently of prune8_host.flash.

    (Not a byte read-back: the emulator's stub READ_FLASH gives up when the host's
    acknowledgement takes over 50 ms, which a busy machine cannot promise.)
    """
    with cmds.detect_chip(url) as esp:
        assert esp.CHIP_NAME == CHIP_DEFS[chip].CHIP_NAME
        esp = cmds.run_stub(esp)
        cmds.attach_flash(esp)
        return esp.flash_md5sum(offset, size)


def far_profile(tmp_path: Path, board: str, offset: int) -> Path:
    """A copy of a shipped profile with another flash offset, to put a marker far away."""
    text = load_board(board).path
    lines = [f"flash_offset = {offset:#x}" if line.startswith("flash_offset") else line
             for line in Path(text).read_text().splitlines()]
    path = tmp_path / f"{board}-far.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


class Recorder:
    """A progress callback that keeps every event."""
    def __init__(self):
        self.events: list[tuple[str, int, int]] = []

    def __call__(self, task, done, total):
        self.events.append((task, done, total))


# -- check_image: refusals before any port is opened --------------------------------------

@pytest.mark.parametrize("board", PROFILES)
def test_check_image_accepts_a_firmware_for_the_boards_chip(firmware, board):
    path = firmware(load_board(board).chip)
    image = flash.check_image(path, board)
    assert image.chip_name == CHIP_DEFS[load_board(board).chip].CHIP_NAME
    assert image.data == path.read_bytes()
    assert image.md5 == hashlib.md5(path.read_bytes()).hexdigest()
    assert image.segments == 2


def test_the_built_firmware_has_the_expected_header_fields(firmware):
    data = firmware("esp32c3").read_bytes()
    assert data[0] == 0xE9
    assert struct.unpack_from("<H", data, 12)[0] == 5          # ESP32-C3 chip id
    assert data[0x10000:0x10001] == b"\xe9"                      # app image at 0x10000
    assert data[0x8000:0x8002] == b"\xaa\x50"                    # partition table
    assert struct.unpack_from("<H", firmware("esp32s3").read_bytes(), 12)[0] == 9
    esp32 = firmware("esp32").read_bytes()
    assert struct.unpack_from("<H", esp32, 12)[0] == 0
    assert esp32[0x10000 - 0x1000] == 0xE9                       # the file starts at 0x1000


def test_missing_file_is_refused_naming_it(tmp_path):
    missing = tmp_path / "nope.bin"
    with pytest.raises(flash.FirmwareFileError) as e:
        flash.check_image(missing, "esp32")
    assert isinstance(e.value, OSError)
    assert str(missing) in str(e.value) and "No such file" in str(e.value)


def test_unreadable_file_is_refused(tmp_path):
    with pytest.raises(flash.FirmwareFileError, match="cannot read firmware"):
        flash.check_image(tmp_path, "esp32")  # a directory


@pytest.mark.parametrize("content, expect", [
    (b"", "shorter than an image header"),
    (b"hello, not firmware at all" * 4, "first byte is 0x68, an image starts with 0xe9"),
    (b"\x7fELF\x01\x01\x01" + bytes(40), "it is an ELF file"),
    (b"UF2\nWQ]\x9e" + bytes(40), "it is a UF2 file"),
])
def test_a_file_that_is_not_an_image_is_refused(tmp_path, content, expect):
    path = tmp_path / "firmware.bin"
    path.write_bytes(content)
    with pytest.raises(flash.ImageError, match="not an ESP application image") as e:
        flash.check_image(path, "esp32")
    assert expect in str(e.value)
    assert isinstance(e.value, ValueError)


@pytest.mark.parametrize("image_chip, board, names", [
    ("esp32c3", "esp32", ("ESP32-C3 (chip id 5)", "'esp32' is for ESP32 (chip id 0)")),
    ("esp32", "esp32s3", ("ESP32 (chip id 0)", "'esp32s3' is for ESP32-S3 (chip id 9)")),
    ("esp32s3", "esp32c3", ("ESP32-S3 (chip id 9)", "'esp32c3' is for ESP32-C3 (chip id 5)")),
])
def test_an_image_for_another_chip_is_refused_naming_both(firmware, image_chip, board, names):
    with pytest.raises(flash.ImageError) as e:
        flash.check_image(firmware(image_chip), board)
    for name in names:
        assert name in str(e.value)


def test_a_truncated_image_is_refused(firmware, tmp_path):
    path = tmp_path / "cut.bin"
    path.write_bytes(firmware("esp32").read_bytes()[:600])
    with pytest.raises(flash.ImageError, match="damaged ESP32 image"):
        flash.check_image(path, "esp32")


def test_a_corrupted_image_is_refused(firmware, tmp_path):
    data = bytearray(firmware("esp32").read_bytes())
    data[40] ^= 0xFF  # a byte of the first segment: checksum and digest no longer match
    path = tmp_path / "flipped.bin"
    path.write_bytes(bytes(data))
    with pytest.raises(flash.ImageError, match="damaged ESP32 image: checksum"):
        flash.check_image(path, "esp32")


def test_a_bad_image_is_refused_before_the_port_is_touched(tmp_path):
    path = tmp_path / "firmware.bin"
    path.write_bytes(b"not firmware" * 10)
    # The port does not exist: the image refusal must come first.
    with pytest.raises(flash.ImageError):
        flash.flash_firmware(str(tmp_path / "ttyUSB9"), path, "esp32")


# -- flashing the emulator ----------------------------------------------------------------------

@pytest.mark.parametrize("board", PROFILES)
def test_flash_writes_verifies_and_the_flash_holds_the_file(emulator, firmware, board):
    profile = load_board(board)
    url = emulator(profile.chip)
    path = firmware(profile.chip, seed=1)
    progress = Recorder()
    messages = []
    before = EspLog.instance

    report = flash.flash_firmware(url, path, board, progress=progress,
                                  on_message=lambda level, text: messages.append((level, text)))

    assert EspLog.instance is before  # esptool's own logger is back in place
    assert report.offset == profile.flash_offset
    assert report.chip_name == CHIP_DEFS[profile.chip].CHIP_NAME
    assert report.size == path.stat().st_size and report.verified and report.written
    assert report.baud == profile.flash_baud
    # esptool's write reported progress to our callback, ending complete.
    writes = [e for e in progress.events if e[0] == "write"]
    assert writes and writes[-1][1] == writes[-1][2] > 0
    assert any("Hash of data verified" in text for _level, text in messages)

    # esptool's verify of the flash against the file passes; against another file fails.
    assert flash.verify_flash(url, path, board).verified
    other = firmware(profile.chip, seed=2)
    with pytest.raises(flash.VerifyMismatchError) as e:
        flash.verify_flash(url, other, board)
    assert str(other) in str(e.value) and f"{profile.flash_offset:#x}" in str(e.value)

    # And independently of prune8: the board's MD5 of the region is the file's.
    data = path.read_bytes()
    assert board_md5(url, profile.chip, profile.flash_offset, len(data)) == \
        hashlib.md5(data).hexdigest()


def test_erase_wipes_the_whole_flash_first(emulator, firmware, tmp_path):
    url = emulator("esp32")
    path = firmware("esp32")
    far = str(far_profile(tmp_path, "esp32", 0x300000))  # a marker far from the image
    flash.flash_firmware(url, path, far, progress=False)
    assert flash.verify_flash(url, path, far).verified

    flash.flash_firmware(url, path, "esp32", progress=False)  # no --erase: marker stays
    assert flash.verify_flash(url, path, far).verified

    report = flash.flash_firmware(url, path, "esp32", erase=True, progress=False)
    assert report.erased
    with pytest.raises(flash.VerifyMismatchError):
        flash.verify_flash(url, path, far)
    assert board_md5(url, "esp32", 0x300000, 4096) == hashlib.md5(b"\xff" * 4096).hexdigest()
    assert flash.verify_flash(url, path, "esp32").verified


def test_cli_in_a_log_has_no_progress_bar(emulator, firmware, capsys):
    url = emulator("esp32")
    assert cli.main(["flash", "--port", url, "--firmware", str(firmware("esp32"))]) == 0
    out, err = capsys.readouterr()
    assert "\r" not in out + err and "write:" not in err  # stderr is not a terminal
    assert "flashed" in out


def test_a_rom_that_does_not_say_its_chip_is_flashed_as_the_profile_says(emulator, firmware,
                                                                         capsys):
    # The emulator's own "auto" mode does not answer the chip-magic read: esptool's
    # --chip auto fails on it, as on some real ROMs. The profile names the chip.
    url = emulator("auto")
    path = firmware("esp32", seed=3)
    report = flash.flash_firmware(url, path, "esp32", progress=False)
    assert report.chip_source == "profile" and report.verified and report.written
    assert cli.main(["flash", "--port", url, "--firmware", str(path)]) == 0
    out, _ = capsys.readouterr()
    assert "to ESP32 (the board profile's chip: the ROM did not identify itself)" in out


def test_the_chip_on_the_port_must_match_the_profile(emulator, firmware):
    url = emulator("esp32c3")
    with pytest.raises(flash.ChipMismatchError) as e:
        flash.flash_firmware(url, firmware("esp32"), "esp32", progress=False)
    text = str(e.value)
    assert "is an ESP32-C3" in text and "is for an ESP32" in text
    assert "--board esp32c3" in text and url in text
    # Nothing was written.
    assert board_md5(url, "esp32c3", 0, 0x20000) == hashlib.md5(b"\xff" * 0x20000).hexdigest()


def test_baud_must_be_positive(firmware):
    with pytest.raises(ValueError, match="baud rate must be a positive integer"):
        flash.flash_firmware("socket://127.0.0.1:9", firmware("esp32"), "esp32", baud=0)


# -- unreachable ports --------------------------------------------------------------------------

def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_refused_socket_names_the_port(firmware):
    url = f"socket://127.0.0.1:{_closed_port()}"
    with pytest.raises(flash.BoardNotFoundError) as e:
        flash.flash_firmware(url, firmware("esp32"), "esp32", progress=False)
    assert isinstance(e.value, OSError)
    assert str(e.value).startswith(f"no board answered on {url}: cannot open it")
    assert "Connection refused" in str(e.value) and "--port" in str(e.value)


def test_a_missing_serial_device_names_the_port(firmware, tmp_path):
    port = str(tmp_path / "ttyUSB9")
    with pytest.raises(flash.BoardNotFoundError) as e:
        flash.flash_firmware(port, firmware("esp32"), "esp32", progress=False)
    assert str(e.value) == (f"no board answered on {port}: cannot open it "
                            f"(No such file or directory); check the cable, and that --port "
                            f"names the "
                            f"board's serial device")


def test_a_port_where_nothing_answers_names_the_port(firmware):
    # A listening socket nobody reads: the kernel completes the connection, so the
    # port opens, but no SYNC reply ever comes.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(4)
        url = f"socket://127.0.0.1:{server.getsockname()[1]}"
        with pytest.raises(flash.BoardNotFoundError) as e:
            flash.flash_firmware(url, firmware("esp32"), "esp32", progress=False,
                                 connect_attempts=1)
    assert str(e.value).startswith(f"no board answered on {url}: Failed to connect")
    assert "--port" in str(e.value)


# -- the CLI ------------------------------------------------------------------------------------

def test_cli_flashes_with_a_progress_bar(emulator, firmware, capsys, monkeypatch):
    url = emulator("esp32")
    path = firmware("esp32")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # a terminal: bars are drawn
    assert cli.main(["flash", "--port", url, "--firmware", str(path)]) == 0
    out, err = capsys.readouterr()
    size = path.stat().st_size
    assert (f"flashing {path} ({size} bytes, ESP32 image) to {url}: board esp32 at 0x1000, "
            f"460800 baud\n") in out
    md5 = hashlib.md5(path.read_bytes()).hexdigest()
    assert (f"flashed {size} bytes (md5 {md5}) to ESP32 at 0x1000, verified against "
            f"{path}, reset") in out
    assert "write: 100%" in err           # the tqdm bar, on stderr
    assert "Connecting" not in out + err  # esptool's chatter is not shown
    assert flash.verify_flash(url, path, "esp32").verified


@pytest.mark.parametrize("board", ["esp32s3", "esp32c3"])
def test_cli_flashes_other_boards_at_offset_zero(emulator, firmware, capsys, board):
    chip = load_board(board).chip
    url = emulator(chip)
    path = firmware(chip)
    assert cli.main(["flash", "--port", url, "--firmware", str(path), "--board", board,
                     "--erase", "--baud", "230400"]) == 0
    out, _err = capsys.readouterr()
    assert f"board {board} at 0x0, 230400 baud, erasing first" in out
    assert "at 0x0, verified" in out


def test_cli_quiet_prints_nothing(emulator, firmware, capsys):
    url = emulator("esp32")
    assert cli.main(["flash", "--port", url, "--firmware", str(firmware("esp32")),
                     "--quiet"]) == 0
    assert capsys.readouterr() == ("", "")


def test_cli_verbose_shows_esptool_messages_above_the_bar(emulator, firmware, capsys,
                                                         monkeypatch):
    url = emulator("esp32")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert cli.main(["flash", "--port", url, "--firmware", str(firmware("esp32")),
                     "--verbose"]) == 0
    err = capsys.readouterr().err
    # Each message is a line of its own, never spliced into the bar's line.
    lines = re.split(r"[\r\n]+", err)
    assert "esptool: Stub flasher running." in lines
    assert "esptool: Hash of data verified." in lines
    assert any(line.startswith("write: 100%") for line in lines)


@pytest.mark.parametrize("args, message", [
    (["--firmware", "{missing}"], "prune8 flash: error: cannot read firmware {missing}"),
    (["--firmware", "{c3}"], "is an image for ESP32-C3 (chip id 5), but board profile 'esp32'"),
    (["--firmware", "{esp32}", "--baud", "0"], "baud rate must be a positive integer, got 0"),
    (["--firmware", "{esp32}", "--board", "esp99"], "unknown board 'esp99'"),
])
def test_cli_refusals_are_one_line_with_status_2(firmware, tmp_path, capsys, args, message):
    names = {"missing": str(tmp_path / "missing.bin"), "c3": str(firmware("esp32c3")),
             "esp32": str(firmware("esp32"))}
    args = [a.format(**names) for a in args]
    port = f"socket://127.0.0.1:{_closed_port()}"
    assert cli.main(["flash", "--port", port, *args]) == 2
    out, err = capsys.readouterr()
    assert out == ""  # refused before announcing anything
    assert message.format(**names) in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_cli_unreachable_port_from_the_installed_script(firmware, tmp_path):
    """The console script end to end: one line on stderr naming the port, status 2."""
    port = str(tmp_path / "ttyUSB9")
    script = Path(sys.executable).with_name("prune8")
    result = subprocess.run([str(script), "flash", "--port", port, "--firmware",
                             str(firmware("esp32")), "--quiet"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (f"prune8 flash: error: no board answered on {port}: cannot open "
                             f"it (No such file or directory); check the cable, and that "
                             f"--port names the board's serial device\n")


def test_cli_help_explains_each_option_in_one_line(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")  # argparse wraps help text to the terminal width
    assert cli.main(["flash", "--help"]) == 0
    out = capsys.readouterr().out
    lines = out.split("options:\n", 1)[1].splitlines()
    options = [line.split()[0].rstrip(",") for line in lines if line.startswith("  -")]
    assert options == ["-h", "--port", "--firmware", "--board", "--erase", "--baud",
                       "--quiet", "--verbose"]
    # Every line under "options:" starts an option: no explanation wraps onto a second.
    assert all(line.startswith("  -") for line in lines if line.strip())
