"""The negotiated baud switch (docs/protocol.md, "Baud switch") on the virtual board,
which emulates it: pacing at the new rate, and line noise where the two sides' rates
differ (prune8_host/vboard/pty_bridge.py).

A push asks for the faster rate for its bulk and is back at the REPL's rate before its
END; a lost confirmation makes both sides fall back and the push goes on at the old
rate; a board reset during the switch is one clear line, an error mid-transfer ends the
receiver at the switched rate; after each, the REPL answers at the profile's baud.
"""

from __future__ import annotations

import struct
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from prune8.protocol import BAUD_CONFIRM, BAUD_FMT
from prune8_host.device.session import BoardSession
from prune8_host.device.workflow import board_listing, push
from prune8_host.errors import BoardError, LinkError
from prune8_host.files.model import load_model, save_model
from prune8_host.twin.layer import Layer

pytestmark = pytest.mark.timeout(600)
SMALL = "examples/digits_mlp.npz"
FAST = 460800


@pytest.fixture
def big(tmp_path):
    """16 KB of weights: 1.4 s of line at 115,200 baud, 0.36 s at 460,800."""
    rng = np.random.default_rng(5)
    path = tmp_path / "big.npz"
    save_model(path, {f"fc{i}": Layer(f"fc{i}", rng.integers(-128, 128, (32, 64)).astype(
        np.int8)) for i in range(8)})
    return load_model(path)


def confirm_bytes(step: int) -> bytes:
    return struct.pack(BAUD_FMT, FAST, 115200, step)


def dropping(marker: bytes, lost: list):
    """A virtual board's rx hook that loses every write holding `marker` (kept in
    `lost`), as a line that garbled it would."""
    def hook(data: bytes) -> bytes:
        if marker in data:
            lost.append(data)
            return b""
        return data
    return hook


def stored(session) -> dict:
    listing = board_listing(session)
    return {l["name"]: l["crc"] for l in (listing["model"] or {"layers": []})["layers"]}


def expected(model) -> dict:
    return {name: model.record(name).crc for name in model}


def repl_answers(vb) -> None:
    with BoardSession(vb.port, baud=115200) as s:
        assert s.exec("print(6 * 7)").strip() == "42"
    assert vb.host_rate == 115200


@pytest.fixture
def board(fresh_vboard):
    """A paced board (the line is what a switch speeds up), without the flash and CPU
    timing, so that the wire is what the push waits for."""
    return lambda **kw: fresh_vboard(deployed=True, board="esp32", baud=115200,
                                     timing=False, **kw)


def test_a_push_switches_for_its_bulk_and_the_repl_is_back_at_the_profile_baud(board, big):
    vb = board()
    model = big
    rates = set()

    def watch(data: bytes) -> bytes:
        rates.add(vb.host_rate)
        return data

    vb.rx_hook = watch
    times = {}
    for switch in (0, FAST):
        with BoardSession(vb.port, baud=115200, baud_switch=switch) as s:
            t0 = time.perf_counter()
            report = push(s, model, quiet=True)
            times[switch] = time.perf_counter() - t0
            assert report["retries"] == 0
            assert stored(s) == expected(model)
            assert s.exec("print(6 * 7)").strip() == "42"  # same session, after the push
    assert rates == {115200, FAST}
    assert vb.board_rate == 115200  # the firmware put its UART back
    # 1.4 s of weights at 115,200 baud against 0.35 s at 460,800
    assert times[FAST] < 0.6 * times[0], times
    repl_answers(vb)


def test_a_lost_confirmation_makes_both_sides_fall_back_and_the_push_goes_on(board):
    """Every confirmation at the new rate is lost: the board goes back after its
    SWITCH_MS, the host after its longer wait, and the push completes at 115,200."""
    vb = board()
    model = load_model(SMALL)
    lost: list = []
    vb.rx_hook = dropping(confirm_bytes(BAUD_CONFIRM), lost)
    with BoardSession(vb.port, baud=115200, baud_switch=FAST) as s:
        push(s, model, quiet=True)
        assert stored(s) == expected(model)
    assert lost and vb.board_rate == 115200
    repl_answers(vb)


