"""int8 inference on the (virtual) board: calibration and evaluation against the twin.

The digits model is pushed with its TFLM parameters; the board calibrates the gradient
proxy's activations itself, prunes with every scorer at 50 %, and classifies the whole
test split. Its statistic, every logit (CRC) and its accuracy must equal the twin's."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from prune8_host import twin
from prune8_host.device.session import BoardSession
from prune8_host.device.workflow import prune, verify_on_board
from prune8_host.files.model import Model, load_model, save_model
from prune8_host.twin import dense as qnn
from prune8_host.twin import scorers
from prune8_host.twin.layer import PruneOptions
from support.cli import board_cli as cli

pytestmark = pytest.mark.timeout(900)
MODEL = "examples/digits_mlp.npz"
TEST = "examples/digits_test.npz"
CALIB = "examples/digits_calib.npz"


@pytest.fixture(scope="module")
def port(deployed_vboard):
    return deployed_vboard.port


def test_calibration_on_the_board_drives_the_gradient_proxy(port, tmp_path):
    model = load_model(MODEL)
    # A copy whose shipped activations are useless: only the board's own statistic can
    # make its gradient masks right.
    blank = Model({n: replace(l, activations=np.zeros_like(l.activations))
                   for n, l in model.items()})
    path = tmp_path / "blank.npz"
    save_model(path, blank)
    assert cli(port, "push", str(path))[0] == 0
    code, report = cli(port, "calibrate", str(path), "--images", CALIB)
    assert code == 0 and report["equal"] and report["images"] == 256
    calib = np.load("examples/digits_calib.npz")["images"]
    stats = qnn.activation_stats(blank, calib)
    with BoardSession(port) as s:
        prune(s, PruneOptions("gradient", sparsity_bp=5000))
        checks, masks = verify_on_board(s, blank, quiet=True)
    assert all(c.verified for c in checks)
    for m in masks:  # the board used the calibrated activations, not the blank ones
        layer = blank[m.name]
        s_ = twin.gradient_scores(layer.weights, stats[m.name])
        assert m.words.tolist() == twin.prune_mask(s_, sparsity_bp=5000).tolist()


def methods():  # the digits model has no calibration samples (Wanda's)
    return [s.name for s in scorers.TABLE if scorers.SUMSQ not in s.needs]


def test_board_accuracy_equals_the_twin_at_half_sparsity_for_every_scorer(port, tmp_path):
    assert cli(port, "push", MODEL)[0] == 0
    code, report = cli(port, "eval", MODEL, "--no-masks", "--data", TEST)
    assert code == 0 and report["logits_identical"]
    assert report["board_correct"] == report["twin_correct"] == 355  # 98.61 %
    # each scorer's masks on the first 90 images: a logit that differed fails as well
    data = tmp_path / "test90.npz"
    with np.load(TEST) as f:
        np.savez(data, images=f["images"][:90], labels=f["labels"][:90])
    for method in methods():
        args = ["prune", "--method", method, "--sparsity", "0.5"]
        if method == "blocks":
            args += ["--block", "2x2"]
        assert cli(port, *args)[0] == 0, method
        code, report = cli(port, "eval", MODEL, "--data", str(data))
        assert code == 0, (method, report)
        assert report["logits_identical"], method
        assert report["board_correct"] == report["twin_correct"], method
        assert report["images"] == 90 and len(report["masks"]) == 2


def test_eval_refuses_a_model_the_board_does_not_hold(port, tmp_path):
    model = load_model(MODEL)
    other = {n: replace(l, weights=-l.weights) for n, l in model.items()}
    path = tmp_path / "other.npz"
    save_model(path, other)
    code, err = cli(port, "eval", str(path), "--data", TEST)
    assert code == 2 and "pass --push" in err
    code, err = cli(port, "eval", "examples/example_model.npz", "--data", TEST)
    assert code == 2 and "not a quantized model" in err
    # --push sends it, and then evaluates it (its dense form: the old masks are stale)
    code, report = cli(port, "eval", str(path), "--push", "--data", TEST)
    assert code == 0 and report["logits_identical"] and report["masks"] == []
    assert cli(port, "eval", str(path), "--data", TEST)[0] == 0  # the board holds it now


@pytest.mark.parametrize("fmt", ["dense", "native", "csr", "coo", "block"])
def test_packed_model_runs_on_the_board_with_the_dense_logits(port, fmt, tmp_path):
    """Pruned layers stored packed on the board's flash; the kernel runs straight from the
    packed form, and every logit equals the dense run of the same masked model."""
    from prune8.packed_format import PACKED_PATH
    from prune8_host.device.transfer import put_file
    from prune8_host.files import packed as sparse
    from prune8_host.files.records import quant_params
    from prune8_host.twin.reference import layer_mask, masked_model

    model = load_model(MODEL)
    masks = [layer_mask(layer, "magnitude", sparsity_bp=7500) for layer in model.values()]
    masked = masked_model(model, masks)
    packed = {}
    for name, layer in masked.items():
        p = sparse.encode(fmt, layer.weights, *((2, 2) if fmt == "block" else (0, 0)))
        packed[name] = replace(p, quant=quant_params(layer))
    assert cli(port, "push", MODEL)[0] == 0
    with BoardSession(port) as s:
        put_file(s, PACKED_PATH, sparse.packed_bytes(packed))
    code, report = cli(port, "eval", MODEL, "--packed", "--data", TEST)
    assert code == 0 and report["logits_identical"], report
    images = np.load("examples/digits_test.npz")
    expected = int((qnn.predict(masked, images["images"]) == images["labels"]).sum())
    assert report["board_correct"] == report["twin_correct"] == expected


@pytest.mark.parametrize("source, method, scope", [
    ("examples/digits_fc.tflite", "magnitude", "layer"),
    ("examples/digits_fc_channel.tflite", "scaled", "layer"),
    ("examples/digits_fc_channel.tflite", "magnitude", "channel")])
def test_a_tflite_round_trip_on_the_board_agrees_with_tflm(port, tmp_path, source, method,
                                                          scope):
    """run a .tflite on the board (push, prune, pull, verify) and write the pruned .tflite
    in the same command: byte for byte what apply makes of the board's masks, which carry
    the command line's options; then classify on the board: every logit equals TFLM's on
    the pruned file."""
    from prune8_host.files import tflite
    from prune8_host.files.masks import load_masks
    from prune8_host.twin import tflm
    masks, pruned, applied = tmp_path / "m.npz", tmp_path / "pruned.tflite", tmp_path / "a.tflite"
    code, report = cli(port, "run", source, "--method", method, "--scope", scope,
                       "--sparsity", "0.5", "-o", str(pruned), "--masks", str(masks))
    assert code == 0 and report["verified"], report
    assert (report["pruned_model"], report["masks"]) == (str(pruned), str(masks))
    options = PruneOptions(method, sparsity_bp=5000, scope=scope)
    assert [m.options for m in load_masks(masks)] == [options] * 2
    assert subprocess.run([sys.executable, "-m", "prune8_host.cli", "apply", source,
                           str(masks), "-o", str(applied)], capture_output=True).returncode == 0
    assert pruned.read_bytes() == applied.read_bytes()
    assert pruned.read_bytes() != open(source, "rb").read()
    code, report = cli(port, "eval", source, "--data", TEST)
    assert code == 0 and report["logits_identical"], report
    test = np.load("examples/digits_test.npz")
    theirs = tflm.outputs(pruned.read_bytes(), test["images"])
    assert report["board_correct"] == int((theirs.argmax(1) == test["labels"]).sum())
    assert len(tflite.read(pruned).layers) == 2


def test_run_writes_no_pruned_tflite_when_a_mask_does_not_verify(port, tmp_path, capsys,
                                                                  monkeypatch):
    """The pruned .tflite is written only from masks the twin verified; the masks file,
    as -o MASKS.npz writes it, is written either way (what the board made, to inspect)."""
    from prune8_host.cli import main
    from prune8_host.commands import workflow
    verify = workflow.verify_on_board

    def one_layer_differs(*args, **kwargs):
        checks, masks = verify(*args, **kwargs)
        checks[0].verified = False
        return checks, masks
    monkeypatch.setattr(workflow, "verify_on_board", one_layer_differs)
    pruned, masks = tmp_path / "pruned.tflite", tmp_path / "m.npz"
    assert main(["run", "examples/digits_fc.tflite", "--sparsity", "0.5", "-o", str(pruned),
                 "--masks", str(masks), "--port", port, "--quiet"]) == 1
    assert not pruned.exists() and masks.exists()
    assert "pruned model not written: the board's masks do not verify" in \
        capsys.readouterr().out


def test_a_run_serialises_each_layer_once(port, tmp_path, monkeypatch, capsys):
    """push (sizes, frames), the CRC check and verify share one record per layer."""
    from prune8_host.cli import main
    from prune8_host.files import model as model_file
    made = []
    record = model_file.layer_record
    monkeypatch.setattr(model_file, "layer_record",
                        lambda layer: made.append(layer.name) or record(layer))
    assert main(["run", MODEL, "--method", "magnitude", "--sparsity", "0.5", "-o",
                 str(tmp_path / "m.npz"), "--port", port, "--quiet"]) == 0
    assert sorted(made) == sorted(load_model(MODEL))
