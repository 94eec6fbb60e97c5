"""Every output is what its name and its message say (issue 22): a file's format follows
its extension or the command refuses it, masks belong to the model they were made for,
and eval and apply say how far a prune moved a model's outputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from prune8_host.cli import main
from prune8_host.files.masks import load_masks, save_masks
from prune8_host.files.model import load_model
from prune8_host.files.npzio import load_arrays, save_npz
from support import ROOT

EX = ROOT / "examples"
NPZ = str(EX / "example_model.npz")
MLP = str(EX / "digits_mlp.npz")
FC = str(EX / "digits_fc.tflite")


def run(capsys, *argv):
    capsys.readouterr()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def refused(capsys, tmp_path, out, *argv, says: str):
    """The command exits 2 with one line naming the output and what it should be, and
    writes nothing."""
    before = sorted(p.name for p in tmp_path.iterdir())
    code, stdout, err = run(capsys, *argv)
    assert code == 2 and stdout == "" and err.count("\n") == 1, err
    assert str(out) in err and says in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.fixture
def rows_masks(tmp_path, capsys):
    path = tmp_path / "rows.npz"
    assert run(capsys, "mask", MLP, "--method", "rows", "--sparsity", "0.5", "--layer", "fc1",
               "-o", path)[0] == 0
    return path


# -- 1. an output's format follows its name ------------------------------------------------

def test_shrink_and_unpack_refuse_a_tflite_name(tmp_path, capsys, rows_masks):
    out = tmp_path / "small.tflite"
    refused(capsys, tmp_path, out, "shrink", MLP, rows_masks, "-o", out, says="small.npz")
    packed = tmp_path / "m.p8s"
    assert run(capsys, "pack", MLP, rows_masks, "-o", packed)[0] == 0
    out = tmp_path / "back.tflite"
    refused(capsys, tmp_path, out, "unpack", packed, "-o", out, says="back.npz")


@pytest.mark.parametrize("name", ["p.tflite", "p.npz", "p.npy"])
def test_pack_writes_its_container_only_under_its_own_name(tmp_path, capsys, name):
    masks = tmp_path / "m.npz"
    assert run(capsys, "mask", FC, "--sparsity", "0.5", "-o", masks)[0] == 0
    out = tmp_path / name
    refused(capsys, tmp_path, out, "pack", FC, masks, "-o", out, says="p.p8s")
    code, stdout, _ = run(capsys, "pack", FC, masks, "-o", tmp_path / "p.p8s")
    assert code == 0 and (tmp_path / "p.p8s").read_bytes()[:4] == b"P8S1"


# -- 6. errors in plain numbers; a scorer's missing inputs refused before any board -----

def test_a_shape_in_an_error_is_plain_numbers(tmp_path, capsys):
    data = tmp_path / "d.npz"
    np.savez(data, images=np.zeros((3, 28), np.int8), labels=np.zeros(3, np.int64))
    code, _, err = run(capsys, "eval", FC, "--data", data)
    assert code == 2 and "np." not in err and "shape [1, 64]" in err, err


CNN = str(EX / "digits_cnn.tflite")


@pytest.mark.parametrize("method,model,names", [
    ("gradient", CNN, "--activations ACTS.npz"),  # the board cannot calibrate a CNN
    ("wanda", FC, "prune8 calibrate"),          # no board calibrates Wanda's samples
], ids=["gradient-cnn", "wanda-fc"])
def test_a_scorer_without_its_inputs_is_refused_before_a_board(tmp_path, capsys, method,
                                                                model, names):
    out = tmp_path / "m.npz"
    # a port that does not exist: reaching the board would be a different error
    for argv in (["run", model, "--port", "/nonexistent/ttyUSB0", "-o", out],
                 ["mask", model, "-o", out]):
        code, _, err = run(capsys, *argv, "--method", method, "--sparsity", "0.5")
        assert code == 2 and err.count("\n") == 1 and not out.exists(), err
        assert "ttyUSB0" not in err and names in err and method in err, err


# -- 5. what a mask prunes, and what of that was already zero ------------------------------

def test_apply_and_stats_say_both_what_the_masks_prune_and_what_was_zero(tmp_path, capsys):
    masks, out = tmp_path / "m.npz", tmp_path / "p.tflite"
    assert run(capsys, "mask", FC, "--sparsity", "0.5", "-o", masks)[0] == 0
    model = load_model(FC)
    pruned = zero = 0
    for m in load_masks(masks):
        gone = ~m.keep()  # per-weight masks: one bit per weight
        pruned += int(gone.sum())
        zero += int((gone & (model[m.name].weights.reshape(-1) == 0)).sum())
    assert 0 < zero < pruned  # the example has natural zeros among the pruned weights
    said = f"{pruned} of 2368 weights pruned by the masks, {zero} of them already zero"
    code, stdout, _ = run(capsys, "apply", FC, masks, "-o", out)
    assert code == 0 and said in stdout and f"({pruned - zero} newly zeroed)" in stdout
    code, stdout, _ = run(capsys, "stats", masks, "--model", FC)
    assert code == 0 and f"{pruned} of 2368 entries pruned by the masks" in stdout
    assert said in stdout
    code, stdout, _ = run(capsys, "apply", FC, masks, "-o", out, "--json")
    report = json.loads(stdout)
    assert (report["weights_pruned"], report["already_zero"], report["weights_zeroed"]) == \
        (pruned, zero, pruned - zero)


# -- 3. masks carry the fingerprint of their model -----------------------------------------

@pytest.fixture
def fc_masks(tmp_path, capsys):
    path = tmp_path / "fc-masks.npz"
    assert run(capsys, "mask", FC, "--sparsity", "0.5", "-o", path)[0] == 0
    return path


def _other_weights(tmp_path):
    """digits_mlp.npz with one weight of fc1 changed: the same names, shapes, scales."""
    arrays = load_arrays(MLP)
    arrays["fc1"] = arrays["fc1"].copy()
    arrays["fc1"][3, 5] ^= 1
    path = tmp_path / "tuned.npz"
    save_npz(path, arrays)
    return path


def test_masks_for_another_models_quantization_are_refused(tmp_path, capsys, fc_masks):
    other = str(EX / "digits_fc_channel.tflite")  # same layers and shapes, other scales
    says = "made for a layer 'fc1/weights' with other quantization"
    for argv in (["apply", other, fc_masks, "-o", tmp_path / "p.tflite"],
                 ["pack", other, fc_masks, "-o", tmp_path / "p.p8s"],
                 ["eval", other, "--data", EX / "digits_test.npz", "--masks", fc_masks],
                 ["stats", fc_masks, "--model", other]):
        code, stdout, err = run(capsys, *argv)
        assert code == 2 and stdout == "" and err.count("\n") == 1, (argv, err)
        assert says in err and "--force" in err and str(fc_masks) in err, err
        assert not (tmp_path / "p.tflite").exists() and not (tmp_path / "p.p8s").exists()
    code, stdout, err = run(capsys, "apply", other, fc_masks, "-o", tmp_path / "p.tflite",
                            "--force")
    assert code == 0 and (tmp_path / "p.tflite").exists()
    assert err.count("warning") == 2 and says in err  # one line per layer let through


def test_masks_for_other_weights_are_refused(tmp_path, capsys, rows_masks):
    tuned = _other_weights(tmp_path)
    for argv in (["shrink", tuned, rows_masks, "-o", tmp_path / "s.npz"],
                 ["apply", tuned, rows_masks, "-o", tmp_path / "a.npz"]):
        code, _, err = run(capsys, *argv)
        assert code == 2 and "made for a layer 'fc1' with other weights" in err, err
        assert not (tmp_path / "s.npz").exists() and not (tmp_path / "a.npz").exists()
    assert run(capsys, "shrink", tuned, rows_masks, "-o", tmp_path / "s.npz", "--force")[0] == 0


def test_masks_without_a_fingerprint_are_used_with_a_warning(tmp_path, capsys, fc_masks):
    # as an older prune8, or prune8 pull, wrote them: the masks, no fingerprints
    old = tmp_path / "old.npz"
    save_masks(old, load_masks(fc_masks))
    code, stdout, err = run(capsys, "apply", FC, old, "-o", tmp_path / "p.tflite")
    assert code == 0 and "apply:" in stdout
    assert err.count("\n") == 1 and "warning" in err and "records no fingerprint" in err
    assert load_masks(old)[0].words.tolist() == load_masks(fc_masks)[0].words.tolist()


# -- 4. eval on a model with one output: RMSE, not accuracy --------------------------------

def _tflm_outputs(model: bytes, images) -> tuple[np.ndarray, float, int]:
    """(int8 outputs, output scale, zero point) by TFLM's interpreter, directly."""
    from tflite_micro.python.tflite_micro import runtime
    it = runtime.Interpreter.from_bytes(model)
    shape = it.get_input_details(0)["shape"]
    q = it.get_output_details(0)["quantization_parameters"]
    out = []
    for x in images:
        it.set_input(x.reshape(shape), 0)
        it.invoke()
        out.append(np.asarray(it.get_output(0)).reshape(-1).copy())
    return np.stack(out).astype(np.int32), float(q["scales"][0]), int(q["zero_points"][0])


