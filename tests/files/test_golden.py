"""The golden vectors (prune8_host.suite.golden) cover what the board must check.

The runner, tests/board/test_golden.py, checks every case on a real MicroPython: the unix
port with the portable and the viper kernels (tests/board/test_unix_port.py, seconds) and the
WebAssembly VM behind the virtual board (tests/board/test_board_suite.py). Drift between the
generator and the runner fails there.
"""

from prune8.formats import SCORERS
from prune8_host.suite import golden


def test_golden_covers_every_scorer_method_tie_and_error():
    cases = golden.generate()
    ops = {c.op for c in cases}
    assert set(SCORERS) | {"prune_rows", "prune_cols", "schedule"} <= ops
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
