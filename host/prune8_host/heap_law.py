"""What a board's heap holds of prune8, from measurements: the firmware at rest, and the
peak of pruning a layer of a given shape (docs/heap.md, "What a prune needs").

The figures are measured on the 32-bit WebAssembly VM, counted from boot (module code
included), by `bench/heap_table.py --write`, which stores them in prune8_boards'
heap.json; tests/board/test_heap_table.py re-measures them. Nothing here is a guess:
the laws are fitted to those measurements and cover every one of them.

A model's other layers count too: the board reads the whole index, and a prune prunes
them in the same command, so each further stored layer adds what a measured prune
gained per small layer stored beside it, by scorer and pattern (and a little per byte
of its name).

The firmware's code fixes the law's form: a layer in RAM lives in the Pruner's fixed
buffers, so its prune's peak is a constant plus what grows with its rows and columns
(per-row and per-column arrays); a streamed layer adds its O(rows + cols) arrays and,
on the VM, which collects only between commands, some garbage per tile. So

    need = base + rows * per_row + cols * per_col + tiles * per_tile

one law per scorer, pattern (one shot, per-channel scope, N:M, gradual) and path (in
RAM, streamed), with tiles = ceil(weights / capacity). A gradual prune of S steps is
the one-step law plus (S - 1) times what the second step added. The figures depend on
a board only through its capacity (the VM runs the same bytecode for every profile),
so they are stored per capacity; a profile of a capacity never measured has none.

A channel-group prune (prune8.channels) reads the whole model's index and groups file,
then each member a tile at a time: its need grows with the model (GROUP_TERMS: stored
layers, their names' bytes, members, tiles, the widest group, the longest and widest
member), one law per scorer, fitted the same way to chains made for it and to the zoo's
models (bench/heap_table.py; docs/heap.md, "Channel groups").
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from prune8 import scorers
from prune8.tiles import BLOCK, WEIGHT
from prune8_host.boards import BoardProfile, boards_dir
from prune8_host.errors import HeapBudgetError

DATA_NAME = "heap.json"
TERMS = ("rows", "cols", "tiles")
# Patterns, as the measurements name them: what of PruneOptions changes the prune's heap
WEIGHT_PATTERNS = ("one-shot", "channel", "nm", "steps1", "steps2", "channel-steps1",
                   "channel-steps2")
UNIT_PATTERNS = ("one-shot", "steps1", "steps2")
RAM, STREAMED = "ram", "streamed"
# A channel-group prune (prune8.channels) reads the whole model's index and every group's
# members before it scores them a tile at a time: its law's terms, in heap.json's order
GROUP_TERMS = ("layers", "name_bytes", "members", "tiles", "channels", "rows", "cols")
# the scorers a group prune of a .tflite runs with nothing but the model (gradient and
# Wanda need activations or samples the zoo's models do not carry): those measured
GROUP_METHODS = ("magnitude", "mincut", "l2", "random", "scaled")


def patterns(method: str) -> tuple[str, ...]:
    """The patterns a scorer can prune in (scope and N:M are for per-weight scores)."""
    return WEIGHT_PATTERNS if scorers.unit(method) == WEIGHT else UNIT_PATTERNS


@dataclass(frozen=True)
class Need:
    """What pruning one layer takes of the board's heap, counted from boot."""
    bytes: int
    streamed: bool


def law_value(law: dict, rows: int, cols: int, tiles: int) -> int:
    return terms_value(law, TERMS, (rows, cols, tiles))


def fit_law(points: list[list[int]], tiles: bool) -> dict:
    """The law over measured [rows, cols, tiles, peak] points (fit_terms)."""
    terms = TERMS if tiles else TERMS[:2]
    law = fit_terms([p[:len(terms)] + [p[3]] for p in points], terms)
    return {"base": law["base"], **{t: law.get(t, 0.0) for t in TERMS}, "slack": law["slack"]}


def fit_terms(points: list[list[int]], terms: tuple[str, ...]) -> dict:
    """The law over measured points (each term's value, then the peak): least-squares
    slopes (rounded to 1/100 byte, none below zero, so it never shrinks with size), then
    the smallest base that covers every point; `slack` is how far above a measurement
    the law goes at most."""
    import numpy as np  # the CLI's figures need no fit: loaded only by whoever fits

    x = np.array([[1.0] + list(p[:len(terms)]) for p in points], dtype=float)
    y = np.array([p[-1] for p in points], dtype=float)
    coef = np.linalg.lstsq(x, y, rcond=None)[0]
    law = {"base": 0}
    for name, c in zip(terms, coef[1:]):
        law[name] = max(0.0, round(float(c), 2))
    law["base"] = max(math.ceil(p[-1] - terms_value(law, terms, p)) for p in points)
    law["slack"] = max(terms_value(law, terms, p) - p[-1] for p in points)
    return law