@pytest.fixture(scope="module")
def sine(tmp_path_factory):
    """examples/make_sine.py's model and data, written where a user would write them."""
    d = tmp_path_factory.mktemp("sine")
    subprocess.run([sys.executable, str(EX / "make_sine.py"), str(d)], check=True,
                   capture_output=True)
    return d / "sine.tflite", d / "sine_test.npz"


def test_the_sine_data_is_in_the_documented_format(sine):
    model, data = sine
    arrays = load_arrays(data)
    assert sorted(arrays) == ["images", "labels"]
    assert arrays["images"].dtype == np.int8 and arrays["images"].shape == (200, 1)
    assert arrays["labels"].dtype == np.float32 and arrays["labels"].shape == (200,)
    assert "sine_test.npz" in (ROOT / "docs" / "tflite.md").read_text()


def test_eval_of_a_one_output_model_reports_its_error_not_an_accuracy(sine, tmp_path, capsys):
    model, data = sine
    masks = tmp_path / "m.npz"
    assert run(capsys, "mask", model, "--sparsity", "0.5", "-o", masks)[0] == 0
    code, stdout, _ = run(capsys, "eval", model, "--data", data, "--masks", masks)
    assert code == 0 and "accuracy" not in stdout and "%" in stdout  # the sparsity only
    assert stdout.count("RMSE by TFLM") == 2 and "outputs moved" in stdout
    code, stdout, _ = run(capsys, "eval", model, "--data", data, "--masks", masks, "--json")
    report = json.loads(stdout)
    assert code == 0 and report["task"] == "regression"
    arrays = load_arrays(data)
    labels = arrays["labels"].astype(np.float64)
    dense, scale, zp = _tflm_outputs(model.read_bytes(), arrays["images"])
    rmse = np.sqrt(np.mean(((dense[:, 0] - zp) * scale - labels) ** 2))
    assert report["runs"][0]["rmse"] == pytest.approx(rmse, abs=1e-6)
    assert rmse < 0.1  # the example fits its sine
    pruned_bytes = (tmp_path / "p.tflite")
    assert run(capsys, "apply", model, masks, "-o", pruned_bytes)[0] == 0
    pruned, _, _ = _tflm_outputs(pruned_bytes.read_bytes(), arrays["images"])
    after = report["runs"][1]
    assert after["rmse"] == pytest.approx(
        np.sqrt(np.mean(((pruned[:, 0] - zp) * scale - labels) ** 2)), abs=1e-6)
    assert after["outputs_moved"]["max_int8"] == int(np.abs(pruned - dense).max()) > 0
    assert "accuracy" not in after and "same_class" not in after["outputs_moved"]


