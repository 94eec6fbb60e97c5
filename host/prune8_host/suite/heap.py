"""The firmware's heap, counted from boot (docs/heap.md).

On an ESP32 the MicroPython heap is about 112 KB and the `.mpy` modules loaded from
the filesystem live on it, so every figure here is the total `gc.mem_alloc()` from a
fresh boot, module code included, never a delta on top of the imports.

Two MicroPythons measure it, and neither is an ESP32:
- the 32-bit WebAssembly VM behind the virtual board collects garbage only between
  commands (its gc.collect() inside a command does nothing), so a job run as one
  command reports everything it allocated, garbage included: an upper bound of what
  a real board holds at its peak;
- the 64-bit unix port collects like a board and honours `-X heapsize=`, so running a
  job there with the budget as its whole heap is a hard check, and a pessimistic one
  (its objects and pointers are twice the size).

JOBS are the jobs the budget is set for; `vm_totals` and `unix_need` measure them,
`module_sizes` what each firmware module keeps resident on the VM, `buffer_sizes` what
a Pruner holds at a profile's capacity.
"""

from __future__ import annotations

import ast
import math
from array import array
from pathlib import Path
from typing import NamedTuple

import numpy as np

import prune8
from prune8.formats import ROOT, SCORERS
from prune8_host.device.workflow import prune, prune_groups, push
from prune8_host.errors import BoardExecError
from prune8_host.files.graph import groups_of
from prune8_host.files.model import Model
from prune8_host.heap_law import (
    GROUP_METHODS,
    GROUP_TERMS,
    RAM,
    WEIGHT_PATTERNS,
    fit_law,
    group_shapes,
    group_terms,
    patterns,
)
from prune8_host.twin.layer import Layer, PruneOptions

FIRMWARE = Path(prune8.__file__).resolve().parent  # the firmware's sources, as installed

README_EXAMPLE = """\
import prune8
p = prune8.Pruner()
w = bytearray([1, 254, 50, 196, 3, 252, 70, 5])
p.magnitude(w)
m = p.mask(0.5)
p.apply(w, m)
print(m, p.stats(m))
"""

FULL_CAPACITY = """\
import prune8
p = prune8.Pruner()
N = p.max_weights
COLS = p.max_units if p.max_units * p.max_units <= N else N // p.max_units
ROWS = N // COLS
w = bytearray(ROWS * COLS)
for i in range(len(w)):
    w[i] = (i * 131 + 7) & 255
a = bytearray(COLS)
p.magnitude(w)
p.mask(sparsity_bp=5000)
p.mincut(w, ROWS, COLS)
p.mask(sparsity_bp=5000)
p.gradient(w, a, COLS)
p.mask(sparsity_bp=5000)
p.rows(w, ROWS, COLS)
p.mask(sparsity_bp=5000, method="bubble")
p.cols(w, ROWS, COLS)
p.mask(sparsity_bp=5000, method="bubble")
p.magnitude(w)
p.apply(w, p.mask(sparsity_bp=5000))
p.prune_rows(w, ROWS, COLS, sparsity_bp=5000)
"""

# name -> (code, target on the 32-bit VM in bytes from boot: issue "Fits a real ESP32")
JOBS = {
    "boot (the measuring code alone)": ("", None),
    "import prune8": ("import prune8\n", None),
    "import prune8; prune8.Pruner()": ("import prune8\np = prune8.Pruner()\n", 48_000),
    "the README's REPL example": (README_EXAMPLE, 52_000),
    "full capacity (every scorer, apply, prune_rows)": (FULL_CAPACITY, 64_000),
}

# Every on-board suite case that reports a heap figure stays within this share of the
# profile's budget on the 32-bit VM (issue "Fits a real ESP32": 80,000 of esp32's 100,000)
SUITE_CASE_SHARE = 0.8

AT_REST = "import prune8; prune8.Pruner()"  # the firmware at rest: heap_law's base

# Appended to a job: the total from boot. On the VM nothing is collected inside a
# command, so this is everything the job allocated; on the unix port, what it keeps.
_TOTAL = "\nimport gc\ngc.collect()\nprint('TOTAL', gc.mem_alloc())\n"


