"""Layers bigger than RAM on the virtual board (MicroPython): pushed to flash as they
arrive, pruned there tile by tile bit for bit as the twin, run from flash (dense and
packed) with the twin's logits, and within the esp32 profile's heap budget. CPython runs
the same firmware code in tests/firmware/test_streaming.py."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from prune8_host import heap_law
from prune8_host.boards import load_board
from prune8_host.device import calls
from prune8_host.device.session import BoardSession
from prune8_host.device.workflow import prune, pull, push
from prune8_host.files.model import Model
from prune8_host.twin.layer import Layer, PruneOptions
from prune8_host.twin.reference import layer_mask
from support.cli import board_cli as cli
from support.cli import small_budget_profile
from support.models import big_layers

pytestmark = pytest.mark.timeout(900)
WIDE = "examples/digits_wide.npz"          # fc1: 256 x 256, fc2: 10 x 256
WIDE_TEST = "examples/digits_wide_test.npz"


@pytest.fixture(scope="module")
def port(deployed_vboard):
    return deployed_vboard.port


def test_run_of_a_256x256_layer_verifies_and_reports_the_peak_heap(port, tmp_path):
    budget = load_board("esp32").heap_bytes
    code, report = cli(port, "run", WIDE, "--method", "mincut", "--sparsity", "0.6",
                       "-o", str(tmp_path / "m.npz"))
    assert code == 0 and report["verified"], report
    assert [(l["layer"], l["streamed"]) for l in report["prune"]["layers"]] == \
        [("fc1", True), ("fc2", True)]
    assert 0 < report["prune"]["heap_peak"] <= budget
    proc = subprocess.run([sys.executable, "-m", "prune8_host.cli", "prune", "--method",
                           "magnitude", "--sparsity", "0.5", "--port", port, "--quiet"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "board heap while pruning: peak" in proc.stdout
    assert "streamed from flash: fc1, fc2" in proc.stdout


def test_eval_runs_the_big_layer_from_flash_dense_and_packed(port, tmp_path):
    # The first 30 test images: every image is 65,536 multiply-adds from flash on the
    # MicroPython VM, and one logit that differed from the twin's fails as well as many.
    data = tmp_path / "test30.npz"
    with np.load(WIDE_TEST) as f:
        np.savez(data, images=f["images"][:30], labels=f["labels"][:30])
    masks = tmp_path / "m.npz"
    assert cli(port, "run", WIDE, "--method", "magnitude", "--sparsity", "0.7",
               "-o", str(masks))[0] == 0
    code, report = cli(port, "eval", WIDE, "--data", str(data))
    assert code == 0 and report["logits_identical"], report
    assert report["images"] == 30 and report["board_accuracy"] > 0.9
    assert [m["pruned"] for m in report["masks"]] == [65536 * 7 // 10, 2560 * 7 // 10]
    assert cli(port, "pack", WIDE, str(masks), "--push")[0] == 0
    code, report = cli(port, "eval", WIDE, "--data", str(data), "--packed")
    assert code == 0 and report["logits_identical"], report


STREAM_CASES = [
    ("odd", "magnitude", 5000, {}),
    ("odd", "scaled", 5000, {"tie": "strict"}),
    ("odd", "gradient", 4000, {"min_keep": 5}),
    ("kws", "wanda", 6000, {}),
    ("kws", "mincut", 5000, {"scope": "channel"}),
    ("kws", "random", 0, {"nm": (2, 4), "seed": 3}),
    ("kws", "blocks", 5000, {"block": (2, 8)}),
    ("conv", "cols", 3000, {"steps": 2}),
    ("conv", "l2", 9000, {"min_score": 400}),
]


def test_masks_streamed_in_awkward_tiles_on_micropython_equal_the_twins(port):
    """Tiles of 333 weights end inside rows, N:M groups and block rows; MicroPython's
    integers, arrays and files give the twin's masks bit for bit."""
    model = Model({layer.name: layer for layer in big_layers()})
    with BoardSession(port) as s:
        push(s, model, quiet=True)
        for name, method, bp, opts in STREAM_CASES:
            options = PruneOptions(method, sparsity_bp=bp, **opts)
            result = s.call_json(calls.prune(options, [name], tile=333), timeout=600)
            assert result["ok"], (name, method, result)
            _, masks = pull(s, quiet=True)
            got = {m.name: m for m in masks}[name]
            want = layer_mask(model[name], method, sparsity_bp=bp, **opts)
            assert got.words.tolist() == want.words.tolist(), (name, method, opts)


