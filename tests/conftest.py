"""Shared fixtures: virtual boards (prune8_host.vboard) for tests that need a board."""

from __future__ import annotations

import pytest

from prune8_host.vboard import VirtualBoard


@pytest.fixture(scope="session")
def vboard():
    """One running, unpaced virtual ESP32 for the whole session (its flash is a fresh
    temporary directory; tests share it, so use distinct file names)."""
    with VirtualBoard(board="esp32", baud=0) as vb:
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
