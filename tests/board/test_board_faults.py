"""What the board tools say when the board is not as expected (virtual board faults).

No answer within a timeout, a busy port, a port with no MicroPython, an older
MicroPython, firmware not deployed, and a board that resets mid-run: each gives one
sentence naming what is wrong and what to do, never a traceback."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest
from mpremote.transport_serial import SerialTransport

from prune8_host.device.session import BoardSession
from prune8_host.errors import BoardUnavailable

pytestmark = pytest.mark.timeout(300)


def cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "prune8_host.cli", *args],
                          capture_output=True, text=True, timeout=timeout)


def one_line_error(proc, fragment):
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_silent_port_no_answer_within_the_timeout(fresh_vboard):
    vb = fresh_vboard(mode="silent")
    with pytest.raises(BoardUnavailable, match="no MicroPython REPL answered") as info:
        BoardSession(vb.port, timeout=2).open()
    assert "prune8 flash" in str(info.value) and "--port" in str(info.value)
    one_line_error(cli("ls", "--port", vb.port), "no MicroPython REPL answered")


def test_busy_port_is_named(fresh_vboard):
    vb = fresh_vboard()
    holder = SerialTransport(vb.port, baudrate=115200)  # exclusive, as mpremote opens it
    try:
        with pytest.raises(BoardUnavailable, match="is busy"):
            BoardSession(vb.port).open()
        one_line_error(cli("ls", "--port", vb.port), "is busy")
    finally:
        holder.close()


def test_missing_port_suggests_port():
    one_line_error(cli("ls", "--port", "/dev/ttyUSB-not-there"), "--port names the board")


def test_older_micropython_is_refused(fresh_vboard):
    vb = fresh_vboard(micropython_version=(1, 19, 1))
    with pytest.raises(BoardUnavailable, match="MicroPython 1.19.1 .* older than 1.22.0"):
        BoardSession(vb.port).open()


def test_firmware_not_deployed_says_deploy(fresh_vboard):
    vb = fresh_vboard()
    with pytest.raises(BoardUnavailable, match="prune8 deploy --port"):
        BoardSession(vb.port).open()
    one_line_error(cli("push", "examples/example_model.npz", "--port", vb.port),
                   "not deployed")


def test_board_reset_mid_run_is_reported_at_once(fresh_vboard):
    vb = fresh_vboard()
    with BoardSession(vb.port, check_firmware=False) as s:
        timer = threading.Timer(1.0, vb.hard_reset)
        timer.start()
        with pytest.raises(BoardUnavailable, match="reset while running"):
            s.exec("while True:\n print('.', end='')", timeout=120)
        timer.join()
    with BoardSession(vb.port, check_firmware=False) as s:  # and it can be used again
        assert s.exec("print(6 * 7)").strip() == "42"


def test_test_board_reports_a_reset_mid_run(fresh_vboard):
    vb = fresh_vboard()
    # The reset lands while a suite script runs: half a second after the board has
    # received test_golden's code (it runs for seconds). A reset at a fixed time once
    # fell between two scripts' parts, where the next part's soft reset absorbs it and
    # the run rightly passes.
    reset = threading.Timer(0.5, vb.hard_reset)
    seen = bytearray()

    def watch(data: bytes) -> bytes:
        if not reset.is_alive() and not reset.finished.is_set():
            seen.extend(data)
            del seen[:-4096]
            if b"GOLDEN_CASE" in seen:
                reset.start()
        return data
    vb.rx_hook = watch
    proc = subprocess.Popen([sys.executable, "-m", "prune8_host.cli", "test-board", "--port",
                             vb.port, "--quiet"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=300)
    assert reset.is_alive() or reset.finished.is_set(), "test_golden's code never came"
    reset.join()  # the board is back up before the fixture powers it off
    assert proc.returncode != 0
    assert "reset" in out + err and "Traceback" not in err
