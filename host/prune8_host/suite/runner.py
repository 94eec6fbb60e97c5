"""The on-board test runner behind `prune8 test-board` and the tests that run the suite.

Writes the twin's golden vectors to the board, runs each MicroPython script of
`scripts/` (package data, so an installed prune8 carries its own suite) through the raw
REPL and collects one result per case (pass/fail, microseconds, bytes allocated).
"""

from __future__ import annotations

import ast
import io
import re
import tempfile
import tokenize
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from prune8.formats import GOLDEN_PATH, ROOT
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
# a prelude that starts every part. A part may run as several commands, one after the
# other in the same session, as the tools import the prune's modules in a command of
# their own and then prune: NEXT_COMMAND separates them. (The virtual board collects
# only between commands, so a command's heap figure holds its own garbage alone; the
# unix port collects like a board and runs a part's commands as one program.)
SOFT_RESET = "# -- soft reset --"
NEXT_COMMAND = "# -- next command --"
_LINE = re.compile(r"^CASE (\S+) (PASS|FAIL)(.*)$")


@dataclass
class CaseResult:
    suite: str
    name: str
    passed: bool
    detail: str
    us: int | None = None      # microseconds, when the case timed its work
    alloc: int | None = None   # bytes its hot path allocated, when measured
    heap: int | None = None    # bytes held from boot at its peak (docs/heap.md), when measured


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
        figures = {k: int(v) for k, v in re.findall(r"\b(us|alloc|heap)=(\d+)", rest)}
        detail = re.sub(r"\s*\b(us|alloc|heap)=\d+", "", rest).strip()
        results.append(CaseResult(suite, name, verdict == "PASS", detail, **figures))
    return results


def push_golden(session: BoardSession, quiet: bool = True) -> int:
    info = session.info
    cases = golden.generate(max_weights=info["max_weights"], max_units=info["max_units"])
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "golden.bin"
        golden.write(path, cases)
        put_file(session, GOLDEN_PATH, path.read_bytes(), quiet=quiet)
    return len(cases)


def board_code(code: str) -> str:
    """`code` as it is sent to a board: its comments cut (line numbers kept, so a
    traceback still points at the script's line). A board's REPL holds what it is sent
    while it compiles it, and the virtual board keeps a buffer as big as the largest
    command it was sent to the end of the session (docs/heap.md): the suite's cases
    count that heap from boot."""
    lines = code.splitlines(keepends=True)
    cuts = [tok.start for tok in tokenize.generate_tokens(io.StringIO(code).readline)
            if tok.type == tokenize.COMMENT]
    for row, col in cuts:
        lines[row - 1] = lines[row - 1][:col].rstrip() + "\n"
    return "".join(lines)


def _names(code: str) -> set[str]:
    return {tok.string for tok in tokenize.generate_tokens(io.StringIO(code).readline)
            if tok.type == tokenize.NAME}


def _helpers(measure: str) -> set[str]:
    """The names measure.py defines for a script: its functions and assignments (at
    its top level, or in a try or if there)."""
    out, todo = set(), list(ast.parse(measure).body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.FunctionDef):
            out.add(node.name)
        elif isinstance(node, ast.Assign):
            out |= {n.id for t in node.targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif isinstance(node, (ast.Try, ast.If, ast.ExceptHandler)):
            for field in ("body", "handlers", "orelse", "finalbody"):
                todo += getattr(node, field, [])
    return out


def script_parts(script: Path, args: dict) -> list[list[str]]:
    """What a board runs for one suite script: per part (SOFT_RESET), its commands
    (NEXT_COMMAND), comments cut. Each part starts with ARGS (the arguments the script
    names), the kernel set ARGS["kernels"] asks for, measure.py where the script uses
    its helpers, then the script's prelude and the part's first command, each a
    command of its own: the cases count the heap from boot, and the virtual board
    keeps a buffer of its largest command's size (docs/heap.md)."""
    measure, text = (SCRIPTS / MEASURE).read_text(), script.read_text()
    uses_measure = bool(_helpers(measure) & _names(text))
    sent = text + (measure if uses_measure else "")
    # only the arguments the script or measure.py names: ARGS is on the heap its cases
    # count from boot (test_heap's job alone is ~0.7 KB of source)
    named = {k: v for k, v in args.items() if f'ARGS["{k}"]' in sent}
    head = [f"ARGS = {named!r}\n"]
    if args.get("kernels"):  # default: what prune8 chose at import
        head.append(f"import prune8\nprune8.use_kernels({args['kernels']!r})\n")
    if uses_measure:
        head.append(board_code(measure))
    prelude, *parts = text.split(SOFT_RESET + "\n")
    parts = [prelude + part for part in parts] if parts else [prelude]
    out = []
    for part in parts:
        first, *rest = (board_code(c) for c in part.split(NEXT_COMMAND + "\n"))
        if any(not c.strip() for c in rest):  # the raw REPL takes an empty input as Ctrl-D
            raise ValueError(f"{script.name}: an empty command (nothing but comments "
                             f"between two {NEXT_COMMAND!r} lines) would soft-reset the "
                             f"board")
        out.append(head + ([first] if first.strip() else []) + rest)
    return out


def script_code(script: Path, args: dict) -> str:
    """What a board runs for a suite script of one part, as one program."""
    parts = script_parts(script, args)
    if len(parts) != 1:
        raise ValueError(f"{script.name} runs in {len(parts)} parts: use script_parts")
    return "".join(parts[0])


def run_suite(session: BoardSession, script: Path, args: dict,
              timeout: float = 600) -> list[CaseResult]:
    """Run one suite script on the board, each part from a soft reset (its heap figures
    count from boot, docs/heap.md), its commands one by one; a crash becomes a failed
    case naming the error."""
    def run(code: str) -> str:
        session.soft_reset()
        return session.exec(code, timeout=timeout)

    return run_script(run, script, args,
                      then=lambda code: session.exec(code, timeout=timeout))


def run_script(run, script: Path, args: dict, then=None) -> list[CaseResult]:
    """Run one suite script with run(code) -> its output, from a fresh boot for each
    part (on a board, or on the unix port, a process per part), and then(code) for each
    further command of a part, in the same session (None: a part's commands run as one
    program). A command that crashes becomes a failed case naming the error; the next
    command and part still run."""
    suite = script.stem
    results = []
    for i, commands in enumerate(script_parts(script, args)):
        name = suite if i == 0 else f"{suite}-part{i + 1}"
        steps = [(run, "".join(commands))] if then is None else \
            [(run, commands[0])] + [(then, c) for c in commands[1:]]
        text, crashed = "", False
        for fn, code in steps:
            try:
                text += fn(code)
            except Exception as e:  # the board raised: report it as a case, keep going
                out = getattr(e, "error_output", "") or str(e)
                lines = out.strip().splitlines() or ["(no output)"]
                results.append(CaseResult(suite, name, False, f"crashed: {lines[-1]}"))
                crashed = True
        found = parse_report(suite, text)
        if not found and not crashed:
            found = [CaseResult(suite, name, False,
                                f"printed no CASE lines: {text[-200:]!r}")]
        results += found
    return results


STREAM_SIDE = 256          # scripts/test_stream.py's layer: 256 x 256
STREAM_METHODS = ("magnitude", "mincut")  # scripts/test_stream.py prunes with each: R0, R1


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
