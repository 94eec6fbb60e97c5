"""The wheel carries everything `prune8` runs, and nothing of the checkout: built with
`pip wheel`, unpacked outside the checkout and run from another directory, it runs the
on-board suite on a virtual board (its scripts are package data) and the demo (its
example model is built in memory)."""

import os
import subprocess
import sys
import zipfile

import pytest

from support import ROOT

pytestmark = pytest.mark.timeout(600)
CLI = "import sys, prune8_host.cli as c; sys.exit(c.main(sys.argv[1:]))"


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The wheel's packages unpacked into a directory of their own (its dependencies are
    this environment's), with a scratch directory to run from."""
    d = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(d),
                    str(ROOT)], check=True, capture_output=True)
    wheel = next(d.glob("prune8-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        z.extractall(d / "site")
    (d / "elsewhere").mkdir()
    return d, names


def run(installed, *args, code=CLI):
    d, _ = installed
    env = {"PYTHONPATH": str(d / "site"), "PATH": os.environ["PATH"],
           "XDG_CACHE_HOME": str(d / "cache"), "HOME": str(d)}
    return subprocess.run([sys.executable, "-c", code, *args], cwd=d / "elsewhere", env=env,
                          capture_output=True, text=True, timeout=600)


def test_the_wheel_holds_the_suite_and_no_research_or_test_code(installed):
    _, names = installed
    assert "prune8_host/suite/scripts/test_golden.py" in names
    assert "prune8_host/suite/scripts/measure.py" in names
    assert not [n for n in names if n.startswith(("prune8_eval/", "support/", "tests/"))
                or "/study/" in n]


def test_the_installed_package_runs_the_on_board_suite_and_the_demo(installed):
    d, _ = installed
    where = run(installed, code="import prune8, prune8_host; print(prune8.__file__, "
                                "prune8_host.__file__)")
    assert where.stdout.split() == [str(d / "site" / "prune8" / "__init__.py"),
                                    str(d / "site" / "prune8_host" / "__init__.py")]
    suite = run(installed, "test-board", "--only", "test_heap", "--quiet")
    assert suite.returncode == 0 and "1 passed, 0 failed" in suite.stderr, \
        suite.stdout + suite.stderr
    demo = run(installed, "demo", "--quiet", "--json")
    assert demo.returncode == 0, demo.stdout + demo.stderr