def terms_value(law: dict, terms, values) -> int:
    """What a law says for these values of its terms (rounded up)."""
    v = law["base"]
    for t, x in zip(terms, values):
        v += law[t] * x
    return math.ceil(v)


def group_shapes(model, groups) -> tuple[list, list]:
    """group_terms' `layers` and `groups` for the channel groups (files.graph.Group) of a
    loaded model, all of whose layers a push stores."""
    shape = {name: layer.weights.shape for name, layer in model.items()}
    return ([(name, *s) for name, s in shape.items()],
            [(g.channels, [(m.layer, *shape[m.layer]) for m in g.members]) for g in groups])


def group_terms(layers, groups, max_weights: int) -> list[int]:
    """GROUP_TERMS' values for a group prune: `layers` (name, rows, cols) of the stored
    model, `groups` (channels, [(name, rows, cols) of each member]). The index holds a
    record per layer and its name; the groups file a record per member; each member is
    read a tile of max_weights at a time; the widest group's channels size the prune's
    per-channel arrays, the member with the most rows and the one with the most columns
    its per-row and per-column ones (a scorer's flows, multipliers)."""
    members = [m for _, ms in groups for m in ms]
    return [len(layers), sum(len(name.encode()) for name, _, _ in layers), len(members),
            sum(-(-rows * cols // max_weights) for _, rows, cols in members),
            max(channels for channels, _ in groups), max(rows for _, rows, _ in members),
            max(cols for _, _, cols in members)]


def pattern_of(options) -> str:
    """The measured pattern a prune with these options runs (without its step count)."""
    if options.nm:
        return "nm"
    return "channel" if options.scope == "channel" else "one-shot"


def in_ram(rows: int, cols: int, method: str, block, max_weights: int, max_units: int) -> bool:
    """Whether the board prunes the layer in the Pruner's buffers (prune8.prune_model's
    in_ram, on the host)."""
    if rows * cols > max_weights or rows > max_units or cols > max_units:
        return False
    if scorers.unit(method) != BLOCK or not block or block[0] < 1 or block[1] < 1 \
            or rows % block[0] or cols % block[1]:
        return True
    max_blocks = max(max_units, max_weights // 4)  # the Pruner's own rule
    return scorers.unit_count(BLOCK, rows, cols, block[0], block[1]) <= max_blocks


@dataclass(frozen=True)
class HeapFigures:
    """The measured figures of one capacity (max_weights, max_units)."""
    max_weights: int
    max_units: int
    at_rest: int            # import prune8; prune8.Pruner(), from boot
    laws: dict              # scorer -> pattern -> path -> law
    groups: dict | None = None  # scorer -> the law of a channel-group prune (GROUP_TERMS)
    other_layers: dict | None = None  # what each further stored layer adds (per_layer:
                                      # scorer -> pattern -> bytes; per_name_byte)

    def group_need(self, layers, groups, method: str) -> int | None:
        """The heap from boot a channel-group prune of `groups` over the stored `layers`
        (group_terms' arguments) with `method` takes; None when the scorer was never
        measured for it."""
        law = (self.groups or {}).get(method)
        if law is None:
            return None
        return terms_value(law, GROUP_TERMS, group_terms(layers, groups, self.max_weights))

    def need(self, rows: int, cols: int, options, others: int = 0,
             other_name_bytes: int = 0) -> Need:
        """The heap from boot a prune of a rows x cols layer with these options takes
        (options: a PruneOptions, or anything with its method, nm, scope, steps, block),
        in a model that stores `others` further layers, their names that many bytes (the
        board reads the whole index, and prunes them in the same command)."""
        need = self._layer_need(rows, cols, options)
        if not self.other_layers or not (others or other_name_bytes):
            return need
        more = (self._per_other_layer(options) * others
                + self.other_layers["per_name_byte"] * other_name_bytes)
        return Need(need.bytes + math.ceil(more), need.streamed)

    def need_in_model(self, name: str, rows: int, cols: int, options, stored) -> Need:
        """need() for the layer `name` of a model that stores the layers named `stored`
        (its own name among them)."""
        return self.need(rows, cols, options, len(stored) - 1,
                         sum(len(n.encode()) for n in stored) - len(name.encode()))

    def _per_other_layer(self, options) -> float:
        """What each further stored layer adds to a prune with these options: the
        scorer's measured one-shot figure, plus what magnitude's pattern added to its
        one shot (a gradual prune of S steps: the first step's, and S - 1 times what
        the second added)."""
        per = self.other_layers["per_layer"]
        mag = per["magnitude"]
        pattern = pattern_of(options)
        plus = 0.0 if pattern == "one-shot" else max(0.0, mag[pattern] - mag["one-shot"])
        if options.steps and pattern != "nm":
            prefix = "" if pattern == "one-shot" else pattern + "-"
            one = max(0.0, mag[prefix + "steps1"] - mag["one-shot"])
            two = max(0.0, mag[prefix + "steps2"] - mag["one-shot"])
            plus = one + (options.steps - 1) * max(0.0, two - one)
        return per[options.method]["one-shot"] + plus

    def _layer_need(self, rows: int, cols: int, options) -> Need:
        ram = in_ram(rows, cols, options.method, options.block, self.max_weights,
                     self.max_units)
        path = RAM if ram else STREAMED
        tiles = 1 if ram else -(-rows * cols // self.max_weights)
        laws = self.laws[options.method]
        pattern = pattern_of(options)
        if pattern == "nm" or not options.steps:
            return Need(law_value(laws[pattern][path], rows, cols, tiles), not ram)
        prefix = "" if pattern == "one-shot" else pattern + "-"
        one = law_value(laws[prefix + "steps1"][path], rows, cols, tiles)
        two = law_value(laws[prefix + "steps2"][path], rows, cols, tiles)
        return Need(one + (options.steps - 1) * max(0, two - one), not ram)


def load_data() -> dict:
    """heap.json as bench/heap_table.py wrote it."""
    return json.loads((boards_dir() / DATA_NAME).read_text(encoding="utf-8"))


def figures(profile: BoardProfile, data: dict | None = None) -> HeapFigures | None:
    """The figures of the profile's capacity; None when that capacity was never measured
    (a custom profile's own)."""
    data = load_data() if data is None else data
    for entry in data["capacities"]:
        if (entry["max_weights"], entry["max_units"]) == (profile.max_weights,
                                                          profile.max_units):
            return HeapFigures(entry["max_weights"], entry["max_units"], entry["at_rest"],
                               entry["laws"], entry.get("groups"), entry.get("other_layers"))
    return None


def refuse_over_budget(profile: BoardProfile, layers, options, stored=None) -> None:
    """Raise HeapBudgetError for the first of `layers` ((name, rows, cols) each) whose
    prune with `options` needs more heap than the profile's budget, counting every
    layer the model stores (`stored`: their names; default: `layers`' own); nothing when
    all fit, or when the profile's capacity was never measured."""
    fig = figures(profile)
    if fig is None:
        return
    names = [name for name, _, _ in layers] if stored is None else list(stored)
    for name, rows, cols in layers:
        need = fig.need_in_model(name, rows, cols, options, names)
        if need.bytes > profile.heap_bytes:
            where = "streamed from flash" if need.streamed else "in RAM"
            n = len(names) - 1
            with_others = f" (with the model's {n} other layer{'s' if n > 1 else ''})" \
                if n else ""
            raise HeapBudgetError(
                f"layer {name!r} ({rows}x{cols}, {where}) needs {need.bytes:,} bytes of "
                f"heap from boot{with_others} to prune with {options.method} on "
                f"{profile.name}, over its {profile.heap_bytes:,}-byte budget (measured: "
                f"docs/heap.md): prune it another way or on a bigger board, or pass "
                f"--ignore-heap (the board will likely raise MemoryError)")


def refuse_groups_over_budget(profile: BoardProfile, layers, groups, method: str) -> None:
    """Raise HeapBudgetError when a channel-group prune of `groups` over the stored
    `layers` (group_terms' arguments) with `method` needs more heap than the profile's
    budget; nothing when it fits, or when the capacity or the scorer was never measured."""
    fig = figures(profile)
    need = fig.group_need(layers, groups, method) if fig is not None else None
    if need is not None and need > profile.heap_bytes:
        members = sum(len(m) for _, m in groups)
        fits = sorted(((n, m) for m in fig.groups
                       if (n := fig.group_need(layers, groups, m)) <= profile.heap_bytes),
                      key=lambda nm: (nm[0], GROUP_METHODS.index(nm[1])))
        other = (f"--method {fits[0][1]} (it needs {fits[0][0]:,}), " if fits else "")
        raise HeapBudgetError(
            f"the {len(groups)} channel group(s) ({members} members over {len(layers)} "
            f"stored layers) need {need:,} bytes of heap from boot to prune with {method} "
            f"on {profile.name}, over its {profile.heap_bytes:,}-byte budget (measured: "
            f"docs/heap.md): prune with {other}on a bigger board, or each layer's rows "
            f"without --structured, or pass --ignore-heap (the board will likely raise "
            f"MemoryError)")
