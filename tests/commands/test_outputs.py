"""Every output is what its name and its message say (issue 22): a file's format follows
its extension or the command refuses it, masks belong to the model they were made for,
and eval and apply say how far a prune moved a model's outputs."""

from __future__ import annotations

import json

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
    ("wanda", FC, "prune8 model import"),       # no board calibrates Wanda's samples
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
