"""Pushing to, pruning on and pulling from the virtual board, with faults.

Each fault must give a clear message, leave no partial model or mask committed on the
board, and a retried command must finish with the right result (issue: push weights,
prune on the board, read masks back). The board is the real MicroPython VM behind a
pty; faults are injected into its receive path (VirtualBoard.rx_hook), its power
(hard_reset), its flash capacity (flash_bytes) and the host process (SIGKILL).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from prune8 import errors
from prune8_host.device.session import BoardSession
from prune8_host.device.workflow import board_listing, prune, pull, push, verify_on_board
from prune8_host.errors import BoardError, LinkError
from prune8_host.files.model import Model, load_model, save_model
from prune8_host.twin.layer import Layer, PruneOptions

pytestmark = pytest.mark.timeout(600)
EXAMPLE = "examples/example_model.npz"
# A run of weight bytes that appears once in the pushed data: the fault hooks find the
# frame carrying it and damage that frame only.
MARKER = bytes([0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77])
BP = 5000


def firmware_bytes(build) -> int:
    """Bytes the deployed firmware takes on the board's filesystem (its files' sizes)."""
    return sum(f.stat().st_size for f in build.root.rglob("*") if f.is_file())


@pytest.fixture
def board(fresh_vboard):
    """A fresh virtual board with the firmware deployed: board(**VirtualBoard kwargs)."""
    return lambda **kwargs: fresh_vboard(deployed=True, board="esp32", **kwargs)


def marked_model(seed=0) -> Model:
    """The example model with MARKER written into fc1's weights."""
    model = load_model(EXAMPLE)
    rng = np.random.default_rng(seed)
    w = rng.integers(-128, 128, model["fc1"].weights.shape).astype(np.int8)
    w.reshape(-1)[700:700 + len(MARKER)] = np.frombuffer(MARKER, np.int8)
    return model.with_weights({"fc1": w})


def stored(session) -> dict:
    listing = board_listing(session)
    return {l["name"]: l["crc"] for l in (listing["model"] or {"layers": []})["layers"]}


def expected(model) -> dict:
    return {name: model.record(name).crc for name in model}


def once(kind):
    """An rx_hook that damages, once, the chunk carrying MARKER."""
    fired = threading.Event()

    def hook(data: bytes) -> bytes:
        if fired.is_set() or MARKER not in data:
            return data
        fired.set()
        i = data.index(MARKER)
        if kind == "corrupt":
            return data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:]
        if kind == "drop":
            return data[:i] + data[i + 20:]
        return data + data  # duplicate
    hook.fired = fired
    return hook


@pytest.mark.parametrize("kind", ["corrupt", "drop", "duplicate"])
def test_damaged_frames_are_resent_and_the_model_arrives_intact(board, kind):
    vb = board()
    model = marked_model()
    vb.rx_hook = hook = once(kind)
    with BoardSession(vb.port) as s:
        report = push(s, model, quiet=True)
        vb.rx_hook = None
        assert hook.fired.is_set()
        if kind != "duplicate":
            assert report["retries"] >= 1
        assert stored(s) == expected(model)
        prune(s, PruneOptions("magnitude", sparsity_bp=BP))
        checks, _ = verify_on_board(s, model, quiet=True)
        assert all(c.verified for c in checks)


def test_board_reset_mid_push_keeps_the_old_model_and_a_retry_succeeds(board):
    vb = board(baud=115200)  # paced, so the push lasts long enough to be cut
    old, new = marked_model(1), marked_model(2)
    with BoardSession(vb.port, baud=115200) as s:
        push(s, old, quiet=True)
        prune(s, PruneOptions("mincut", sparsity_bp=BP))

    def reset_on_marker(data: bytes) -> bytes:
        if MARKER in data:
            vb.rx_hook = None
            threading.Thread(target=vb.hard_reset, daemon=True).start()
        return data

    vb.rx_hook = reset_on_marker
    with BoardSession(vb.port, baud=115200) as s:
        with pytest.raises((LinkError, OSError)) as info:
            push(s, new, quiet=True)
    assert "reset" in str(info.value) or "stopped answering" in str(info.value)
    time.sleep(1)
    with BoardSession(vb.port, baud=115200) as s:
        assert stored(s) == expected(old)      # the old model, whole
        _, masks = pull(s)                   # and its masks, still current
        assert {m.name for m in masks} == set(old)
        push(s, new, quiet=True)            # the retry finishes
        assert stored(s) == expected(new)


