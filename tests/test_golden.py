"""The golden vectors and the on-board runner agree, checked here under CPython.

tests/board/test_golden.py is plain MicroPython that also runs on CPython; running it
here catches drift between the generator (prune8_host.golden) and the runner before a
board does. tests/test_board_suite.py runs it on the MicroPython VM.
"""

import contextlib
import io

from prune8_host.device.suite import BOARD_TESTS, parse_report
from prune8_host.files import golden


def test_every_golden_case_passes_under_cpython(tmp_path):
    cases = golden.generate()
    path = tmp_path / "golden.bin"
    golden.write(path, cases)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec((BOARD_TESTS / "test_golden.py").read_text(),
             {"ARGS": {"golden": str(path)}, "__name__": "golden"})
    results = parse_report("test_golden", out.getvalue())
    assert [r.name for r in results] == [c.name for c in cases]
    failed = [(r.name, r.detail) for r in results if not r.passed]
    assert not failed


def test_golden_covers_every_scorer_method_tie_and_error():
    cases = golden.generate()
    ops = {c.op for c in cases}
    assert set(golden.SCORERS) | {"prune_rows", "prune_cols", "schedule"} <= ops
    ok = [c for c in cases if c.expect == "ok" and c.mask]
    assert {c.mask.get("method") for c in ok} >= {"auto", "bubble", "select"}
    assert {c.mask.get("tie") for c in ok} >= {"exact", "strict"}
    errors_seen = {c.expect[0] for c in cases if c.expect != "ok"}
    assert errors_seen == {"EmptyInputError", "LengthMismatchError", "CapacityError",
                           "SparsityError", "MinKeepError", "MinScoreError", "OptionError",
                           "PatternError", "SeedError", "ScheduleError", "DtypeError"}
    sizes = {c.w.size for c in cases}
    assert 1 in sizes and 2048 in sizes and 2049 in sizes  # edges: 1 weight, full, over
    assert golden.generate() and golden.write  # deterministic for a seed:
    a, b = golden.generate(seed=3), golden.generate(seed=3)
    assert [c.blobs for c in a] == [c.blobs for c in b]
