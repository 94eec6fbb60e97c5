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
# A script may run in parts, each from a fresh boot (a soft reset), as the tools run a
# push and then a prune: this line separates them; what comes before the first one is
# a prelude that starts every part.
SOFT_RESET = "# -- soft reset --"
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


def script_parts(script: Path, args: dict) -> list[str]:
    """What a board runs for one suite script, part by part (SOFT_RESET): ARGS,
    measure.py, the script's prelude, the part."""
    head = f"ARGS = {args!r}\n" + (SCRIPTS / MEASURE).read_text() + "\n"
    prelude, *parts = script.read_text().split(SOFT_RESET + "\n")
    return [head + prelude + part for part in parts] if parts else [head + prelude]


def script_code(script: Path, args: dict) -> str:
    """What a board runs for a suite script of one part."""
    parts = script_parts(script, args)
    if len(parts) != 1:
        raise ValueError(f"{script.name} runs in {len(parts)} parts: use script_parts")
    return parts[0]


def run_suite(session: BoardSession, script: Path, args: dict,
              timeout: float = 600) -> list[CaseResult]:
    """Run one suite script on the board, each part from a soft reset (its heap figures
    count from boot, docs/heap.md); a crash becomes a failed case naming the error."""
    def run(code: str) -> str:
        session.soft_reset()
        return session.exec(code, timeout=timeout)

    return run_script(run, script, args)


def run_script(run, script: Path, args: dict) -> list[CaseResult]:
    """Run one suite script with run(code) -> its output, from a fresh boot for each
    part (on a board, or on the unix port, a process per part); a part that crashes
    becomes a failed case naming the error, and the next part still runs."""
    suite = script.stem
    results = []
    for i, code in enumerate(script_parts(script, args)):
        name = suite if i == 0 else f"{suite}-part{i + 1}"
        try:
            text = run(code)
        except Exception as e:  # the board raised: report it as a case, keep going
            out = getattr(e, "error_output", "") or str(e)
            lines = out.strip().splitlines() or ["(no output)"]
            results.append(CaseResult(suite, name, False, f"crashed: {lines[-1]}"))
            continue
        found = parse_report(suite, text)
        if not found:
            found = [CaseResult(suite, name, False,
                                f"printed no CASE lines: {text[-200:]!r}")]
        results += found
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
