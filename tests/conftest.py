"""Shared pytest options and fixtures: virtual boards (prune8_host.vboard) for tests
that need a board, and the size of the firmware-vs-twin differential runs."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

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


@pytest.fixture(scope="module")
def deployed_vboard(tmp_path_factory):
    """An unpaced virtual ESP32 with the current firmware built and deployed, one per
    test module (its tests share the board's filesystem)."""
    build = build_firmware("esp32", out_root=tmp_path_factory.mktemp("build"))
    with VirtualBoard(board="esp32", baud=0) as vb:
        with BoardSession(vb.port, check_firmware=False) as s:
            deploy(s, build, quiet=True)
        yield vb


@pytest.fixture
def fresh_vboard():
    """Factory for virtual boards of one test: fresh_vboard(**VirtualBoard kwargs).
    Unpaced unless baud= is given; all are stopped when the test ends."""
    boards: list[VirtualBoard] = []

    def make(**kwargs) -> VirtualBoard:
        kwargs.setdefault("baud", 0)
        vb = VirtualBoard(**kwargs)
        boards.append(vb)
        return vb.start()

    yield make
    for vb in boards:
        vb.stop()


# tests/board/ holds MicroPython scripts run on a board by the on-board runner
# (prune8_host.device.suite), not CPython test modules.
collect_ignore_glob = ["board/*"]


def pytest_addoption(parser):
    parser.addoption(
        "--firmware-examples", type=int, default=None,
        help="hypothesis examples per firmware-vs-twin differential test "
             "(default 2000, or $PRUNE8_FIRMWARE_EXAMPLES)")


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