def _total(out: str) -> int:
    return int(out.split("TOTAL")[-1].split()[0])


def _settled(session) -> int:
    """Bytes allocated, read until two readings agree: the VM collects between
    commands, and what the last command left may take one more to go."""
    last = _total(session.exec(_TOTAL))
    for _ in range(4):
        now = _total(session.exec(_TOTAL))
        if now == last:
            break
        last = now
    return last


class JobHeap(NamedTuple):
    """A job's heap on the VM, bytes from boot."""
    peak: int      # the most any one REPL input held, its own garbage included
    at_rest: int   # what is held after the job, collected


def repl_inputs(code: str) -> list[str]:
    """`code` as a user types it at the REPL: one input per top-level statement."""
    return [ast.get_source_segment(code, node) + "\n" for node in ast.parse(code).body]


def vm_totals(session, jobs: dict = JOBS) -> dict[str, JobHeap]:
    """Each job typed one input at a time, as at the REPL, on a freshly soft-reset
    board. The VM collects only between inputs (a board collects whenever it needs
    room), so the total read after each input, before the next collection, holds
    everything held before it and all the input allocated, garbage included: its
    largest is an upper bound of the job's peak on a board."""
    totals = {}
    for name, (code, _) in jobs.items():
        session.soft_reset()
        peak = _total(session.exec(_TOTAL))
        for line in repl_inputs(code):
            now = _total(session.exec(line + _TOTAL))
            peak = now if now > peak else peak
        totals[name] = JobHeap(peak, _settled(session))
    return totals


def stored_prune_job(store: str, method: str, sparsity_bp: int) -> str:
    """A board prune of the model stored under `store` (a directory holding model.bin,
    in place of /prune8), as `prune8 run` makes it: the module imported first, then the
    prune; for the unix port, where a job's smallest heap is its need."""
    return ("import prune8.formats as P\n"
            "n = len(P.ROOT)\n"
            "for k in [k for k in dir(P) if k == 'ROOT' or k.endswith('_PATH')]:\n"
            f"    setattr(P, k, {store!r} + getattr(P, k)[n:])\n"
            "from prune8 import prune_model\n"
            f"r = prune_model.prune_result({method!r}, {sparsity_bp})\n"
            "assert r['ok'], r\n")


def unix_runs(port, code: str, heap: int) -> bool:
    """Whether `code` runs on the unix port with `heap` bytes of heap."""
    port.heap_bytes = heap
    try:
        port.run(code + _TOTAL)
        return True
    except BoardExecError:
        return False


def unix_need(port, code: str, hi: int = 400_000, step: int = 256) -> int:
    """The smallest -X heapsize (to `step` bytes) in which `code` runs on the unix port.
    (Where the heap is in pieces, a few hundred bytes more can fail where less ran: say
    whether a job runs in a budget with unix_runs, not by this figure.)"""
    def runs(heap: int) -> bool:
        return unix_runs(port, code, heap)

    lo = step
    if not runs(hi):
        raise ValueError(f"the job does not run in a heap of {hi} bytes")
    while hi - lo > step:
        mid = (lo + hi) // 2 // step * step
        if runs(mid):
            hi = mid
        else:
            lo = mid
    return hi


def module_imports(path: Path) -> list[str]:
    """The prune8 modules `path` imports when it is loaded (top-level imports only)."""
    found = []
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.append(node.module)
            else:
                found += [a.name for a in node.names]
    return found


def load_order(root: Path = FIRMWARE) -> list[str]:
    """Every firmware module but the package and the viper kernels (the VM has no native
    emitter), each after what it imports."""
    names = sorted(p.stem for p in root.glob("*.py")
                   if p.stem != "__init__" and not p.stem.startswith("viper"))
    done: list[str] = []

    def visit(name: str) -> None:
        if name in done or name not in names:
            return
        for dep in module_imports(root / f"{name}.py"):
            visit(dep)
        done.append(name)

    for name in names:
        visit(name)
    return done


def _import_each(session, names, sizes: dict, refused: list | None = None) -> None:
    """Import each module in its own command and put the bytes it kept into `sizes`;
    with `refused`, a module that cannot be imported yet is listed there instead."""
    before = _settled(session)
    for name in names:
        try:
            session.exec(f"import prune8.{name}\n")
        except BoardExecError:
            if refused is None:
                raise
            refused.append(name)
            continue
        now = _settled(session)
        sizes[name] = now - before
        before = now


