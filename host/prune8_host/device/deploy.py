"""Copy the built firmware (build/<board>/prune8/*.mpy) to /prune8/ on the board.

Each file is written to NAME.tmp and renamed, so an interrupted deploy never leaves a
half-written module; modules left from an older build (or .py sources that would shadow
the .mpy files) are removed. Files travel base64-encoded, CHUNK bytes per raw-REPL
command (a third more bytes on the wire, where the repr() of binary .mpy data that
mpremote's fs_writefile sends is twice their size, in 256-byte commands); the rest
uses mpremote's filesystem commands as a library.
"""

from __future__ import annotations

import base64

from prune8.formats import MANIFEST_PATH, ROOT, TMP_SUFFIX
from prune8_host.boards import load_board
from prune8_host.errors import BoardExecError, BoardUnavailable

from . import calls
from .build import MANIFEST, Build, build_firmware
from .progress import progress_bar
from .session import BoardSession

CHUNK = 2048    # file bytes per command: 2.7 KB of base64, one raw paste, small for the heap


def write_file(session: BoardSession, path: str, data: bytes) -> None:
    """Write `data` to `path` on the board via `path`.tmp, then rename it over `path`."""
    tmp, final = path + TMP_SUFFIX, path
    session.exec(f"from binascii import a2b_base64 as _d\n_f=open({tmp!r},'wb')")
    for i in range(0, len(data), CHUNK):
        session.exec(f"_f.write(_d({base64.b64encode(data[i:i + CHUNK])!r}))")
    session.exec(f"_f.close()\nimport os\ntry:\n os.remove({final!r})\nexcept OSError:\n"
                 f" pass\nos.rename({tmp!r},{final!r})\ndel _f,_d")


def deploy(session: BoardSession, build: Build, quiet: bool = False) -> dict:
    """Install `build` on the board; returns the firmware's info() afterwards."""
    with session.filesystem("deploying the firmware") as t:
        if not t.fs_exists(ROOT):
            t.fs_mkdir(ROOT)
        files = sorted(build.package_dir.iterdir())
        total = sum(p.stat().st_size for p in files)
        with progress_bar(total, "deploy", quiet) as update:
            for path in files:
                dest = f"{ROOT}/{path.name}"
                write_file(session, dest, path.read_bytes())
                if update:
                    update(path.stat().st_size)
        wanted = {p.name for p in files}
        for name, *_ in t.fs_listdir(ROOT):
            if name.endswith((".py", ".mpy")) and name not in wanted:
                t.fs_rmfile(f"{ROOT}/{name}")
        # Which build is on the board: the manifest of its files' hashes.
        write_file(session, MANIFEST_PATH, (build.root / MANIFEST).read_bytes())
    session.exec("import sys\nfor m in list(sys.modules):\n if m.startswith('prune8'):"
                 "\n  del sys.modules[m]")
    try:
        return session.call_json(calls.INFO)
    except BoardUnavailable as e:
        kind = f"native {build.root.name}" if build.native else "bytecode"
        raise BoardUnavailable(f"deployed the {kind} build, but the board cannot import it "
                               f"({e}); a native build only runs on its own chip") from None


def deploy_build(port: str, board, native: bool = False, baud: int | None = None,
                 quiet: bool = True) -> dict:
    """Build the firmware for `board` and deploy it to the board on `port`."""
    profile = load_board(board)
    build = build_firmware(profile, native=native)
    with BoardSession(port, baud=baud or profile.baud, check_firmware=False) as s:
        return deploy(s, build, quiet=quiet)


def deployed_manifest(session: BoardSession) -> str | None:
    """The manifest of the build deployed on the board, or None."""
    try:
        return session.exec(f"print(open({MANIFEST_PATH!r}).read(), end='')")
    except BoardExecError:  # no manifest: an older deploy, or none
        return None