def test_eval_refuses_labels_that_are_not_classes_for_a_classifier(tmp_path, capsys):
    data = tmp_path / "d.npz"
    test = load_arrays(EX / "digits_test.npz")
    save_npz(data, {"images": test["images"], "labels": test["labels"].astype(np.float32)})
    code, _, err = run(capsys, "eval", FC, "--data", data)
    assert code == 2 and "class indices, integers in 0..9" in err and str(data) in err


# -- 7. run and apply say how far a prune moved the outputs ---------------------------------

def test_apply_on_a_tflite_reports_how_far_the_outputs_moved(tmp_path, capsys, fc_masks):
    out = tmp_path / "p.tflite"
    code, stdout, _ = run(capsys, "apply", FC, fc_masks, "-o", out, "--json")
    drawn = json.loads(stdout)["outputs_moved"]
    assert code == 0 and drawn["source"] == "drawn" and drawn["inputs"] == 256
    code, stdout, _ = run(capsys, "apply", FC, fc_masks, "-o", out)
    assert "inputs drawn from the int8 input range (seed 22" in stdout
    test = load_arrays(EX / "digits_test.npz")
    code, stdout, _ = run(capsys, "apply", FC, fc_masks, "-o", out, "--data",
                          EX / "digits_test.npz", "--json")
    moved = json.loads(stdout)["outputs_moved"]
    dense, scale, _ = _tflm_outputs(Path(FC).read_bytes(), test["images"])
    pruned, _, _ = _tflm_outputs(out.read_bytes(), test["images"])
    d = np.abs(pruned - dense)
    assert moved["source"] == "data" and moved["inputs"] == 360
    assert moved["max_int8"] == int(d.max()) and moved["mean_int8"] == round(float(d.mean()), 3)
    assert moved["same_class"] == round(float(np.mean(
        dense.argmax(1) == pruned.argmax(1))), 4)
    code, stdout, _ = run(capsys, "apply", FC, fc_masks, "-o", out, "--data",
                          EX / "digits_test.npz")
    assert "digits_test.npz's 360 images" in stdout