def test_a_lost_confirmation_on_the_way_back_still_ends_at_the_repl_rate(board):
    """The confirmation of the switch back before END is lost: both stay at the fast
    rate for END, the receiver goes back to the REPL's rate as it ends, and so does the
    host's port, so the same session's next command is answered (it once read the raw
    REPL's banner at the wrong rate and failed)."""
    vb = board()
    model = load_model(SMALL)
    lost: list = []
    vb.rx_hook = dropping(struct.pack(BAUD_FMT, 115200, FAST, BAUD_CONFIRM), lost)
    with BoardSession(vb.port, baud=115200, baud_switch=FAST) as s:
        push(s, model, quiet=True)
        vb.rx_hook = None
        assert s.exec("print(6 * 7)").strip() == "42"
        assert stored(s) == expected(model)
    assert lost and vb.board_rate == 115200
    repl_answers(vb)


def test_a_board_reset_during_the_switch_is_one_clear_line_and_the_repl_is_usable(board, big):
    vb = board()
    old, new = load_model(SMALL), big
    with BoardSession(vb.port, baud=115200) as s:
        push(s, old, quiet=True)

    def reset_at_the_confirmation(data: bytes) -> bytes:
        # the board has answered the request and changed rate: reset it right then
        if confirm_bytes(BAUD_CONFIRM) in data:
            vb.rx_hook = None
            threading.Thread(target=vb.hard_reset, daemon=True).start()
            return b""
        return data

    vb.rx_hook = reset_at_the_confirmation
    with BoardSession(vb.port, baud=115200, baud_switch=FAST) as s:
        with pytest.raises((LinkError, OSError)) as info:
            push(s, new, quiet=True)
    message = str(info.value)
    assert "\n" not in message and "reset" in message, message
    time.sleep(1)
    repl_answers(vb)
    with BoardSession(vb.port, baud=115200) as s:
        assert stored(s) == expected(old)  # nothing of the new model was committed


def test_an_error_at_the_switched_rate_ends_the_receiver_and_the_repl_answers(board, big):
    """The board refuses a frame mid-push (its flash is full) while switched: the host
    aborts, both go back, the error is the board's, nothing is committed."""
    model = big
    vb = board()
    with BoardSession(vb.port, baud=115200) as s:
        free = s.info["fs_free"]
        # leave 8 KB: the 16 KB model runs out of flash half-way through its DATA
        s.exec(f"f=open('/fill.bin','wb')\nf.write(bytes({free - 8192}))\nf.close()")
    with BoardSession(vb.port, baud=115200, baud_switch=FAST, check_firmware=True) as s:
        s.info["fs_free"] = None  # past the host's own space check: the board refuses
        with pytest.raises(BoardError) as info:
            push(s, model, quiet=True)
    assert "\n" not in str(info.value)
    repl_answers(vb)
    with BoardSession(vb.port, baud=115200) as s:
        assert stored(s) == {}


def test_baud_switch_option_on_the_command_line(board):
    bad = subprocess.run([sys.executable, "-m", "prune8_host.cli", "push", SMALL,
                          "--baud-switch", "123456"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--baud-switch must be off or one of" in bad.stderr
    vb = board()
    for value in ("off", str(FAST)):
        r = subprocess.run([sys.executable, "-m", "prune8_host.cli", "push", SMALL, "--port",
                            vb.port, "--baud", "115200", "--baud-switch", value, "--quiet"],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
    repl_answers(vb)


def test_the_board_goes_back_only_after_the_host_would_have_resent_and_before_the_repl_wait():
    """IDLE_MS sits between the host's resend time (a live host is never silent that
    long) and the REPL wait after which a new session ends an orphaned receiver."""
    from prune8.protocol import IDLE_MS, SWITCH_MS
    from prune8_host.device import link, patience
    assert 2 * patience.RESEND_S <= IDLE_MS / 1000 < patience.REPL_S
    assert link.CONFIRM_S > SWITCH_MS / 1000
