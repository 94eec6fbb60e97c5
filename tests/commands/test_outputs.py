"""Every output is what its name and its message say (issue 22): a file's format follows
its extension or the command refuses it, masks belong to the model they were made for,
and eval and apply say how far a prune moved a model's outputs."""

from __future__ import annotations

import json

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
