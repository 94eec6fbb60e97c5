"""Slowness is normal, silence is the fault (device/patience.py; docs/protocol.md,
"Waiting"): a board that answers late is waited for, on a virtual board made slow on
purpose. The link's own cases (a board stalled mid-push, one silent past the bound) run
on CPython in tests/firmware/test_link.py.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time

import pytest

from prune8_host.boards import load_board
from prune8_host.device.session import BoardSession
from prune8_host.device.workflow import prune, pull, push
from prune8_host.files.model import load_model
from prune8_host.twin.layer import PruneOptions

MODEL = "examples/digits_mlp.npz"
RAW_PASTE = b"\x05A\x01"  # mpremote asks for raw-paste mode before every command


class Stall:
    """An rx_hook that holds the board's line for `seconds` when a chunk holds `marker`
    (at most `times` times): a board busy (a flash erase, a slow CPU) right when it
    should answer."""

    def __init__(self, marker: bytes, seconds: float, times: int = 1 << 30):
        self.marker, self.seconds, self.times = marker, seconds, times
        self.stalls = 0

    def __call__(self, data: bytes) -> bytes:
        if self.marker in data and self.stalls < self.times:
            self.stalls += 1
            time.sleep(self.seconds)
        return data


def test_a_board_slow_to_answer_each_command_is_waited_for(fresh_vboard):
    """Half a second before each answer (mpremote's own reads last 0.1 s): commands,
    a push and a prune all complete."""
    vb = fresh_vboard(deployed=True)
    stall = Stall(RAW_PASTE, 0.5)
    vb.rx_hook = stall
    model = load_model(MODEL)
    with BoardSession(vb.port) as s:
        assert s.exec("print(6 * 7)").strip() == "42"
        push(s, model, quiet=True)
        prune(s, PruneOptions("magnitude", sparsity_bp=5000))
        _, masks = pull(s, quiet=True)
    assert [m.name for m in masks] == list(model) and stall.stalls >= 4


def test_a_board_stalled_past_the_resend_time_mid_push_still_receives_it(fresh_vboard):
    """A 3 s stall in the middle of a push (longer than the 2 s after which the host
    resends, shorter than the 10 s of silence it allows a flash write): frames are sent
    again and applied once; the board holds exactly the model."""
    vb = fresh_vboard(deployed=True)
    model = load_model(MODEL)
    first = model.record(next(iter(model))).data
    stall = Stall(first[256:272], 3.0, times=1)  # a piece of the second DATA frame
    vb.rx_hook = stall
    with BoardSession(vb.port) as s:
        report = push(s, model, quiet=True)
        listing = s.call_json("from prune8 import status; status.ls()")
    assert stall.stalls >= 1 and report["retries"] >= 1
    assert {e["name"]: e["crc"] for e in listing["model"]["layers"]} == \
        {n: model.record(n).crc for n in model}


def test_a_board_at_its_flash_worst_case_takes_a_push_and_a_prune(fresh_vboard):
    """The profile's flash at the datasheet's maximum (400 ms per sector erase, 3 ms
    per page), paced at 115,200 baud: push, prune and pull pass."""
    worst = dataclasses.replace(load_board("esp32"), flash_erase_us=400_000,
                                flash_program_us=3000)
    vb = fresh_vboard(deployed=True, board=worst, baud=115200)
    assert vb.timed
    model = load_model(MODEL)
    with BoardSession(vb.port) as s:
        push(s, model, quiet=True)
        prune(s, PruneOptions("magnitude", sparsity_bp=5000))
        _, masks = pull(s, quiet=True)
    assert [m.name for m in masks] == list(model)


def cli(*argv, timeout=1800):
    return subprocess.run([sys.executable, "-m", "prune8_host.cli", *argv], capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_deploy_run_and_test_board_on_a_paced_board_beside_a_cpu_hog(fresh_vboard, tmp_path):
    """The issue's target: on `prune8 vboard`'s defaults (the profile's baud, flash and
    CPU timing), deploy --port, run --port and test-board --port pass while another
    process keeps a core busy."""
    vb = fresh_vboard(baud=None)
    assert vb.baud == 115200 and vb.timed
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        for argv in (["deploy"], ["run", MODEL, "--sparsity", "0.5", "-o", str(tmp_path / "m.npz"),
                                  "--json"],
                     ["test-board"]):
            r = cli(*argv, "--port", vb.port, "--quiet")
            assert r.returncode == 0, (argv, r.stdout[-2000:], r.stderr[-2000:])
            if argv[0] == "run":
                assert json.loads(r.stdout)["verified"]
    finally:
        hog.kill()
        hog.wait()
    assert os.path.exists(tmp_path / "m.npz")
