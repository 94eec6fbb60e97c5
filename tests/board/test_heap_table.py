"""docs/heap.md's module and buffer tables are what the firmware takes now (re-measured
on a virtual board: a module that grows fails here until the table is regenerated with
`python bench/heap_table.py --write`), and every job of prune8_host.suite.heap fits the
esp32 budget on the 32-bit VM, counted from boot."""

import re

import pytest

from prune8_host.boards import load_board
from prune8_host.device.session import BoardSession
from prune8_host.suite import heap
from support import ROOT

DOC = (ROOT / "docs" / "heap.md").read_text()


def doc_rows(header: str) -> dict[str, int]:
    """name -> bytes of the table in docs/heap.md whose header starts with `header`."""
    table = DOC[DOC.index(header):].split("\n\n")[0]
    rows = {}
    for m in re.finditer(r"^\| `([^`]+)` \| ([\d,]+) \|", table, re.M):
        rows[m.group(1)] = int(m.group(2).replace(",", ""))
    return rows


@pytest.fixture(scope="module")
def board(deployed_vboard):
    with BoardSession(deployed_vboard.port) as s:
        yield s


def test_the_module_table_is_what_each_module_takes(board):
    assert heap.module_sizes(board) == doc_rows("| module |")


def test_the_buffer_table_is_what_a_pruner_holds():
    profile = load_board("esp32")
    assert heap.buffer_sizes(profile.max_weights, profile.max_units) == \
        doc_rows("| Pruner buffer")


def test_every_job_fits_the_budget_from_boot_on_the_vm(board):
    budget = load_board("esp32").heap_bytes
    totals = heap.vm_totals(board)
    assert totals["boot (the measuring code alone)"] > 0
    over = {name: total for name, total in totals.items() if total > budget}
    assert not over, over