def module_sizes(session) -> dict[str, int]:
    """Bytes each firmware module keeps on the VM's heap, collected. The deployed
    package's __init__ is replaced by an empty one meanwhile, so each module is imported
    alone, after what it imports; a module that needs the package's own names (status:
    __version__) is measured last, with the package restored."""
    init, empty = ROOT + "/__init__.mpy", ROOT + "/__init__.py"
    sizes, later = {}, []
    session.exec(f"import os\nos.rename({init!r}, {init + '.off'!r})\n"
                 f"f = open({empty!r}, 'w')\nf.close()")
    try:
        session.soft_reset()
        session.exec("import gc\nimport prune8\n")
        _import_each(session, load_order(), sizes, later)
    finally:
        session.exec(f"import os\nos.remove({empty!r})\nos.rename({init + '.off'!r}, {init!r})")
        session.soft_reset()
    if later:
        session.exec("import gc\nimport prune8\n" + "".join(f"import prune8.{n}\n"
                                                           for n in sizes))
        _import_each(session, later, sizes)
        session.soft_reset()
    return sizes


def buffer_sizes(max_weights: int, max_units: int) -> dict[str, int]:
    """The data bytes of each buffer a Pruner of this capacity allocates (CPython runs
    the firmware's own Pruner; an array's item size is the same on the board)."""
    p = prune8.Pruner(max_weights, max_units)
    shared: dict[int, list] = {}  # one buffer under several names (shared scratch): once
    for name, v in sorted(vars(p).items()):
        if isinstance(v, array):
            shared.setdefault(id(v), [v]).append(name)
    sizes = {" = ".join(names[1:]): memoryview(names[0]).nbytes
             for names in shared.values()}
    sizes.update((f"_mask.{name}", memoryview(v).nbytes)
                 for name, v in sorted(vars(p._mask).items()) if isinstance(v, (bytearray, array)))
    return sizes


# -- what a prune of one layer needs (prune8_host.heap_law) -----------------------------