def test_peak_heap_does_not_grow_with_the_layer(port):
    """16,000 and 65,536 weights streamed, against 2,048 pruned in RAM: the peak heap,
    counted from boot, differs by little more than the O(rows + cols) arrays (the
    virtual board's collector counts some garbage too), and stays within the budget."""
    budget = load_board("esp32").heap_bytes
    rng = np.random.default_rng(2)
    peaks = {}
    with BoardSession(port) as s:
        for rows, cols in [(32, 64), (4, 4000), (256, 256)]:
            w = rng.integers(-128, 128, (rows, cols)).astype(np.int8)
            push(s, Model({"w": Layer("w", w)}), quiet=True)
            result = prune(s, PruneOptions("magnitude", sparsity_bp=5000))  # from boot
            assert result["ok"] and result["layers"][0]["streamed"] == (rows * cols > 2048)
            peaks[rows * cols] = result["heap_peak"]
    assert max(peaks.values()) <= budget, peaks
    assert peaks[65536] - peaks[2048] <= 4096, peaks
    assert peaks[16000] - peaks[2048] <= 4096, peaks


def test_a_prune_over_the_budget_is_refused_before_anything_is_sent(port, tmp_path):
    fig = heap_law.figures(load_board("esp32"))
    # WIDE's fc1, streamed, and its fc2, each with the other stored beside it
    need = fig.need(256, 256, PruneOptions("mincut"), 1, len("fc2")).bytes
    small = fig.need(10, 256, PruneOptions("mincut"), 1, len("fc1")).bytes
    assert small < need <= load_board("esp32").heap_bytes       # the example fits esp32
    tight = small_budget_profile(tmp_path, need - 1)
    assert cli(port, "push", "examples/digits_mlp.npz")[0] == 0
    code, before = cli(port, "ls")
    masks = tmp_path / "m.npz"
    code, err = cli(port, "run", WIDE, "--method", "mincut", "--sparsity", "0.6",
                    "--board", tight, "-o", str(masks))
    assert code == 2 and err.count("\n") == 1, err
    assert f"layer 'fc1' (256x256, streamed from flash) needs {need:,} bytes of heap from " \
        "boot (with the model's 1 other layer)" in err
    assert f"over its {need - 1:,}-byte budget" in err and "--ignore-heap" in err
    assert cli(port, "ls") == (0, before) and not masks.exists()  # nothing was pushed
    # prune8 prune checks the stored model's layers before it sends the prune
    assert cli(port, "push", WIDE)[0] == 0
    code, before = cli(port, "ls")
    code, err = cli(port, "prune", "--method", "mincut", "--sparsity", "0.6",
                    "--board", tight)
    assert code == 2 and "layer 'fc1'" in err and cli(port, "ls") == (0, before)
    # a layer that fits is pruned; --ignore-heap lets the rest through, and the report
    # still warns after the fact when the peak went over
    code, report = cli(port, "prune", "--method", "mincut", "--sparsity", "0.6",
                       "--board", tight, "--layer", "fc2")
    assert code == 0 and [l["layer"] for l in report["layers"]] == ["fc2"]
    code, report = cli(port, "run", WIDE, "--method", "mincut", "--sparsity", "0.6",
                       "--board", tight, "--ignore-heap", "-o", str(masks))
    assert code == 0 and report["verified"] and masks.exists()
