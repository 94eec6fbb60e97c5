"""The version is written once (firmware/prune8/__init__.py) and read everywhere else:
the installed distribution, the host package, `prune8 --version`, micropython-lib's
manifest."""

import contextlib
import io
import os
import re
import sys
from importlib import metadata

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

import prune8
import prune8_host
from prune8_host.cli import main
from support import ROOT


def test_one_version_everywhere():
    assert re.fullmatch(r"\d+\.\d+\.\d+", prune8.__version__)
    assert prune8_host.__version__ == prune8.__version__
    assert metadata.version("prune8") == prune8.__version__
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "version" not in project and project["dynamic"] == ["version"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        main(["--version"])
    assert out.getvalue().strip() == f"prune8 {prune8.__version__}"


def test_manifest_freezes_the_package_with_its_version():
    # as MicroPython's manifest tool runs it: from its own directory, with its functions
    seen = {}
    scope = {"metadata": lambda **kw: seen.update(kw),
             "package": lambda name, **kw: seen.setdefault("packages", []).append(name)}
    cwd = os.getcwd()
    os.chdir(ROOT / "firmware")
    try:
        exec((ROOT / "firmware" / "manifest.py").read_text(), scope)
    finally:
        os.chdir(cwd)
    assert seen["version"] == prune8.__version__
    assert seen["packages"] == ["prune8"]
