"""The on-board test runner behind `prune8 test-board` and the tests that run the suite.

Writes the twin's golden vectors to the board, runs each MicroPython script of
`scripts/` (package data, so an installed prune8 carries its own suite) through the raw
REPL and collects one result per case (pass/fail, microseconds, bytes allocated).
"""

from __future__ import annotations

import re
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from prune8.protocol import GOLDEN_PATH, ROOT
from prune8_host.boards import BoardProfile
from prune8_host.device.session import BoardSession
from prune8_host.device.transfer import put_file
from prune8_host.twin.layer import Layer
from prune8_host.twin.reference import layer_mask

from . import golden, heap

SCRIPTS = Path(__file__).resolve().parent / "scripts"   # the on-board suite
MEASURE = "measure.py"  # prepended to every script: how allocation is measured
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
    """The suite's scripts, one per suite (test_*.py), in name order."""
    return sorted(SCRIPTS.glob("test_*.py"))


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


def script_code(script: Path, args: dict) -> str:
    """What a board runs for one suite script: ARGS, measure.py, the script."""
    return (f"ARGS = {args!r}\n" + (SCRIPTS / MEASURE).read_text() + "\n"
            + script.read_text())


def run_suite(session: BoardSession, script: Path, args: dict,
              timeout: float = 600) -> list[CaseResult]:
    """Run one suite script on a freshly soft-reset board (its heap figures count from
    boot, docs/heap.md); a crash becomes a failed case naming the error."""
    session.soft_reset()
    return run_script(lambda code: session.exec(code, timeout=timeout), script, args)


def run_script(run, script: Path, args: dict) -> list[CaseResult]:
    """Run one suite script with run(code) -> its output (on a board, or on the
    unix port); a crash becomes a failed case naming the error."""
    suite = script.stem
    try:
        text = run(script_code(script, args))
    except Exception as e:  # the board raised: report it as a case, keep going
        out = getattr(e, "error_output", "") or str(e)
        lines = out.strip().splitlines() or ["(no output)"]
        return [CaseResult(suite, suite, False, f"crashed: {lines[-1]}")]
    results = parse_report(suite, text)
    if not results:
        return [CaseResult(suite, suite, False, f"printed no CASE lines: {text[-200:]!r}")]
    return results


STREAM_SIDE = 256          # scripts/test_stream.py's layer: 256 x 256
STREAM_METHODS = ("magnitude", "mincut")


def stream_expectations() -> list[tuple[str, int]]:
    """What scripts/test_stream.py must find: (method, CRC-32 of the twin's mask
    words at 50 %) for the layer its LCG makes."""
    seed, raw = 12345, bytearray(STREAM_SIDE * STREAM_SIDE)
    for i in range(len(raw)):  # the script's LCG, byte for byte
        seed = (seed * 1103515245 + 12345) & 0x3FFFFFFF
        raw[i] = seed >> 22
    w = np.frombuffer(bytes(raw), np.int8).reshape(STREAM_SIDE, STREAM_SIDE)
    layer = Layer("conv", w)
    return [(m, zlib.crc32(layer_mask(layer, m, sparsity_bp=5000).words.astype("<u4")
                           .tobytes())) for m in STREAM_METHODS]


def suite_args(profile: BoardProfile, golden_path: str, scratch: str) -> dict:
    """ARGS of every suite script: where the golden vectors and a scratch store
    are, the heap budget and the job it is for, what the streaming case must find."""
    return {"golden": golden_path, "heap_bytes": profile.heap_bytes, "scratch": scratch,
            "full_capacity": heap.FULL_CAPACITY, "stream_masks": stream_expectations()}


def run_board_tests(session: BoardSession, profile: BoardProfile,
                    only: list[str] | None = None) -> list[CaseResult]:
    push_golden(session)
    args = suite_args(profile, GOLDEN_PATH, ROOT + "/suite")
    results = []
    for script in board_test_files():
        if only and script.stem not in only:
            continue
        results += run_suite(session, script, args)
    session.exec(f"import os\nos.remove({GOLDEN_PATH!r})")
    return results