def test_host_killed_mid_push_then_the_retried_push_succeeds(board, tmp_path):
    vb = board(baud=115200)
    old, new = marked_model(3), marked_model(4)
    with BoardSession(vb.port, baud=115200) as s:
        push(s, old, quiet=True)
    path = tmp_path / "new.npz"
    save_model(path, new)
    cmd = [sys.executable, "-m", "prune8_host.cli", "push", str(path), "--port", vb.port,
           "--baud", "115200", "--quiet"]
    started = threading.Event()

    def note(data: bytes) -> bytes:
        if MARKER in data:
            started.set()
        return data
    vb.rx_hook = note
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert started.wait(120), proc.communicate()
    proc.send_signal(signal.SIGKILL)  # the host dies with the receiver mid-layer
    proc.wait()
    vb.rx_hook = None
    with BoardSession(vb.port, baud=115200) as s:  # ends the orphaned receiver first
        assert stored(s) == expected(old)
    retry = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert retry.returncode == 0, retry.stderr
    with BoardSession(vb.port, baud=115200) as s:
        assert stored(s) == expected(new)


def test_a_model_too_big_for_the_filesystem_is_refused_before_anything_is_sent(board,
                                                                               firmware):
    vb = board(flash_bytes=firmware_bytes(firmware) + 10_000)  # it and one small model fit
    small = load_model(EXAMPLE, layers=["fc2"])
    with BoardSession(vb.port) as s:
        push(s, small, quiet=True)
        before = stored(s)
        big = Model({f"l{i}": Layer(f"l{i}", np.ones((32, 64), np.int8)) for i in range(20)})
        sent = []
        vb.rx_hook = lambda data: sent.append(data) or data
        with pytest.raises(errors.CapacityError,
                           match=r"the model needs 41,\d{3} bytes of the board's filesystem "
                                 r"but only [\d,]+ are free \([\d,]+ in all\)"):
            push(s, big, quiet=True)
        vb.rx_hook = None
        assert not sent                     # not one frame went out
        assert stored(s) == before


def test_a_full_filesystem_while_pruning_is_reported_and_the_masks_kept(board, firmware):
    """The board's own ENOSPC: a layer streamed from flash needs scratch space for its
    scores (2 bytes a weight); without it the prune fails and changes nothing."""
    vb = board(flash_bytes=firmware_bytes(firmware) + 40_000)
    wide = Model({"wide": Layer("wide", np.arange(64 * 300).astype(np.int8).reshape(64, 300))})
    with BoardSession(vb.port) as s:
        push(s, wide, quiet=True)           # 19,200 weights: fits, its 38 KB of scores not
        with pytest.raises(BoardError, match="filesystem is full while saving the masks"):
            prune(s, PruneOptions("magnitude", sparsity_bp=5000))
        files = [f[0] for f in board_listing(s)["files"] if f[0].endswith((".bin", ".tmp"))]
        assert files == ["model.bin"]       # no masks, no scratch file left
        assert stored(s) == expected(wide)


def test_layer_over_capacity_is_refused_before_anything_is_sent(board):
    vb = board()
    big = Model({"big": Layer("big", np.ones((2, 4097), np.int8))})
    with BoardSession(vb.port) as s:
        push(s, load_model(EXAMPLE, layers=["fc2"]), quiet=True)
        before = stored(s)
        with pytest.raises(errors.CapacityError,
                           match=r"layer 'big' \(2 x 4097\) does not fit the board: 4097 "
                                 r"cols exceed capacity: max_units=4096"):
            push(s, big, quiet=True)
        assert stored(s) == before


