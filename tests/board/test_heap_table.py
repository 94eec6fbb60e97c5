"""docs/heap.md's module and buffer tables are what the firmware takes now (re-measured
on a virtual board: a module that grows fails here until the table is regenerated with
`python bench/heap_table.py --write`), every job of prune8_host.suite.heap fits the
esp32 budget on the 32-bit VM, counted from boot, and boards/heap.json (what the CLI
tells the user fits) is what the firmware takes now, fitted as docs/heap.md says."""

import re
import tempfile
from pathlib import Path

import pytest

from prune8.formats import SCORERS
from prune8_eval import zoo
from prune8_host import heap_law
from prune8_host.boards import all_boards, load_board
from prune8_host.device.session import BoardSession
from prune8_host.files.model import load_model
from prune8_host.suite import heap
from support import ROOT

DOC = (ROOT / "docs" / "heap.md").read_text()


def doc_rows(header: str) -> dict[str, int]:
    """name -> bytes of the table in docs/heap.md whose header starts with `header` (a
    buffer shared under several names is one row: "a = b")."""
    table = DOC[DOC.index(header):].split("\n\n")[0]
    rows = {}
    for m in re.finditer(r"^\| (`[^|]+`) \| ([\d,]+) \|", table, re.M):
        rows[m.group(1).replace("`", "")] = int(m.group(2).replace(",", ""))
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


def test_every_job_fits_the_budget_and_its_target_from_boot_on_the_vm(board):
    """Each job's peak, typed one input at a time from a soft reset (an upper bound of
    a board's), within the esp32 budget and within the issue's target for it."""
    budget = load_board("esp32").heap_bytes
    totals = heap.vm_totals(board)
    assert 0 < totals["boot (the measuring code alone)"].peak < totals["import prune8"].peak
    over = {name: total for name, total in totals.items() if total.peak > budget}
    assert not over, over
    missed = {name: totals[name] for name, (_, target) in heap.JOBS.items()
              if target is not None and totals[name].peak > target}
    assert not missed, missed


# -- heap.json: what a prune of a layer needs (prune8_host.heap_law) ---------------------

DATA = heap_law.load_data()


def test_every_shipped_profile_has_heap_figures():
    for b in all_boards():
        fig = heap_law.figures(b, DATA)
        assert fig is not None and 0 < fig.at_rest < b.heap_bytes, b.name
        assert set(fig.groups) == set(heap_law.GROUP_METHODS), b.name
        assert set(fig.other_layers["per_layer"]) == set(SCORERS), b.name


def test_each_law_is_fitted_from_its_points_and_covers_them():
    for entry in DATA["capacities"]:
        assert heap.refit(entry) == entry["laws"]
        for pats in entry["laws"].values():
            for paths in pats.values():
                for law in paths.values():
                    over = [heap_law.law_value(law, r, c, t) - peak
                            for r, c, t, peak in law["points"]]
                    assert min(over) == 0 and max(over) == law["slack"]
        for method, law in entry["groups"].items():
            points = law["points"]
            assert {k: v for k, v in law.items() if k != "points"} == \
                heap_law.fit_terms(points, heap_law.GROUP_TERMS), method
            over = [heap_law.terms_value(law, heap_law.GROUP_TERMS, p) - p[-1]
                    for p in points]
            assert min(over) == 0 and max(over) == law["slack"]


def test_each_further_layer_costs_what_its_runs_gained_per_layer():
    """other_layers' per_layer is each run's slope (measured alone and with OTHER_LAYERS
    small layers beside it): every scorer in one shot, magnitude in every pattern."""
    for entry in DATA["capacities"]:
        other = entry["other_layers"]
        runs = len(SCORERS) + len(heap_law.WEIGHT_PATTERNS) - 1
        pairs = list(zip(other["points"][:2 * runs:2], other["points"][1:2 * runs:2]))
        assert len(pairs) == runs
        for alone, more in pairs:
            assert alone[:3] == [*more[:2], 0] and more[2] == heap.OTHER_LAYERS
            assert other["per_layer"][alone[0]][alone[1]] == \
                heap.other_slope(alone[-1], more[-1]) > 0


def test_the_docs_law_tables_are_heap_json_s():
    for entry in DATA["capacities"]:
        assert heap.law_tables(entry) in DOC


def test_heap_json_is_what_the_firmware_takes_now(board):
    """Re-measured on the virtual esp32: the firmware at rest, every scorer's one-shot
    prune at one shape of each path and every pattern of magnitude's (a firmware change
    that moves the heap fails here until heap.json is written again)."""
    profile = load_board("esp32")
    entry = next(e for e in DATA["capacities"] if "esp32" in e["boards"])
    assert heap.vm_totals(board, {heap.AT_REST: heap.JOBS[heap.AT_REST]})[heap.AT_REST] \
        .at_rest == entry["at_rest"]
    shapes = heap.law_shapes(profile.max_weights, profile.max_units)
    sample = {"ram": shapes["ram"][1:2], "streamed": shapes["streamed"][:1]}
    only = {m: ("one-shot",) for m in SCORERS}
    only["magnitude"] = heap_law.WEIGHT_PATTERNS
    now = heap.law_points(board, profile.max_weights, profile.max_units, shapes=sample,
                          only=only)
    assert sum(len(p) for p in now.values()) == len(SCORERS) - 1 + len(only["magnitude"])
    for method, pats in now.items():
        for pattern, paths in pats.items():
            for path, points in paths.items():
                stored = entry["laws"][method][pattern][path]["points"]
                assert points[0] in stored, (method, pattern, path, points[0])
    # magnitude's layer with the small layers beside it
    point = next(p for p in entry["other_layers"]["points"]
                 if p[:3] == ["magnitude", "one-shot", heap.OTHER_LAYERS])
    assert heap.other_layers_peak(board, profile.max_weights, profile.max_units,
                                  "magnitude", "one-shot", "x", heap.OTHER_LAYERS) == point[-1]
    # a group prune of the smallest chain, with the scorer of the most state
    model = group_model("chain0", profile.max_units)
    now = heap.group_points(board, [model], profile.max_weights, methods=("scaled",))
    assert now["scaled"][0] in entry["groups"]["scaled"]["points"]


def group_model(name, max_units):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"{name}.tflite"
        path.write_bytes(zoo.group_law_models(max_units, only=(name,))[name])
        return load_model(path)
