"""The on-board suite (tests/board/) on a board: the virtual board here and in CI, or a
real one when $PRUNE8_PORT names its port ($PRUNE8_BOARD its profile, default esp32).

One test per board script; each fails with the cases that failed on the board."""

from __future__ import annotations

import os
import re
import shutil

import pytest

from prune8.formats import GOLDEN_PATH, ROOT
from prune8_host.boards import load_board
from prune8_host.device.build import build_firmware
from prune8_host.device.deploy import deploy
from prune8_host.device.session import BoardSession
from prune8_host.suite import heap
from prune8_host.suite.runner import board_test_files, push_golden, run_suite, suite_args
from support import ROOT as CHECKOUT

pytestmark = pytest.mark.timeout(900)
PROFILE = load_board(os.environ.get("PRUNE8_BOARD", "esp32"))


@pytest.fixture(scope="module")
def board(request, tmp_path_factory):
    """A session on a board with the current firmware deployed and the golden file on it."""
    port = os.environ.get("PRUNE8_PORT")
    vb = None
    try:
        if port:
            build = build_firmware(PROFILE, out_root=tmp_path_factory.mktemp("build"))
            with BoardSession(port, baud=PROFILE.baud, check_firmware=False) as s:
                deploy(s, build, quiet=True)
        else:
            from prune8_host.vboard import VirtualBoard
            flash = None
            if PROFILE.name == "esp32":  # the session's deployed flash (conftest)
                flash = tmp_path_factory.mktemp("suite") / "flash"
                shutil.copytree(request.getfixturevalue("deployed_flash"), flash)
            vb = VirtualBoard(board=PROFILE.name, baud=0, flash_dir=flash).start()
            port = vb.port
            if flash is None:
                with BoardSession(port, check_firmware=False) as s:
                    deploy(s, build_firmware(PROFILE, out_root=tmp_path_factory.mktemp(
                        "build")), quiet=True)
        with BoardSession(port, baud=PROFILE.baud) as s:
            push_golden(s)
            yield s
    finally:
        if vb is not None:
            vb.stop()


@pytest.mark.parametrize("script", board_test_files(), ids=lambda p: p.stem)
def test_board_script(board, script):
    args = suite_args(PROFILE, GOLDEN_PATH, ROOT + "/suite")
    results = run_suite(board, script, args)
    failed = [f"{r.name}: {r.detail}" for r in results if not r.passed]
    assert results and not failed, "\n".join(failed)
    if script.stem == "test_alloc":  # every hot path measured, and none allocated
        assert all(r.alloc == 0 for r in results if "-control-" not in r.name)
    # a case's heap figure counts from boot: within the budget (the scripts check it)
    # and within the share of it the project targets
    share = heap.SUITE_CASE_SHARE * PROFILE.heap_bytes
    over = [f"{r.name}: {r.heap:,} bytes" for r in results if r.heap and r.heap > share]
    assert not over, f"over {share:,.0f} bytes from boot: {over}"


def test_readme_repl_example_runs_on_the_board(board):
    readme = (CHECKOUT / "README.md").read_text()
    section = readme[readme.index("## The REPL, by hand"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    out = board.exec(code + "print(list(w))\n")
    assert "Mask(n=8, pruned=4, kept=4, sparsity=50.00%)" in out
    assert "[0, 0, 50, 196, 0, 0, 70, 5]" in out


def test_case_lines_carry_only_the_figures_measured():
    """A CASE line's figures become the result's; one not printed stays None, so a
    report never shows a time or a heap figure nobody measured."""
    from prune8_host.suite.runner import parse_report
    text = ("noise\nCASE a PASS us=12 alloc=0\nCASE b PASS heap=67296\n"
            "CASE c FAIL mask CRC 1, the twin's 2\nCASE d PASS  (portable kernels only)\n")
    (a, b, c, d) = parse_report("s", text)
    assert (a.us, a.alloc, a.heap, a.passed) == (12, 0, None, True)
    assert (b.us, b.alloc, b.heap) == (None, None, 67296)
    assert (c.passed, c.detail, c.us) == (False, "mask CRC 1, the twin's 2", None)
    assert (d.detail, d.us, d.alloc) == ("(portable kernels only)", None, None)


def test_a_script_runs_in_parts_and_commands(tmp_path):
    """Parts start from a soft reset with ARGS (the arguments the script or measure.py
    names, nothing else: ARGS is on the heap its cases count), the kernels asked for,
    measure.py where the script uses it and the prelude, each a command of its own
    (the virtual board keeps a buffer as big as its largest command), comments cut;
    a part's further commands run in the same session, or joined where the port
    collects like a board (then=None)."""
    from prune8_host.suite import runner
    script = tmp_path / "test_x.py"
    script.write_text("P = ARGS[\"k\"]  # a comment\n# -- soft reset --\n"
                      "print('CASE one PASS')\n"
                      "# -- next command --\nprint('CASE two PASS')\n"
                      "# -- soft reset --\nprint('CASE three PASS')\n")
    parts = runner.script_parts(script, {"k": 1, "unnamed": "x" * 700, "kernels": "python"})
    assert [len(p) for p in parts] == [4, 3]
    head = ["ARGS = {'k': 1}\n", "import prune8\nprune8.use_kernels('python')\n"]
    assert all(p[:2] == head and p[2].startswith('P = ARGS["k"]\nprint(') for p in parts)
    assert parts[0][3] == "print('CASE two PASS')\n"
    # a script that uses measure.py's helpers gets it, and the arguments it names
    timed = tmp_path / "test_t.py"
    timed.write_text("a, dt, problem = measure(lambda: None)\nprint(verdict(a, problem))\n")
    (part,) = runner.script_parts(timed, {"heap_lock": True, "k": 1})
    assert part[0] == "ARGS = {'heap_lock': True}\n"
    assert "def measure(fn):" in part[1] and "#" not in part[1]
    log = []

    def output(code):  # what the board prints: the CASE lines the code prints
        return "".join(line[7:-2] + "\n" for line in code.splitlines()
                       if line.startswith("print('CASE"))

    def run(code):
        log.append("soft reset")
        return output(code)

    def then(code):
        log.append("same session")
        return output(code)

    # an empty command would be a soft reset on a board's raw REPL: refused
    empty = tmp_path / "test_empty.py"
    empty.write_text("# -- next command --\n\n# -- next command --\nprint('CASE x PASS')\n")
    with pytest.raises(ValueError, match="empty command"):
        runner.script_parts(empty, {})
    results = runner.run_script(run, script, {}, then=then)
    assert [r.name for r in results] == ["one", "two", "three"]
    assert log == ["soft reset", "same session", "same session", "soft reset",
                   "same session"]
    log.clear()
    results = runner.run_script(run, script, {})  # the unix port: a part is one program
    assert [r.name for r in results] == ["one", "two", "three"]
    assert log == ["soft reset", "soft reset"]
