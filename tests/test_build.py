"""The firmware compiles with mpy-cross for every board profile, bytecode and native.

A construct the native emitter rejects fails here, in CI, not on a user's board.
"""

import json

import pytest

from prune8_host.boards import board_names, load_board
from prune8_host.device.build import build_firmware, firmware_sources

# .mpy header byte 2 holds the native arch in its top 6 bits (py/persistentcode.h:
# MP_NATIVE_ARCH_XTENSAWIN = 10, MP_NATIVE_ARCH_RV32IMC = 11) and the sub-version below.
ARCH_IDS = {"xtensawin": 10, "rv32imc": 11}


@pytest.mark.parametrize("native", [False, True], ids=["bytecode", "native"])
@pytest.mark.parametrize("board", board_names())
def test_build_every_module_for_every_board(tmp_path, board, native):
    profile = load_board(board)
    b = build_firmware(board, native=native, out_root=tmp_path)
    names = sorted(p.stem + ".mpy" for p in firmware_sources())
    assert sorted(p.name for p in b.package_dir.iterdir()) == names
    for mpy in b.package_dir.iterdir():
        header = mpy.read_bytes()[:4]
        assert header[:2] == b"M\x06"          # .mpy format version 6
        assert header[3] == 31                 # small ints of 31 bits, as on the ESP32
        arch = header[2] >> 2
        assert arch == (ARCH_IDS[profile.mpy_arch] if native else 0), mpy.name
        if native:
            assert header[2] & 3 == 3          # sub-version 6.3: MicroPython >= 1.23
    manifest = json.loads((b.root / "manifest.json").read_text())
    assert manifest["board"] == board and manifest["native"] is native
    assert set(manifest["files"]) == set(names)


def test_profile_module_carries_the_profile_capacity(tmp_path):
    b = build_firmware("esp32s3", out_root=tmp_path)
    text = (b.root / "manifest.json").read_text()
    assert "esp32s3" in text
    # profile.py is generated from the profile, so its .mpy differs between boards
    other = build_firmware("esp32", out_root=tmp_path / "o")
    assert b.files["profile.mpy"] != other.files["profile.mpy"]
    assert b.files["pruner.mpy"] == other.files["pruner.mpy"]
