"""Writing outputs (files.output): devices and pipes stay what they are, links are written
through, two writers never mix, a failed write leaves neither a partial file nor a
temporary one, an output that is an input is refused before any work, and so is one whose
name says another format than the one it would be written in."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading

import numpy as np
import pytest

from prune8_host.cli import main
from prune8_host.errors import UsageError
from prune8_host.files.masks import load_masks
from prune8_host.files.model import load_model
from prune8_host.files.npzio import load_arrays, save_npz
from prune8_host.files.output import output_file

EXAMPLE = "examples/example_model.npz"
TFLITE = "examples/digits_fc.tflite"
NOPORT = "/nonexistent/ttyUSB0"  # a run that got past its outputs fails here


@pytest.fixture(autouse=True)
def at_repo_root(monkeypatch, request):
    monkeypatch.chdir(request.config.rootpath)


def mask_cmd(out):
    return ["mask", EXAMPLE, "--method", "magnitude", "--sparsity", "0.5", "-o", str(out)]


def leftovers(directory):
    return [p.name for p in directory.iterdir() if p.name.endswith(".tmp")]


def test_dev_null_stays_a_device(capsys):
    before = os.stat("/dev/null")
    assert main(mask_cmd("/dev/null")) == 0
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev


def test_a_fifo_is_written_to_not_replaced(tmp_path, capsys):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()))
    reader.start()
    assert main(mask_cmd(fifo)) == 0
    reader.join(30)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    (tmp_path / "copy.npz").write_bytes(got[0])
    assert [m.name for m in load_masks(tmp_path / "copy.npz")] == ["fc1", "fc2"]


def test_a_symlink_is_written_through(tmp_path, capsys):
    target = tmp_path / "real.npz"
    target.write_bytes(b"old")
    link = tmp_path / "link.npz"
    link.symlink_to(target)
    assert main(mask_cmd(link)) == 0
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert [m.name for m in load_masks(target)] == ["fc1", "fc2"]


def test_a_directory_is_refused_before_any_work_and_nothing_is_left(tmp_path, capsys):
    out = tmp_path / "somedir"
    out.mkdir()
    assert main(mask_cmd(out)) == 2
    _, err = capsys.readouterr()
    assert err.count("\n") == 1 and "is a directory" in err
    assert leftovers(tmp_path) == [] and list(out.iterdir()) == []


def test_a_failed_write_keeps_the_old_file_and_no_temporary(tmp_path):
    out = tmp_path / "keep.npz"
    save_npz(out, {"a": np.arange(3)})
    os.chmod(out, 0o640)
    with pytest.raises(RuntimeError), output_file(out) as f:
        f.write(b"half a file")
        raise RuntimeError("the writer failed")
    assert load_arrays(out)["a"].tolist() == [0, 1, 2]
    assert leftovers(tmp_path) == []
    save_npz(out, {"a": np.arange(4)})  # a successful rewrite keeps the permissions
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o640


def test_two_writers_to_one_output_each_leave_a_whole_file(tmp_path):
    out = tmp_path / "same.npz"
    big = {f"x{i}": np.full(20000, i, np.int32) for i in range(4)}

    def writer(k):
        for _ in range(15):
            save_npz(out, {name: a + k for name, a in big.items()})

    threads = [threading.Thread(target=writer, args=(k,)) for k in (100, 200)]
    for t in threads:
        t.start()
    seen = set()
    while any(t.is_alive() for t in threads):
        if out.exists():
            arrays = load_arrays(out)  # always a whole, readable file
            seen.add(int(arrays["x0"][0]))
            assert all(int(arrays[f"x{i}"][0]) == i + int(arrays["x0"][0]) for i in range(4))
    for t in threads:
        t.join()
    assert int(load_arrays(out)["x0"][0]) in (100, 200)
    assert leftovers(tmp_path) == []


def test_two_commands_writing_one_output_at_once(tmp_path):
    out = tmp_path / "scores.npz"
    cmds = [[sys.executable, "-m", "prune8_host.cli", "score", EXAMPLE, "--method", m,
             "-o", str(out)] for m in ("magnitude", "mincut")]
    procs = [subprocess.Popen(c) for c in cmds]
    assert [p.wait(120) for p in procs] == [0, 0]
    scores = load_arrays(out)
    assert sorted(scores) == ["fc1", "fc2"] and leftovers(tmp_path) == []


@pytest.mark.parametrize("argv", [
    ["run", "MODEL", "--method", "magnitude", "--sparsity", "0.5", "-o", "MODEL"],
    ["apply", "MODEL", "MASKS", "-o", "MASKS"],
    ["mask", "MODEL", "--method", "magnitude", "--sparsity", "0.5", "-o", "LINK"],
    ["shrink", "MODEL", "MASKS", "-o", "MODEL"],
])
def test_an_output_that_is_an_input_is_refused(tmp_path, capsys, argv):
    model, masks, link = tmp_path / "m.npz", tmp_path / "k.npz", tmp_path / "link.npz"
    model.write_bytes(open(EXAMPLE, "rb").read())
    link.symlink_to(model)
    assert main(["mask", str(model), "--method", "rows", "--sparsity", "0.5",
                 "-o", str(masks)]) == 0
    before = model.read_bytes(), masks.read_bytes()
    capsys.readouterr()
    names = {"MODEL": str(model), "MASKS": str(masks), "LINK": str(link)}
    assert main([names.get(a, a) for a in argv] + (["--port", "/dev/null"]
                                                    if argv[0] == "run" else [])) == 2
    _, err = capsys.readouterr()
    assert err.count("\n") == 1 and "the output is the input" in err
    assert (model.read_bytes(), masks.read_bytes()) == before
    assert set(load_model(model)) == {"fc1", "fc2"}


def test_a_missing_directory_is_named(tmp_path):
    with pytest.raises(UsageError, match="no directory"):
        with output_file(tmp_path / "nowhere" / "x.npz") as f:
            f.write(b"x")


@pytest.mark.parametrize("argv, fragment", [
    (["run", EXAMPLE, "--method", "magnitude", "--sparsity", "0.5", "-o", "OUT.tflite"],
     "only a .tflite model is written as a .tflite, and examples/example_model.npz is an "
     ".npz model"),
    (["run", TFLITE, "--sparsity", "0.5", "-o", "OUT.npy"], "an .npz file, not an .npy"),
    (["run", TFLITE, "--sparsity", "0.5", "-o", "OUT.tflite", "--masks", "M.tflite"],
     "an .npz file, not a .tflite"),
    (["apply", EXAMPLE, "MASKS", "-o", "OUT.tflite"], "only a .tflite model is written"),
    (["apply", TFLITE, "TMASKS", "-o", "OUT.npy"], "a .tflite file, not an .npy"),
    (["model", "import", TFLITE, "-o", "OUT.tflite"], "an .npz file, not a .tflite"),
    (["mask", EXAMPLE, "--method", "rows", "--sparsity", "0.5", "-o", "OUT.tflite"],
     "an .npz file, not a .tflite"),
])
def test_an_output_named_for_another_format_is_refused(tmp_path, capsys, argv, fragment):
    """One line, status 2, nothing written; a run refuses before it looks for a board."""
    masks, tmasks = tmp_path / "in" / "m.npz", tmp_path / "in" / "t.npz"
    masks.parent.mkdir()
    assert main(mask_cmd(masks)) == 0
    assert main(["mask", TFLITE, "--sparsity", "0.5", "-o", str(tmasks)]) == 0
    capsys.readouterr()
    names = {"MASKS": str(masks), "TMASKS": str(tmasks),
             **{out: str(tmp_path / out) for out in ("OUT.tflite", "OUT.npy", "M.tflite")}}
    argv = [names.get(a, a) for a in argv]
    code = main(argv + (["--port", NOPORT] if argv[0] == "run" else []))
    _, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1 and fragment in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]
