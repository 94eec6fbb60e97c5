"""prune8 run on a .tflite, on the virtual board (issue 22, "Outputs that are what they
say"): it says both how many weights the masks prune and how many of those were already
zero, how far the pruned model's outputs moved from the dense one's (TFLM on the host,
on --data or on drawn inputs, saying which), and a gradient prune of a model the board
has no calibration for is refused before anything is pushed, naming prune8 calibrate."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from prune8_host.files.masks import load_masks, read_masks
from prune8_host.files.model import load_model
from prune8_host.twin.reference import weight_keep

pytestmark = pytest.mark.timeout(900)
FC = "examples/digits_fc.tflite"
TEST = "examples/digits_test.npz"


@pytest.fixture(scope="module")
def port(deployed_vboard):
    return deployed_vboard.port


def cli(port, *args, json_out=True):
    proc = subprocess.run([sys.executable, "-m", "prune8_host.cli", *map(str, args),
                           "--port", port, "--quiet"] + (["--json"] if json_out else []),
                          capture_output=True, text=True, timeout=600)
    out = json.loads(proc.stdout) if json_out and proc.returncode != 2 else proc.stdout
    return proc.returncode, out, proc.stderr


def test_run_says_what_the_masks_prune_and_how_far_the_outputs_moved(port, tmp_path):
    out, masks = tmp_path / "pruned.tflite", tmp_path / "masks.npz"
    code, report, _ = cli(port, "run", FC, "--sparsity", "0.5", "-o", out, "--masks", masks)
    assert code == 0 and report["verified"]
    model = load_model(FC)
    gone = {m.name: ~weight_keep(m).reshape(-1) for m in load_masks(masks)}
    assert report["weights_pruned"] == sum(int(g.sum()) for g in gone.values())
    assert report["already_zero"] == sum(
        int((g & (model[n].weights.reshape(-1) == 0)).sum()) for n, g in gone.items())
    assert 0 < report["already_zero"] < report["weights_pruned"]
    assert report["outputs_moved"]["source"] == "drawn" and \
        report["outputs_moved"]["max_int8"] > 0
    assert read_masks(masks)[1] is not None  # run's masks carry their model's fingerprint
    code, text, _ = cli(port, "run", FC, "--sparsity", "0.5", "-o", out, "--data", TEST,
                        json_out=False)
    assert code == 0
    assert f"{report['weights_pruned']} of 2368 weights pruned by the masks, " \
           f"{report['already_zero']} of them already zero in the model" in text
    assert "outputs moved (TFLM, pruned vs dense, on examples/digits_test.npz's 360 " \
           "images)" in text


def test_gradient_without_the_boards_calibration_is_refused_before_a_push(port, tmp_path):
    # the board holds the example .npz model: nothing calibrated for digits_fc.tflite
    assert cli(port, "push", "examples/digits_mlp.npz")[0] == 0
    code, _, err = cli(port, "run", FC, "--method", "gradient", "--sparsity", "0.5", "-o",
                       tmp_path / "m.npz")
    assert code == 2 and err.count("\n") == 1 and not (tmp_path / "m.npz").exists()
    assert f"prune8 calibrate {FC} --images" in err and "np." not in err
    code, listing, _ = cli(port, "ls")
    # nothing was pushed: the board still holds the .npz model
    assert code == 0 and [l["name"] for l in listing["model"]["layers"]] == ["fc1", "fc2"]
    # once the board has calibrated this model, the same run prunes with its activations
    code, report, _ = cli(port, "calibrate", FC, "--images", "examples/digits_calib.npz",
                          "--push")
    assert code == 0 and report["equal"]
    code, report, _ = cli(port, "run", FC, "--method", "gradient", "--sparsity", "0.5", "-o",
                          tmp_path / "m.npz")
    assert code == 0 and report["verified"] and (tmp_path / "m.npz").exists()


def test_pull_with_the_model_records_its_fingerprint(port, tmp_path):
    masks = tmp_path / "m.npz"
    assert cli(port, "push", "examples/digits_mlp.npz")[0] == 0
    assert cli(port, "prune", "--method", "magnitude", "--sparsity", "0.5")[0] == 0
    assert cli(port, "pull", "-o", masks)[0] == 0
    assert read_masks(masks)[1] is None  # the board's masks alone: no model to print
    assert cli(port, "pull", "-o", masks, "--model", "examples/digits_mlp.npz")[0] == 0
    assert read_masks(masks)[1] is not None
    code, _, err = cli(port, "pull", "-o", tmp_path / "x.npz", "--model",
                       "examples/example_model.npz")
    assert code == 2 and "the board holds another model" in err
    assert not (tmp_path / "x.npz").exists()
