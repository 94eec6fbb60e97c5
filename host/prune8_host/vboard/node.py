"""Find Node.js and the pinned MicroPython WebAssembly package the virtual board runs.

The npm dependency is declared in package.json / package-lock.json beside this file.
`make install` runs `npm ci` here; when node_modules is missing (e.g. an install that
did not go through make), `micropython_module()` runs `npm ci` itself into a per-user
cache directory keyed by the lock file, so a changed lock gets a fresh install.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from prune8_host.errors import NodeSetupError

PKG_DIR = Path(__file__).resolve().parent
MP_PACKAGE = "@micropython/micropython-webassembly-pyscript"
MP_VERSION = "1.27.0"  # must match package.json / package-lock.json
MIN_NODE_MAJOR = 18
VBOARD_MJS = PKG_DIR / "vboard.mjs"
VM_INIT_PY = PKG_DIR / "vm_init.py"


def _install_hint() -> str:
    return f"run 'make install' in the project, or 'npm ci' in {PKG_DIR}"


def find_node() -> str:
    """Path of a Node.js >= 18 (PRUNE8_NODE overrides the one on PATH)."""
    node = os.environ.get("PRUNE8_NODE") or shutil.which("node")
    if not node:
        raise NodeSetupError(f"the virtual board needs Node.js >= {MIN_NODE_MAJOR}, "
                             "and no 'node' is on PATH (or set PRUNE8_NODE)")
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True,
                             timeout=30, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError) as e:
        raise NodeSetupError(f"cannot run {node} --version: {e}") from None
    m = re.match(r"v(\d+)\.", out)
    if not m or int(m.group(1)) < MIN_NODE_MAJOR:
        raise NodeSetupError(f"the virtual board needs Node.js >= {MIN_NODE_MAJOR}, "
                             f"but {node} is {out or 'of unknown version'}")
    return node


def _module_in(base: Path) -> Path | None:
    """micropython.mjs under base/node_modules if it is the pinned version."""
    pkg = base / "node_modules" / MP_PACKAGE
    try:
        version = json.loads((pkg / "package.json").read_text(encoding="utf-8"))["version"]
    except (OSError, ValueError, KeyError):
        return None
    if version != MP_VERSION or not (pkg / "micropython.mjs").is_file():
        return None
    return pkg / "micropython.mjs"


def cache_dir() -> Path:
    """Where `npm ci` goes when the package directory has no node_modules."""
    lock = (PKG_DIR / "package-lock.json").read_bytes()
    root = os.environ.get("PRUNE8_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "prune8")
    return Path(root) / "vboard-node" / hashlib.sha256(lock).hexdigest()[:16]


@contextlib.contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # several boards may start at once
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _npm_ci(dest: Path) -> None:
    npm = shutil.which("npm")
    if not npm:
        raise NodeSetupError(f"{MP_PACKAGE} is not installed and there is no 'npm' to "
                             f"install it; {_install_hint()}")
    # Install into a scratch directory and rename it into place, so a cut-short install
    # never looks complete.
    scratch = Path(tempfile.mkdtemp(prefix=".npm-", dir=dest.parent))
    try:
        for name in ("package.json", "package-lock.json"):
            shutil.copy2(PKG_DIR / name, scratch / name)
        proc = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
                              cwd=scratch, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            raise NodeSetupError(f"'npm ci' for the virtual board failed in {scratch}:\n"
                                 f"{proc.stderr.strip()[-2000:]}\n{_install_hint()}")
        if dest.exists():
            shutil.rmtree(dest)
        scratch.rename(dest)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def micropython_module(install: bool = True) -> Path:
    """Path of the pinned micropython.mjs, installing it into the cache if needed."""
    found = _module_in(PKG_DIR)
    if found:
        return found
    cache = cache_dir()
    found = _module_in(cache)
    if found:
        return found
    if not install:
        raise NodeSetupError(f"{MP_PACKAGE} {MP_VERSION} is not installed; {_install_hint()}")
    with _locked(cache.parent / (cache.name + ".lock")):
        found = _module_in(cache)  # another process may have installed it meanwhile
        if not found:
            _npm_ci(cache)
            found = _module_in(cache)
    if not found:
        raise NodeSetupError(f"'npm ci' did not install {MP_PACKAGE} {MP_VERSION} "
                             f"into {cache}; {_install_hint()}")
    return found
