"""Shared pytest options for the prune8 suite."""

import os

# tests/board/ holds MicroPython scripts run on a board by the on-board runner
# (prune8_host.board_tests), not CPython test modules.
collect_ignore_glob = ["board/*"]


def pytest_addoption(parser):
    parser.addoption(
        "--firmware-examples", type=int, default=None,
        help="hypothesis examples per firmware-vs-twin differential test "
             "(default 2000, or $PRUNE8_FIRMWARE_EXAMPLES)")


def pytest_configure(config):
    # Test modules read the count at import (hypothesis settings are decorators),
    # which happens after this hook.
    n = config.getoption("--firmware-examples")
    if n is not None:
        os.environ["PRUNE8_FIRMWARE_EXAMPLES"] = str(n)
