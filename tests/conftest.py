"""Shared pytest options and fixtures: virtual boards (prune8_host.vboard) for tests
that need a board, and the size of the firmware-vs-twin differential runs."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings

from prune8_host.device.build import build_firmware
from prune8_host.device.deploy import deploy
from prune8_host.device.session import BoardSession
from prune8_host.vboard import VirtualBoard


@pytest.fixture(scope="session")
def vboard():
    """One running, unpaced virtual ESP32 for the whole session (its flash is a fresh
    temporary directory; tests share it, so use distinct file names)."""
    with VirtualBoard(board="esp32", baud=0) as vb:
        yield vb


@pytest.fixture(scope="session")
def firmware(tmp_path_factory):
    """The esp32 bytecode build of the firmware as it is in this checkout, built once."""
    return build_firmware("esp32", out_root=tmp_path_factory.mktemp("build"))


@pytest.fixture(scope="session")
def deployed_flash(firmware, tmp_path_factory):
    """A virtual board's flash after `prune8 deploy` of `firmware`, made once: boards that
    need the firmware start from a copy of it (a board's flash is a host directory) rather
    than deploying again, which takes seconds a board. Deploying itself is tested where
    it is the subject (test_board_transfer, test_cli's demo, test_mip)."""
    flash = tmp_path_factory.mktemp("deployed-flash")
    with VirtualBoard(board="esp32", baud=0, flash_dir=flash) as vb:
        with BoardSession(vb.port, check_firmware=False) as s:
            deploy(s, firmware, quiet=True)
    return flash


def flash_copy(template: Path, dest: Path) -> Path:
    """A fresh board flash directory at dest holding what template holds."""
    shutil.copytree(template, dest)
    return dest


@pytest.fixture(scope="module")
def deployed_vboard(deployed_flash, tmp_path_factory):
    """An unpaced virtual ESP32 with the current firmware deployed, one per test module
    (its tests share the board's filesystem)."""
    flash = flash_copy(deployed_flash, tmp_path_factory.mktemp("board") / "flash")
    with VirtualBoard(board="esp32", baud=0, flash_dir=flash) as vb:
        yield vb


@pytest.fixture
def fresh_vboard(request, tmp_path):
    """Factory for virtual boards of one test: fresh_vboard(deployed=False, **VirtualBoard
    kwargs); deployed=True starts it with the firmware deployed. Unpaced unless baud= is
    given; all are stopped when the test ends."""
    boards: list[VirtualBoard] = []

    def make(deployed: bool = False, **kwargs) -> VirtualBoard:
        kwargs.setdefault("baud", 0)
        if deployed:
            template = request.getfixturevalue("deployed_flash")  # made at first use
            kwargs["flash_dir"] = flash_copy(template, tmp_path / f"flash{len(boards)}")
        vb = VirtualBoard(**kwargs)
        boards.append(vb)
        return vb.start()

    yield make
    for vb in boards:
        vb.stop()




# Hypothesis keeps no example database: a warm checkout replaying its own saved examples
# would run other inputs than a fresh clone does. A failure prints its seed
# (`@seed(...)` / --hypothesis-seed) and its shrunk example instead.
settings.register_profile("prune8", database=None, print_blob=True)
settings.load_profile("prune8")

# The whole suite (`make test`, or pytest with no paths, -k or -m of its own) runs at
# least this many tests; fewer means a module failed to collect or skipped itself whole,
# which must not pass as a short green run. Lower it only when tests are removed on
# purpose.
FULL_SUITE_MIN_TESTS = 1200
_selected: int | None = None


def pytest_collection_finish(session):
    """Where the tests are collected: this process, or each pytest-xdist worker."""
    global _selected
    _selected = len(session.items)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node, ids):
    """pytest-xdist's controller: what a worker collected (every worker collects all)."""
    global _selected
    _selected = len(ids)


def pytest_sessionfinish(session, exitstatus):
    config = session.config
    if hasattr(config, "workerinput") or _selected is None:
        return  # an xdist worker: the controller decides
    whole = (config.args_source == pytest.Config.ArgsSource.TESTPATHS
             and not config.option.keyword
             and config.option.markexpr == "not peers and not slow")
    if whole and _selected < FULL_SUITE_MIN_TESTS:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        reporter.write("\n")  # after xdist's progress dots, which leave the line open
        reporter.write_line(
            f"FAILED: the suite collected {_selected} tests, fewer than the "
            f"{FULL_SUITE_MIN_TESTS} it has: a test module failed to import or skipped "
            f"itself (see above). tests/conftest.py's FULL_SUITE_MIN_TESTS is lowered only "
            f"when tests are removed on purpose.", red=True, bold=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_addoption(parser):
    # 300 examples: 15 single-line bugs seeded in the firmware (tie rules, selection,
    # saturation, rounding, min_keep, mask bits) each failed the suite at 300 examples
    # in every hypothesis seed tried; the three that needed 2000 are now caught by
    # targeted tests. A deeper run: --firmware-examples=5000.
    parser.addoption(
        "--firmware-examples", type=int, default=None,
        help="hypothesis examples per firmware-vs-twin differential test "
             "(default 300, or $PRUNE8_FIRMWARE_EXAMPLES)")


def pytest_configure(config):
    # The per-user caches (firmware builds, the default virtual board's flash) of this
    # test session are its own: tests neither see nor change the user's.
    if "PRUNE8_TEST_CACHE" not in os.environ:
        os.environ["PRUNE8_TEST_CACHE"] = tempfile.mkdtemp(prefix="prune8-test-cache-")
        os.environ["XDG_CACHE_HOME"] = os.environ["PRUNE8_TEST_CACHE"]
    # Test modules read the count at import (hypothesis settings are decorators),
    # which happens after this hook.
    n = config.getoption("--firmware-examples")
    if n is not None:
        os.environ["PRUNE8_FIRMWARE_EXAMPLES"] = str(n)


def pytest_unconfigure(config):
    cache = os.environ.get("PRUNE8_TEST_CACHE")
    if cache and os.environ.get("XDG_CACHE_HOME") == cache:
        shutil.rmtree(cache, ignore_errors=True)
