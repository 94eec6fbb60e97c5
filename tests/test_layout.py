"""The layout's rules (docs/architecture.md), checked by walking every import with ast.

- Each room of prune8_host imports only the rooms below it: commands -> suite ->
  device -> files / vboard -> twin -> the base modules (errors, boards, heap_law) ->
  the firmware package prune8, which imports nothing of the host. The studies (eval/prune8_eval, not
  installed) sit above all of them but commands; nothing installed imports them, nor
  the tests' support.
- Nothing outside commands/ and cli.py imports prune8_host.commands.
- No import cycles between modules, counting imports inside functions too.
- The wire formats are written once: no struct format literal and no frame-type letter
  outside prune8/protocol.py.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from support import ROOT

PACKAGES = {"prune8_host": ROOT / "host" / "prune8_host", "prune8": ROOT / "firmware" / "prune8",
            "prune8_eval": ROOT / "eval" / "prune8_eval", "support": ROOT / "tests" / "support"}
# MicroPython scripts the on-board suite sends to a board: data of the package, not modules
SUITE_SCRIPTS = PACKAGES["prune8_host"] / "suite" / "scripts"

# room -> the rooms it may import (its own included)
BASE = {"prune8", "base"}
ALLOWED = {
    "prune8": {"prune8"},
    "base": BASE,
    "twin": BASE | {"twin"},
    "files": BASE | {"twin", "files"},
    "vboard": BASE | {"vboard"},
    "device": BASE | {"twin", "files", "vboard", "device"},
    "suite": BASE | {"twin", "files", "device", "suite"},
    "commands": BASE | {"twin", "files", "vboard", "device", "suite", "commands"},
    # outside the installed package
    "eval": BASE | {"twin", "files", "vboard", "device", "suite", "eval"},
    "support": BASE | {"twin", "files", "vboard", "device", "suite", "support"},
}


def modules() -> dict[str, Path]:
    out = {}
    for pkg, root in PACKAGES.items():
        for path in root.rglob("*.py"):
            if SUITE_SCRIPTS in path.parents:
                continue
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join([pkg, *parts])] = path
    return out


MODULES = modules()


def room(module: str) -> str:
    parts = module.split(".")
    if parts[0] in ("prune8", "support"):
        return parts[0]
    if parts[0] == "prune8_eval":
        return "eval"
    if len(parts) == 1 or parts[1] in ("errors", "boards", "heap_law"):
        return "base"
    if parts[1] == "cli":
        return "commands"
    return parts[1]


def imports(module: str) -> set[str]:
    """The project modules `module` imports, anywhere in its body."""
    path = MODULES[module]
    is_pkg = path.name == "__init__.py"
    tree = ast.parse(path.read_text(), str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[:len(base) - node.level + (1 if is_pkg else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            names = [f"{target}.{a.name}" if f"{target}.{a.name}" in MODULES else target
                     for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in MODULES:
                name = name.rpartition(".")[0]
            if name and name != module:
                found.add(name)
    return found


GRAPH = {m: imports(m) for m in MODULES}


def test_every_room_imports_only_the_rooms_below_it():
    bad = [f"{m} ({room(m)}) imports {t} ({room(t)})"
           for m, targets in GRAPH.items() for t in sorted(targets)
           if room(t) not in ALLOWED[room(m)]]
    assert not bad, "\n".join(bad)


def test_nothing_but_the_cli_imports_commands():
    bad = [f"{m} imports {t}" for m, targets in GRAPH.items() for t in targets
           if room(t) == "commands" and room(m) != "commands"]
    assert not bad, "\n".join(bad)


def test_no_import_cycles():
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles = []

    def visit(m, path):
        state[m] = 1
        for t in sorted(GRAPH[m]):
            if state.get(t) == 1:
                cycles.append(" -> ".join(path[path.index(t):] + [t]))
            elif t not in state:
                visit(t, path + [t])
        state[m] = 2

    for m in sorted(GRAPH):
        if m not in state:
            visit(m, [m])
    assert not cycles, "\n".join(cycles)


def test_the_layout_rules_see_the_imports():
    # a guard for the walker itself: known edges are found
    assert "prune8_host.device.session" in GRAPH["prune8_host.device.workflow"]
    assert "prune8.protocol" in GRAPH["prune8.link"]
    assert "prune8_host.commands.options" in GRAPH["prune8_host.commands.workflow"]


# A struct format literal passed to struct (or numpy) outside the one table. esp_image.py
# reads esptool's image header, not a prune8 format.
FORMAT_LITERAL = re.compile(r"""struct\.\w+\(\s*["'][<>=!@]""")
FRAME_LETTER = re.compile(r"""ord\(["'][A-Z!d]["']\)|b["'][A-Z]{4,}["']""")
OWN_FORMATS = [p for m, p in MODULES.items()
               if m not in ("prune8.protocol", "prune8_host.device.esp_image")]


@pytest.mark.parametrize("path", OWN_FORMATS, ids=lambda p: str(p.relative_to(ROOT)))
def test_wire_formats_are_written_once(path):
    text = path.read_text()
    assert not FORMAT_LITERAL.search(text), "a struct format literal: name it in protocol.py"
    assert not FRAME_LETTER.search(text), "a frame-type letter: use protocol's name"


TEST_ROOMS = {"twin", "firmware", "board", "device", "files", "commands", "eval"}


def test_every_test_module_lives_in_a_room():
    """tests/README.md says where a test goes: a room's directory, or the top level for
    the distribution as a whole (these four)."""
    top = {"test_layout.py", "test_version.py", "test_smoke_layout.py", "test_wheel.py"}
    tests = ROOT / "tests"
    stray = [str(p.relative_to(tests)) for p in tests.rglob("test_*.py")
             if p.parent.name not in TEST_ROOMS and not (p.parent == tests and p.name in top)
             and "data" not in p.relative_to(tests).parts]
    assert not stray, f"put these in a room of tests/README.md: {stray}"
    assert {p.name for p in tests.iterdir() if p.is_dir() and not p.name.startswith(
        (".", "__"))} == TEST_ROOMS | {"support", "data"}


def test_no_two_test_modules_share_a_name():
    """The rooms have no __init__.py, so pytest imports each test module by its file name:
    two of the same name in two rooms fail to collect when one worker gets both (which
    pytest-xdist's distribution makes a matter of luck)."""
    seen: dict[str, str] = {}
    clashes = []
    for p in sorted((ROOT / "tests").rglob("test_*.py")):
        where = str(p.relative_to(ROOT / "tests"))
        if p.name in seen:
            clashes.append((seen[p.name], where))
        seen.setdefault(p.name, where)
    assert not clashes, f"rename one of each pair: {clashes}"