def test_apply_on_an_npz_has_no_tflm_to_judge_it(tmp_path, capsys, rows_masks):
    code, stdout, _ = run(capsys, "apply", MLP, rows_masks, "-o", tmp_path / "p.npz")
    assert code == 0 and "outputs moved" not in stdout
    out = tmp_path / "q.npz"
    refused(capsys, tmp_path, EX / "digits_test.npz", "apply", MLP, rows_masks, "-o", out,
            "--data", EX / "digits_test.npz", says="prune8 eval")


# -- 2. model info says what prune8's own files are -----------------------------------------

def test_model_info_names_prune8s_own_files(tmp_path, capsys, fc_masks):
    packed = tmp_path / "p.p8s"
    assert run(capsys, "pack", FC, fc_masks, "-o", packed)[0] == 0
    for path, says in ((packed, "a prune8 packed model"), (fc_masks, "a prune8 masks file"),
                       (EX / "digits_test.npz", "int8 inputs for inference, not a model")):
        code, stdout, err = run(capsys, "model", "info", path)
        assert code == 0 and err == "" and says in stdout, (path, stdout, err)
    code, stdout, _ = run(capsys, "model", "info", packed)
    assert "not in TFLM" in stdout and "fc1/weights  native" in stdout
    code, stdout, _ = run(capsys, "model", "info", fc_masks, "--json")
    report = json.loads(stdout)
    assert report["kind"] == "masks" and report["fingerprints"] is True
    assert [r["layer"] for r in report["layers"]] == ["fc1/weights", "fc2/weights"]



