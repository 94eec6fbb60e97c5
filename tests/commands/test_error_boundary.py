"""The error boundary (docs/architecture.md, "Errors"): whatever a user can cause ends
`prune8` with one line on stderr and status 2, never a traceback."""

import inspect
import subprocess
import sys

import pytest

from prune8 import errors as fw_errors
from prune8_host import errors
from prune8_host.cli import main
from support import ROOT

FAMILY = [c for _, c in inspect.getmembers(errors, inspect.isclass)
          if issubclass(c, errors.HostError) and c is not errors.BoardExecError]


def test_the_family_covers_every_tool_error():
    # what escaped as a traceback before: mpy-cross, the virtual board, Node, the store
    from prune8_host.device.build import BuildError
    from prune8_host.vboard import NodeSetupError, VirtualBoardError
    for cls in (BuildError, VirtualBoardError, NodeSetupError):
        assert issubclass(cls, errors.HostError)
    assert issubclass(fw_errors.StoreError, fw_errors.Prune8Error)


@pytest.mark.parametrize("cls", FAMILY + [fw_errors.SparsityError, fw_errors.StoreError],
                         ids=lambda c: c.__name__)
def test_each_error_is_one_line_with_status_2(monkeypatch, capsys, cls):
    from prune8_host.commands import boards

    def fails(args):
        raise cls("what was wrong, and what is allowed")

    monkeypatch.setattr(boards, "run", fails)
    assert main(["boards"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == "prune8 boards: error: what was wrong, and what is allowed\n"


def test_a_board_error_parses_the_exception_type():
    e = errors.BoardExecError("Traceback (most recent call last):\n  File \"<stdin>\", "
                              "line 1, in <module>\nImportError: no module named 'prune8'\n")
    assert e.exc_type == "ImportError" and str(e) == \
        "the board raised ImportError: no module named 'prune8'"


def test_a_missing_node_is_one_line(tmp_path):
    # no --port: the command needs the virtual board, whose Node.js is not there
    proc = subprocess.run([sys.executable, "-m", "prune8_host.cli", "ls", "--quiet"],
                          env={"PATH": "/usr/bin:/bin", "PRUNE8_NODE": str(tmp_path / "node"),
                               "HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path)},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "prune8 ls: error:" in proc.stderr and "node" in proc.stderr.lower()


def test_a_bug_behind_a_model_error_is_not_hidden(monkeypatch, tmp_path):
    # The boundary turns what a user can cause into one line, and only that: a bug in
    # the .tflite reader (here an AttributeError where the graph is checked) still
    # escapes as itself, while the same file's bad value is one line (test_hostile_tflite)
    from prune8_host.files import tflite
    model = tmp_path / "m.tflite"
    model.write_bytes((ROOT / "examples" / "digits_fc.tflite").read_bytes())

    def broken(*args):
        raise AttributeError("a bug, not a bad file")

    monkeypatch.setattr(tflite, "_check_graph", broken)
    with pytest.raises(AttributeError, match="a bug, not a bad file"):
        main(["model", "info", str(model)])