def law_shapes(max_weights: int, max_units: int) -> dict[str, list[tuple[int, int]]]:
    """The layer shapes each path's laws are measured at: in RAM, a small layer, a full
    one each way round and a square one; streamed, squares of 2 and 4 times the units
    on a side, long ones each way round and one between, so rows, columns and tiles
    vary apart."""
    u, c = max_units, min(max_units, max_weights // max_units)
    return {"ram": [(max(1, u // 8), max(1, c // 8) * 4), (u, c), (c, u), (c, c)],
            "streamed": [(2 * u, 2 * u), (4 * u, 4 * u), (u, 16 * u), (16 * u, u),
                         (2 * u, 8 * u)]}


_PATTERN_OPTIONS = {"one-shot": {}, "channel": {"scope": "channel"}, "nm": {"nm": (2, 4)},
                    "steps1": {"steps": 1}, "steps2": {"steps": 2},
                    "channel-steps1": {"scope": "channel", "steps": 1},
                    "channel-steps2": {"scope": "channel", "steps": 2}}


def law_layer(rows: int, cols: int, seed: int = 20, name: str = "L"):
    """The layer the laws are measured on: random int8 weights with per-column
    activations and four calibration samples, so every scorer can prune it."""
    rng = np.random.default_rng(seed)
    return Layer(name, rng.integers(-128, 128, (rows, cols)).astype(np.int8),
                 rng.integers(0, 128, cols).astype(np.int8),
                 calib=rng.integers(-128, 128, (4, cols)).astype(np.int8))


def law_options(method: str, pattern: str, path: str):
    """The PruneOptions a law is measured with: half the entries, N:M 2:4; blocks of
    2 x 2 in RAM, 1 x 1 streamed (the most blocks, the most a block row keeps)."""
    block = None
    if method == "blocks":
        block = (2, 2) if path == "ram" else (1, 1)
    return PruneOptions(method, sparsity_bp=5000, block=block, **_PATTERN_OPTIONS[pattern])


def law_points(session, max_weights: int, max_units: int, methods=None,
               shapes=None, only=None) -> dict:
    """{method: {pattern: {path: [[rows, cols, tiles, peak], ...]}}}: the prune's reported
    peak (bytes from boot) of each shape on a board of this capacity, each layer pushed
    alone and pruned from a soft reset; `only`: {method: patterns} to measure just those
    (default: every scorer in every pattern it prunes in)."""
    methods = methods or SCORERS
    shapes = shapes or law_shapes(max_weights, max_units)
    out: dict = {}
    for path, sizes in shapes.items():
        for rows, cols in sizes:
            push(session, Model({"L": law_layer(rows, cols)}), quiet=True)
            tiles = 1 if path == "ram" else -(-rows * cols // max_weights)
            for method in methods:
                for pattern in patterns(method):
                    if only is not None and pattern not in only.get(method, ()):
                        continue
                    r = prune(session, law_options(method, pattern, path))
                    if r["layers"][0]["streamed"] != (path == "streamed"):
                        raise ValueError(f"{rows}x{cols} {method} {pattern}: not {path}")
                    out.setdefault(method, {}).setdefault(pattern, {}).setdefault(
                        path, []).append([rows, cols, tiles, r["heap_peak"]])
    return out


def group_points(session, models, max_weights: int, methods=GROUP_METHODS) -> dict:
    """{method: [[GROUP_TERMS' values..., peak], ...]}: the reported peak (bytes from boot)
    of a channel-group prune of every prunable group of each model (.tflite), pushed
    alone, as `prune8 run --structured channels` makes it (at 30 %)."""
    out: dict = {}
    for model in models:
        push(session, model, quiet=True)
        groups = [g for g in groups_of(model.tflite_model) if g.prunable]
        terms = group_terms(*group_shapes(model, groups), max_weights)
        for method in methods:
            r = prune_groups(session, model, [(g.channels, g.members) for g in groups],
                             PruneOptions(method, sparsity_bp=3000), quiet=True)
            out.setdefault(method, []).append(terms + [r["heap_peak"]])
    return out


OTHER_LAYERS = 16      # the small layers stored beside the measured one
OTHER_SHAPE = (8, 8)
LONG_NAME = "model/sequential/block_conv2d_relu_"  # a converter's kind of layer name


def other_layers_peak(session, max_weights: int, max_units: int, method: str, pattern: str,
                      prefix: str, k: int) -> int:
    """The reported peak of a prune of the in-RAM law's full-shape layer with k small
    layers (OTHER_SHAPE, named prefix0, prefix1, ...) stored and pruned beside it."""
    layers = {"L": law_layer(*law_shapes(max_weights, max_units)["ram"][1])}
    layers.update((f"{prefix}{i}", law_layer(*OTHER_SHAPE, seed=i, name=f"{prefix}{i}"))
                  for i in range(k))
    push(session, Model(layers), quiet=True)
    return prune(session, law_options(method, pattern, RAM))["heap_peak"]


def other_layer_points(session, max_weights: int, max_units: int) -> dict:
    """What each further stored layer adds to a prune's peak (bytes from boot): a layer
    of the in-RAM law's full shape pruned alone, then with OTHER_LAYERS small ones stored
    (and pruned) beside it, for every scorer in one shot and magnitude in every pattern;
    {"per_layer": {method: {pattern: bytes per further layer}}, "per_name_byte": what
    converter-long names add to magnitude's per byte, "points": [[method, pattern,
    layers, name bytes, peak], ...]: a pair of points per run, then magnitude's with
    short and with long names}."""
    runs = [(m, "one-shot") for m in SCORERS] + [("magnitude", p) for p in WEIGHT_PATTERNS[1:]]
    points = []

    def peak(method, pattern, prefix, k):
        names = sum(len(f"{prefix}{i}".encode()) for i in range(k))
        points.append([method, pattern, k, names, other_layers_peak(
            session, max_weights, max_units, method, pattern, prefix, k)])
        return points[-1][-1], names

    per_layer: dict = {}
    for method, pattern in runs:
        alone, _ = peak(method, pattern, "x", 0)
        more = peak(method, pattern, "x", OTHER_LAYERS)[0]
        per_layer.setdefault(method, {})[pattern] = other_slope(alone, more)
    short, short_names = peak("magnitude", "one-shot", "x", OTHER_LAYERS)
    long, long_names = peak("magnitude", "one-shot", LONG_NAME, OTHER_LAYERS)
    return {"per_layer": per_layer,
            "per_name_byte": max(0.0, round((long - short) / (long_names - short_names), 2)),
            "points": points}


def other_slope(alone: int, more: int) -> float:
    """Bytes per further layer, from a prune alone and with OTHER_LAYERS beside it
    (rounded up to 1/100 byte, never below zero)."""
    return max(0.0, math.ceil((more - alone) / OTHER_LAYERS * 100) / 100)


def capacity_entry(session, max_weights: int, max_units: int, boards: list[str]) -> dict:
    """heap.json's entry for one capacity: the firmware at rest, and every law's
    measurements and fit (prune8_host.heap_law)."""
    at_rest = vm_totals(session, {AT_REST: JOBS[AT_REST]})[AT_REST].at_rest
    points = law_points(session, max_weights, max_units)
    laws = {m: {pat: {path: dict(fit_law(pts, path == "streamed"), points=pts)
                      for path, pts in paths.items()}
                for pat, paths in pats.items()}
            for m, pats in points.items()}
    return {"max_weights": max_weights, "max_units": max_units, "boards": boards,
            "at_rest": at_rest, "laws": laws,
            "other_layers": other_layer_points(session, max_weights, max_units)}


def refit(entry: dict) -> dict:
    """The entry's laws fitted again from its own points (a stale fit differs)."""
    return {m: {pat: {path: dict(fit_law(law["points"], path == "streamed"),
                                 points=law["points"])
                      for path, law in paths.items()}
                for pat, paths in pats.items()}
            for m, pats in entry["laws"].items()}


def _num(x: float) -> str:
    return f"{x:,.2f}".rstrip("0").rstrip(".") if x else "0"


def law_tables(entry: dict) -> str:
    """docs/heap.md's tables of one capacity's laws: every scorer's one-shot prune, in
    RAM and streamed; then every pattern of magnitude and mincut, streamed."""
    head = ("| base | per row | per col | per tile | slack |", " ---: | ---: | ---: | ---: "
            "| ---: |")

    def cells(law):
        return (f"{law['base']:,} | {_num(law['rows'])} | {_num(law['cols'])} | "
                f"{_num(law['tiles'])} | {law['slack']:,} |")

    rows = [f"| scorer (one shot, {entry['max_weights']} weights, {entry['max_units']} "
            f"units) | path {head[0]}", f"| --- | --- |{head[1]}"]
    for method, pats in entry["laws"].items():
        for path, law in pats["one-shot"].items():
            rows.append(f"| `{method}` | {path} | {cells(law)}")
    rows += ["", f"| pattern (streamed) | scorer {head[0]}", f"| --- | --- |{head[1]}"]
    for method in ("magnitude", "mincut"):
        for pat, paths in entry["laws"][method].items():
            rows.append(f"| {pat} | `{method}` | {cells(paths['streamed'])}")
    other = entry.get("other_layers")
    if other:
        per = other["per_layer"]
        rows += ["", f"| each further stored layer ({entry['max_weights']} weights, "
                 f"{entry['max_units']} units) | scorer | bytes |", "| --- | --- | ---: |"]
        rows += [f"| one-shot | `{m}` | {_num(pats['one-shot'])} |" for m, pats in per.items()]
        rows += [f"| {p} | `magnitude` | {_num(v)} |" for p, v in per["magnitude"].items()
                 if p != "one-shot"]
        rows.append(f"| a byte of its name | | {_num(other['per_name_byte'])} |")
    if entry.get("groups"):
        rows += ["", f"| channel groups ({entry['max_weights']} weights a tile) | base | "
                 "per layer | per name byte | per member | per member tile | per channel "
                 "| per row | per col | slack |", "| --- |" + " ---: |" * 9]
        for method, law in entry["groups"].items():
            rows.append(f"| `{method}` | {law['base']:,} | "
                        + " | ".join(_num(law[t]) for t in GROUP_TERMS)
                        + f" | {law['slack']:,} |")
    return "\n".join(rows)