@pytest.mark.parametrize("magic,says", [(b"P8M1", "the board's stored model"),
                                        (b"P8K1", "the board's masks"),
                                        (b"P8C1", "the board's calibrated activations"),
                                        (b"P8G1", "the twin's golden vectors")])
def test_model_info_on_a_board_store_file_says_what_it_starts_as(tmp_path, capsys, magic,
                                                                  says):
    # only the magic is read: the line names it as the start of such a file, and the
    # command fails (it is no model); the deep property met a 4-byte "P8G1" that had
    # been described as golden vectors with status 0
    for data in (magic, magic + bytes(64)):
        path = tmp_path / "store.bin"
        path.write_bytes(data)
        code, stdout, err = run(capsys, "model", "info", path)
        assert code == 2 and stdout == "" and err.count("\n") == 1, err
        assert str(path) in err and f"not a model file: it starts as {says}" in err, err

def test_the_help_says_which_output_is_deployable(capsys):
    pack = " ".join(run(capsys, "pack", "--help")[1].split())
    assert "not by TFLM" in pack and "OUT.p8s" in pack
    apply = " ".join(run(capsys, "apply", "--help")[1].split())
    assert "deployable" in apply and "same size" in apply


def test_masks_fit_the_same_model_in_another_file(tmp_path, capsys, fc_masks):
    # the .tflite's layers imported as an .npz are the same model; so is a flat .npy
    # layer masked as --rows x --cols
    imported = tmp_path / "fc.npz"
    assert run(capsys, "model", "import", FC, "-o", imported)[0] == 0
    code, _, err = run(capsys, "apply", imported, fc_masks, "-o", tmp_path / "p.npz")
    assert code == 0 and err == ""
    flat, masks = tmp_path / "w.npy", tmp_path / "flat-masks.npz"
    np.save(flat, np.arange(-6, 6, dtype=np.int8))
    assert run(capsys, "mask", flat, "--method", "rows", "--rows", "3", "--cols", "4",
               "--sparsity", "0.4", "-o", masks)[0] == 0
    code, _, err = run(capsys, "apply", flat, masks, "-o", tmp_path / "f.npz")
    assert code == 0 and err == ""


def test_no_error_prints_a_numpy_repr(tmp_path, capsys):
    # values that come from NumPy arrays (shapes, quantization fields, TFLM's details)
    # in every message they reach: plain numbers only
    from support.models import quantized_arrays
    cases = []
    for key, value in (("fc1.shift", np.int32(40)), ("fc1.in_zp", np.int32(300)),
                       ("fc1.w_scale", np.float32(np.nan)), ("fc1.relu", np.int8(3)),
                       ("fc1.act", np.arange(5, dtype=np.int8))):
        arrays = quantized_arrays()
        arrays[key] = value
        path = tmp_path / f"{key}.npz"
        save_npz(path, arrays)
        cases.append(["mask", path, "--method", "scaled", "--sparsity", "0.5"])
    for images in (np.zeros((3, 28), np.int8), np.zeros((3, 8, 8, 1), np.int8)):
        data = tmp_path / f"d{images.ndim}.npz"
        save_npz(data, {"images": images, "labels": np.zeros(3, np.int64)})
        cases.append(["eval", FC, "--data", data])
    for argv in cases:
        code, _, err = run(capsys, *argv)
        assert code == 2 and err.count("\n") == 1, (argv, err)
        assert "np." not in err and "dtype(" not in err and "array(" not in err, err


def test_eval_on_a_board_refuses_a_one_output_model_before_the_board(sine, capsys):
    model, data = sine
    code, _, err = run(capsys, "eval", model, "--data", data, "--port", "/nonexistent/ttyUSB0")
    assert code == 2 and "has one output" in err and "ttyUSB0" not in err, err