def test_cli_push_prune_pull_verify_on_a_port(board, tmp_path):
    vb = board()
    masks = tmp_path / "m.npz"

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "prune8_host.cli", *args, "--port",
                               vb.port, "--quiet"], capture_output=True, text=True,
                              timeout=300)
    assert cli("push", EXAMPLE).returncode == 0
    assert cli("prune", "--method", "rows", "--sparsity", "0.25").returncode == 0
    assert cli("pull", "-o", str(masks)).returncode == 0
    verify = cli("verify", EXAMPLE)
    assert verify.returncode == 0 and verify.stdout.count("yes") == 2
    other = tmp_path / "other.npz"
    save_model(other, marked_model(5))
    bad = cli("verify", str(other))               # the board holds another model
    assert bad.returncode == 1 and "differ" in bad.stdout
    ls = cli("ls")
    assert "fc1 32x64" in ls.stdout and "rows 8/32" in ls.stdout


def test_run_reuses_the_model_the_board_holds(board, tmp_path):
    """Nothing is sent twice: a second run of the same model pushes nothing."""
    vb = board()

    def run():
        r = subprocess.run([sys.executable, "-m", "prune8_host.cli", "run", EXAMPLE, "--sparsity",
                            "0.5", "-o",
                            str(tmp_path / "m.npz"), "--json", "--port", vb.port, "--quiet"],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)
    first, second = run(), run()
    assert not first["push"]["reused"] and first["push"]["wire_bytes"] > 0
    assert second["push"]["reused"] and second["push"]["wire_bytes"] == 0
    assert second["push"]["model_id"] == first["push"]["model_id"] and second["verified"]


def test_progress_bars_only_on_a_terminal(board, tmp_path):
    # 16 KB at 115200 baud: about 1.5 s, over the bar's one-second delay
    vb = board(baud=115200)
    rng = np.random.default_rng(7)
    path = tmp_path / "big.npz"
    save_model(path, {f"fc{i}": Layer(f"fc{i}", rng.integers(-128, 128, (32, 64)).astype(
        np.int8)) for i in range(8)})
    proc = subprocess.run([sys.executable, "-m", "prune8_host.cli", "push", str(path),
                           "--port", vb.port], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stderr and "push:" not in proc.stderr  # a log gets no bar
    assert proc.stdout.startswith("pushed 8 layer(s)")


def test_ctrl_c_bytes_in_the_weights_are_data(board):
    # Every weight 0x03: with Ctrl-C enabled the board would raise KeyboardInterrupt.
    vb = board()
    model = Model({"etx": Layer("etx", np.full((32, 64), 3, np.int8))})
    with BoardSession(vb.port) as s:
        report = push(s, model, quiet=True)
        assert stored(s) == expected(model) and report["retries"] == 0
        # and Ctrl-C works again afterwards: the receiver restored kbd_intr
        assert s.exec("import micropython\nprint(micropython.kbd_intr(3))").strip() == "None"


def test_mpremote_sees_the_deployed_firmware(fresh_vboard, tmp_path, firmware):
    vb = fresh_vboard()
    mpremote = [sys.executable, "-m", "mpremote", "connect", vb.port]
    # as the README says: prune8 deploy, or mpremote cp -r of the build directory
    deployed = subprocess.run([sys.executable, "-m", "prune8_host.cli", "deploy", "--port",
                               vb.port, "--quiet"], capture_output=True, text=True, timeout=300)
    assert deployed.returncode == 0, deployed.stderr
    out = subprocess.run(mpremote + ["exec", "import prune8; print(prune8.Pruner())"],
                         capture_output=True, text=True, timeout=120)
    assert "Pruner(max_weights=2048, max_units=64" in out.stdout, out.stderr
    vb2 = fresh_vboard()
    subprocess.run([sys.executable, "-m", "mpremote", "connect", vb2.port, "cp", "-r",
                    str(firmware.package_dir), ":"], check=True, capture_output=True,
                   timeout=300)
    out = subprocess.run([sys.executable, "-m", "mpremote", "connect", vb2.port, "exec",
                          "import prune8; print(prune8.Pruner())"], capture_output=True,
                         text=True, timeout=120)
    assert "Pruner(max_weights=2048, max_units=64" in out.stdout, out.stderr
