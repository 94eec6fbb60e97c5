"""A host killed (kill -9) in the middle of a command leaves the board usable.

A prune8 command runs in a subprocess whose HostLink kills its own process right after
the board acknowledged the first frame of one type, with the next frames in flight: during a push (BEGIN, LAYER, DATA,
KEEP, END), a pull (READ) and an evaluation (IMAGES). The board is left in a receiver
with Ctrl-C off. The next command on the same port, and mpremote, must work at once,
and the stored model must be the one that was committed: the old one, or the new one
once END was acknowledged.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from prune8.protocol import BEGIN, DATA, END, IMAGES, KEEP, LAYER, READ
from prune8_host.device.session import BoardSession
from prune8_host.device.workflow import board_listing, prune, push
from prune8_host.files.model import load_model, save_model
from prune8_host.twin.layer import PruneOptions

pytestmark = pytest.mark.timeout(600)
MODEL = "examples/digits_mlp.npz"   # quantized, so eval runs on it
TEST = "examples/digits_test.npz"

# Runs prune8 with HostLink.exchange killing its process after the board acknowledged
# (or answered) the first frame of type argv[1], with the frames after it in flight (as
# many as the window holds), so the host dies mid-window. An END among them is held
# back: one that went out commits the push, which the "end" case covers.
KILLER = """
import os, signal, sys
from prune8_host.device import link
target = int(sys.argv[1])
exchange = link.HostLink.exchange
def exchange_then_die(self, frames):
    frames = list(frames)
    for i, (ftype, payload) in enumerate(frames):
        if ftype == target:
            exchange(self, frames[:i + 1])
            for j, (t, p) in enumerate(frames[i + 1:i + self.window]):
                if t != link.END:
                    self._write(link.frame(t, self.seq + j, p))
            os.kill(os.getpid(), signal.SIGKILL)
    return exchange(self, frames)
link.HostLink.exchange = exchange_then_die
from prune8_host.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.fixture(scope="module")
def board(deployed_vboard):
    return deployed_vboard


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """The model the board holds (old) and the one a killed push sends (new)."""
    old = load_model(MODEL)
    new = old.with_weights({n: (-l.weights.astype(np.int16)).clip(-128, 127).astype(np.int8)
                            for n, l in old.items()})
    path = tmp_path_factory.mktemp("models") / "new.npz"
    save_model(path, new)
    return old, new, str(path)


def model_id(port) -> int:
    with BoardSession(port) as s:
        return board_listing(s)["model"]["id"]


CASES = {  # frame type -> (command after the model, committed: is the new model stored)
    "begin": (BEGIN, ["push", "NEW"], False),
    "layer": (LAYER, ["push", "NEW"], False),
    "data": (DATA, ["push", "NEW"], False),
    "keep": (KEEP, ["push", "NEW", "--layer", "fc1"], False),
    "end": (END, ["push", "NEW"], True),
    "pull": (READ, ["pull", "-o", "OUT"], False),
    "eval": (IMAGES, ["eval", MODEL, "--test", TEST], False),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_killed_host_leaves_the_board_usable(board, models, tmp_path, case):
    old, new, new_path = models
    with BoardSession(board.port) as s:
        old_id = push(s, old, quiet=True)["model_id"]
        prune(s, PruneOptions("magnitude", sparsity_bp=5000))
    ftype, argv, committed = CASES[case]
    argv = [new_path if a == "NEW" else str(tmp_path / "m.npz") if a == "OUT" else a
            for a in argv]
    killed = subprocess.run([sys.executable, "-c", KILLER, str(ftype), *argv, "--port",
                             board.port, "--quiet"], capture_output=True, text=True,
                            timeout=300)
    assert killed.returncode == -9, killed.stderr  # it did die at that frame

    # the next command on the same port works, and so does mpremote
    after = subprocess.run([sys.executable, "-m", "prune8_host.cli", "ls", "--port",
                            board.port, "--json", "--quiet"], capture_output=True, text=True,
                           timeout=120)
    assert after.returncode == 0, after.stderr
    listing = json.loads(after.stdout)
    mp = subprocess.run([sys.executable, "-m", "mpremote", "connect", board.port, "exec",
                         "print(6 * 7)"], capture_output=True, text=True, timeout=120)
    assert mp.stdout.strip() == "42", mp.stderr
    # and the stored model is the committed one, whole
    with BoardSession(board.port) as s:
        new_id = push(s, new, quiet=True)["model_id"]
        push(s, old, quiet=True)
    assert listing["model"]["id"] == (new_id if committed else old_id)
    assert [(entry["name"], entry["rows"], entry["cols"]) for entry in
            listing["model"]["layers"]] == [(n, *l.weights.shape) for n, l in old.items()]
    assert not any(name.endswith(".tmp") for name, _ in listing["files"])
