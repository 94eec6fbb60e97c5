"""Every output is what its name and its message say (issue 22): a file's format follows
its extension or the command refuses it, masks belong to the model they were made for,
and eval and apply say how far a prune moved a model's outputs."""

from __future__ import annotations

import numpy as np
import pytest

from prune8_host.cli import main
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
