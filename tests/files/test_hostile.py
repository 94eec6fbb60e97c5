"""The hostile corpus (tests/data/hostile/, made by tests/data/make_hostile.py) through
every host command that reads a file, in every place a file goes: no traceback, no
partial output, status 2 and one line on stderr that names the file."""

from __future__ import annotations

import filecmp
import os
import signal
import subprocess
import sys

import pytest

from prune8_host.cli import main
from support import ROOT

CORPUS = ROOT / "tests" / "data" / "hostile"
HOSTILE = sorted(p for p in CORPUS.iterdir() if p.is_file())  # tflite/: test_hostile_tflite
MODEL = str(ROOT / "examples" / "example_model.npz")
QMODEL = str(ROOT / "examples" / "digits_mlp.npz")
NOPORT = "/nonexistent/ttyUSB0"  # a board command that got past its files fails here

# Every place a command takes a file: F is the hostile file, OUT an output that must
# not appear, MASKS / ROWS good masks for MODEL.
PLACES = [
    ["score", "F", "--method", "magnitude", "-o", "OUT"],
    ["mask", "F", "--method", "magnitude", "--sparsity", "0.5", "-o", "OUT"],
    ["mask", MODEL, "--method", "gradient", "--sparsity", "0.5", "--activations", "F",
     "-o", "OUT"],
    ["apply", "F", "MASKS", "-o", "OUT"],
    ["apply", MODEL, "F", "-o", "OUT"],
    ["stats", "F"],
    ["report", "F"],
    ["pack", "F", "-o", "OUT"],
    ["pack", MODEL, "F", "-o", "OUT"],
    ["unpack", "F", "-o", "OUT"],
    ["shrink", "F", "ROWS", "-o", "OUT"],
    ["shrink", MODEL, "F", "-o", "OUT"],
    ["model", "info", "F"],
    ["push", "F", "--port", NOPORT],
    ["run", "F", "--method", "magnitude", "--sparsity", "0.5", "-o", "OUT", "--port", NOPORT],
    ["verify", "F", "--port", NOPORT],
    ["calibrate", "F", "--images", str(ROOT / "examples" / "digits_calib.npz"), "--port",
     NOPORT],
    ["calibrate", QMODEL, "--images", "F", "--port", NOPORT],
    ["eval", "F", "--test", str(ROOT / "examples" / "digits_test.npz"), "--port", NOPORT],
    ["eval", QMODEL, "--test", "F", "--port", NOPORT],
]


def test_the_corpus_is_the_scripts_output(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "tests" / "data" / "make_hostile.py"),
                    str(tmp_path)], check=True, capture_output=True)
    made = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert made == sorted(str(p.relative_to(CORPUS)) for p in CORPUS.rglob("*") if p.is_file())
    _, mismatch, errors = filecmp.cmpfiles(tmp_path, CORPUS, made, shallow=False)
    assert not mismatch and not errors


@pytest.fixture(scope="module")
def good_masks(tmp_path_factory):
    d = tmp_path_factory.mktemp("masks")
    masks, rows = d / "masks.npz", d / "rows.npz"
    assert main(["mask", MODEL, "--method", "magnitude", "--sparsity", "0.5", "-o",
                 str(masks)]) == 0
    assert main(["mask", MODEL, "--method", "rows", "--sparsity", "0.5", "-o",
                 str(rows)]) == 0
    return {"MASKS": str(masks), "ROWS": str(rows)}


@pytest.mark.parametrize("place", PLACES, ids=lambda p: "-".join(
    a for a in p if a in ("F",) or not a.startswith(("/", "-")) and a not in
    ("magnitude", "gradient", "0.5", "OUT", "MASKS", "ROWS")))
def test_every_command_refuses_every_hostile_file(place, good_masks, tmp_path, capsys):
    capsys.readouterr()
    failures = []
    for f in HOSTILE:
        out = tmp_path / f"out-{f.stem}.npz"
        names = {"F": str(f), "OUT": str(out), **good_masks}
        code = main([names.get(a, a) for a in place])
        stdout, stderr = capsys.readouterr()
        lines = stderr.splitlines()
        ok = (code == 2 and stdout == "" and len(lines) == 1 and f.name in lines[0]
              and "Traceback" not in stderr and "allow_pickle" not in stderr
              and not out.exists())
        if not ok:
            failures.append(f"{f.name}: status {code}, stdout {stdout[:80]!r}, stderr "
                            f"{stderr[-300:]!r}" + (", wrote OUT" if out.exists() else ""))
    assert not failures, "\n".join(failures)


def test_a_directory_as_a_model_is_named_as_one(tmp_path, capsys):
    d = tmp_path / "model.npz"
    d.mkdir()
    assert main(["mask", str(d), "--method", "magnitude", "--sparsity", "0.5"]) == 2
    assert "is a directory, not a .npy or .npz file" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["input.npz", "input.bin"])
def test_a_fifo_in_every_place_is_refused_not_waited_on(name, good_masks, tmp_path, capsys):
    # a FIFO blocks the first read until someone writes: refused by its type, unopened
    # (test_hostile_tflite runs .tflite names through every model-taking command)
    fifo = tmp_path / name
    os.mkfifo(fifo)
    failures = []
    signal.alarm(60)  # a regression blocks in open(): the alarm ends the test instead
    try:
        for place in PLACES:
            out = tmp_path / "out.npz"
            names = {"F": str(fifo), "OUT": str(out), **good_masks}
            code = main([names.get(a, a) for a in place])
            stdout, stderr = capsys.readouterr()
            if not (code == 2 and stdout == "" and stderr.count("\n") == 1
                    and f"{fifo} is a FIFO" in stderr and not out.exists()):
                failures.append(f"{place[:2]}: status {code}, {stderr[-200:]!r}")
    finally:
        signal.alarm(0)
    assert not failures, "\n".join(failures)
