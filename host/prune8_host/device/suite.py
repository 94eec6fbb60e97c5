"""The on-board test runner behind `prune8 test-board` and tests/test_board_suite.py.

Deploys the firmware, writes the twin's golden vectors to the board, runs each
MicroPython script of tests/board/ through the raw REPL and collects one result per
case (pass/fail, microseconds, bytes allocated).
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from prune8.protocol import GOLDEN_PATH
from prune8_host.boards import BoardProfile
from prune8_host.files import golden

from .session import BoardSession
from .transfer import put_file

BOARD_TESTS = Path(__file__).resolve().parents[3] / "tests" / "board"
_LINE = re.compile(r"^CASE (\S+) (PASS|FAIL)(.*)$")


@dataclass
class CaseResult:
    suite: str
    name: str
    passed: bool
    detail: str
    us: int | None = None
    alloc: int | None = None


def board_test_files() -> list[Path]:
    if not BOARD_TESTS.is_dir():
        raise FileNotFoundError(f"{BOARD_TESTS}: the on-board tests ship with the source "
                                f"tree; run prune8 test-board from a checkout")
    return sorted(BOARD_TESTS.glob("test_*.py"))


def parse_report(suite: str, text: str) -> list[CaseResult]:
    results = []
    for line in text.splitlines():
        m = _LINE.match(line.strip())
        if not m:
            continue
        name, verdict, rest = m.groups()
        us = re.search(r"us=(\d+)", rest)
        alloc = re.search(r"alloc=(\d+)", rest)
        detail = re.sub(r"\s*(us|alloc)=\d+", "", rest).strip()
        results.append(CaseResult(suite, name, verdict == "PASS", detail,
                                  int(us.group(1)) if us else None,
                                  int(alloc.group(1)) if alloc else None))
    return results


def push_golden(session: BoardSession, quiet: bool = True) -> int:
    info = session.info
    cases = golden.generate(max_weights=info["max_weights"], max_units=info["max_units"])
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "golden.bin"
        golden.write(path, cases)
        put_file(session, GOLDEN_PATH, path.read_bytes(), quiet=quiet)
    return len(cases)


def run_suite(session: BoardSession, script: Path, args: dict,
              timeout: float = 600) -> list[CaseResult]:
    """Run one tests/board script; a crash becomes a failed case naming the error."""
    code = f"ARGS = {args!r}\n" + script.read_text()
    suite = script.stem
    try:
        text = session.exec(code, timeout=timeout)
    except Exception as e:  # the board raised: report it as a case, keep going
        out = getattr(e, "error_output", "") or str(e)
        return [CaseResult(suite, suite, False, f"crashed: {out.strip().splitlines()[-1]}")]
    results = parse_report(suite, text)
    if not results:
        return [CaseResult(suite, suite, False, f"printed no CASE lines: {text[-200:]!r}")]
    return results


def run_board_tests(session: BoardSession, profile: BoardProfile,
                    only: list[str] | None = None) -> list[CaseResult]:
    push_golden(session)
    args = {"golden": GOLDEN_PATH, "heap_bytes": profile.heap_bytes}
    results = []
    for script in board_test_files():
        if only and script.stem not in only:
            continue
        results += run_suite(session, script, args)
    session.exec(f"import os\nos.remove({GOLDEN_PATH!r})")
    return results
