"""Calibration of a .tflite through TFLM (files.calibration, prune8 calibrate --data): what
each layer reads, as the gradient proxy's and Wanda's inputs, so those scorers work on a
.tflite as on an .npz."""

from pathlib import Path

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from prune8.bp import prune_count
from prune8_host.cli import main
from prune8_host.files.calibration import calibrate
from prune8_host.files.masks import load_masks
from prune8_host.files.tflite import read
from prune8_host.twin.dense import column_stat

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CNN = EXAMPLES / "digits_cnn.tflite"       # conv1 3x3 VALID -> dw 3x3 -> pw 1x1 -> dense
CALIB = EXAMPLES / "digits_calib.npz"       # 256 images of 8x8, int8, input zero point -128


def _images():
    return np.load(CALIB)["images"]


def _conv1_patches(images):
    """Every 3x3 patch conv1 (VALID, stride 1) reads, computed here without prune8."""
    x = images.reshape(-1, 8, 8)
    return sliding_window_view(x, (3, 3), axis=(1, 2)).reshape(-1, 9)


def test_the_first_layer_reads_the_input_patches():
    images = _images()
    got = calibrate(read(CNN), images)
    first = got["conv1/weights"]
    patches = _conv1_patches(images)
    assert first.count == len(patches) and first.images == len(images)
    # the gradient proxy's statistic is over every patch, centred on the zero point
    assert np.array_equal(first.sums, np.abs(patches.astype(np.int64) + 128).sum(axis=0))
    assert np.array_equal(first.act(), column_stat(first.sums))
    # the sampled rows are real patches, drawn from every image, without repeats per image
    seen = {r.tobytes() for r in patches}
    assert len(first.rows) == 4096 and all(r.tobytes() in seen for r in first.rows)
    # a depthwise layer's statistic is one per weight (each row reads its own channel)
    assert got["dw/weights"].sums.shape == (8, 9)


def test_memory_stays_bounded_by_max_rows():
    got = calibrate(read(CNN), _images(), max_rows=100)
    assert all(len(li.rows) <= 100 for li in got.values())
    assert got["conv1/weights"].count == 256 * 36


def _run(capsys, *argv):
    capsys.readouterr()
    code = main([str(a) for a in argv])
    return code, *capsys.readouterr()


@pytest.mark.parametrize("method", ["gradient", "wanda"])
def test_gradient_and_wanda_work_on_a_tflite_once_calibrated(tmp_path, capsys, method):
    stats, masks = tmp_path / "stats.npz", tmp_path / "m.npz"
    layer = ["--layer", "conv1/weights", "--layer", "pw/weights", "--layer", "fc/weights"] if method == "wanda" else []
    code, _, err = _run(capsys, "mask", CNN, "--method", method, "--sparsity", "0.5",
                        *layer, "-o", masks)
    assert code == 2 and "prune8 calibrate" in err and not masks.exists(), err
    code, out, err = _run(capsys, "calibrate", CNN, "--data", CALIB, "-o", stats)
    assert code == 0, err
    arrays = np.load(stats)
    assert arrays["conv1/weights.act"].shape == (9,)
    assert arrays["conv1/weights.calib"].dtype == np.int8
    # Wanda's samples are the centred patches, halved (the zero point is -128)
    assert arrays["conv1/weights.calib"].min() >= 0
    code, _, err = _run(capsys, "mask", CNN, "--method", method, "--sparsity", "0.5", *layer,
                        "--activations", stats, "-o", masks)
    assert code == 0, err
    got = load_masks(masks)
    assert len(got) == (3 if layer else 4)
    assert all(int((~m.keep()).sum()) == prune_count(m.n, 5000, 1) for m in got)


def test_channel_groups_take_calibrated_activations(tmp_path, capsys):
    stats, masks = tmp_path / "stats.npz", tmp_path / "m.npz"
    assert _run(capsys, "calibrate", CNN, "--data", CALIB, "-o", stats)[0] == 0
    code, _, err = _run(capsys, "mask", CNN, "--structured", "channels", "--method",
                        "gradient", "--sparsity", "0.5", "--activations", stats, "-o", masks)
    assert code == 0, err
    # Wanda cannot score a group through a depthwise layer: one line, nothing written
    masks.unlink()
    code, _, err = _run(capsys, "mask", CNN, "--structured", "channels", "--method", "wanda",
                        "--sparsity", "0.5", "--activations", stats, "-o", masks)
    assert code == 2 and err.count("\n") == 1 and "depthwise" in err and not masks.exists()
