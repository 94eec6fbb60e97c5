"""Masks files (MASKS.npz, docs/spec.md §9.3): per layer, its mask as uint32 words in the
layout of docs/spec.md §4.1.

Array NAME holds layer NAME's words; the JSON string array "__prune8__" records, per
layer, what the mask covers (weights, rows, columns or blocks), its length, and what
made it: method, tie rule, sparsity (bp), min_keep, min_score, and where they apply the
random seed, block size, N:M pattern and schedule steps. In memory a mask carries
those as its PruneOptions (twin.layer), with block and N:M pattern as pairs; the file
keeps them flat (`PruneOptions.record`).

Its "fingerprints" object records, per layer, the model the masks were made for: the
layer's shape, a hash of its quantization and a hash of its weights (`fingerprint`).
`check_masks_fit` refuses masks whose fingerprint is not the model's (apply, shrink,
pack, eval, stats --model), `force` overriding; a file without fingerprints (an older
prune8's, or `prune8 pull`'s without --model) is accepted with a
warning (docs/spec-decisions.md, "Masks and their model").
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from prune8 import errors
from prune8.formats import SCOPES, SCORERS, TIES
from prune8_host.errors import FileFormatError, ModelError, UsageError
from prune8_host.twin import scorers
from prune8_host.twin.layer import (
    GROUP_SCOPE,
    META_NAME,
    Layer,
    LayerMask,
    PruneOptions,
    name_problem,
)
from prune8_host.twin.schedule import MAX_STEPS

from .npzio import load_arrays, save_npz

META_KEY = META_NAME
FORMAT = 1
# An entry's fields (docs/spec.md §9.3): what the mask covers, then its options' record.
COVER_FIELDS = ("n", "unit", "rows", "cols")
FIELDS = ("n", "unit", "method", "tie", "sparsity_bp", "min_keep", "min_score", "rows", "cols",
          "seed", "br", "bc", "nm_n", "nm_m", "steps", "scope")
DEFAULTS = {"scope": "layer"}  # fields newer than the format: an older file has the default


FINGERPRINT_KEY = "fingerprints"
FINGERPRINT_FIELDS = ("shape", "quant", "weights")


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "little") + part)  # lengths: no two splits collide
    return h.hexdigest()[:32]


def fingerprint(layer: Layer) -> dict:
    """What identifies the layer a mask was made for: its shape, a hash of its
    quantization (every NAME.FIELD: scales, zero points, inference parameters) and a hash
    of its int8 weights."""
    w = np.ascontiguousarray(layer.weights, dtype=np.int8)
    quant = []
    for fld in sorted(layer.quant):
        a = np.ascontiguousarray(layer.quant[fld])
        quant += [fld.encode(), a.dtype.str.encode(), repr(a.shape).encode(), a.tobytes()]
    return {"shape": [int(d) for d in w.shape], "quant": _digest(*quant),
            "weights": _digest(w.tobytes())}


def save_masks(path: str | Path, masks: list[LayerMask],
               model: Mapping[str, Layer] | None = None) -> None:
    """Write a masks file; with `model` (the layers the masks were made for), each mask
    records its layer's fingerprint (none when a mask's layer is not in `model`)."""
    for m in masks:
        problem = name_problem(m.name)
        if problem:
            raise UsageError(f"{path}: cannot store a mask for layer {m.name[:60]!r}: {problem}")
    meta = {"format": FORMAT, "layers": {m.name: _entry(m) for m in masks}}
    if model is not None and all(m.name in model for m in masks):
        meta[FINGERPRINT_KEY] = {m.name: fingerprint(model[m.name]) for m in masks}
    arrays = {m.name: m.words.astype(np.uint32) for m in masks}
    arrays[META_KEY] = np.array(json.dumps(meta, sort_keys=True))
    save_npz(path, arrays)


def _entry(m: LayerMask) -> dict:
    return dict(n=m.n, unit=m.unit, rows=m.rows, cols=m.cols, **m.options.record())


def _int(m: dict, key: str, lo: int, hi: int | None = None) -> int:
    v = m[key]
    if isinstance(v, bool) or not isinstance(v, int) or v < lo or (hi is not None and v > hi):
        allowed = f"an integer in {lo}..{hi}" if hi is not None else f"an integer >= {lo}"
        raise ValueError(f"{key!r} must be {allowed}; got {v!r}")
    return v


def _check_entry(m) -> None:
    """The metadata of one mask: every field there, of its type and range, consistent."""
    if not isinstance(m, dict):
        raise ValueError(f"its entry must be an object of {', '.join(FIELDS)}; got "
                         f"{type(m).__name__}")
    for key, value in DEFAULTS.items():
        m.setdefault(key, value)
    missing = [k for k in FIELDS if k not in m]
    extra = sorted(k for k in m if k not in FIELDS)
    if missing or extra:
        raise ValueError("its entry " + "; ".join(
            ([f"lacks {', '.join(map(repr, missing))}"] if missing else [])
            + ([f"has unknown {', '.join(map(repr, extra))}"] if extra else [])))
    if m["method"] not in SCORERS:
        raise ValueError(f"'method' must be one of {', '.join(SCORERS)}; got {m['method']!r}")
    unit = "row" if m["scope"] == GROUP_SCOPE else scorers.find(m["method"]).unit
    if m["unit"] != unit:
        raise ValueError(f"'unit' of a {m['method']} mask is {unit!r}; got {m['unit']!r}")
    if m["tie"] not in TIES:
        raise ValueError(f"'tie' must be one of {', '.join(TIES)}; got {m['tie']!r}")
    if m["scope"] not in SCOPES or \
            (m["scope"] in ("channel", GROUP_SCOPE) and scorers.find(m["method"]).unit != "weight"):
        raise ValueError(f"'scope' must be one of {', '.join(SCOPES)} "
                         f"('channel' and 'group' for a per-weight scorer); got {m['scope']!r}")
    rows, cols = _int(m, "rows", 1), _int(m, "cols", 1)
    _int(m, "sparsity_bp", 0, errors.MAX_BP)
    _int(m, "min_score", 0, errors.MAX_SMALL)
    _int(m, "seed", 0, errors.MAX_SMALL)
    _int(m, "steps", 0, MAX_STEPS)
    br, bc = _int(m, "br", 0), _int(m, "bc", 0)
    nm_n, nm_m = _int(m, "nm_n", 0, 32), _int(m, "nm_m", 0, 32)
    if unit == "block":
        if not (br and bc) or rows % br or cols % bc:
            raise ValueError(f"a block mask's 'br' x 'bc' must tile {rows} x {cols}; got "
                             f"{br} x {bc}")
    elif br or bc:
        raise ValueError(f"'br' and 'bc' are for block masks (0 here); got {br}, {bc}")
    n = scorers.unit_count(unit, rows, cols, (br, bc))
    if nm_n or nm_m:
        if unit != "weight" or not 1 <= nm_n <= nm_m or cols % nm_m:
            raise ValueError(f"'nm_n':'nm_m' must be an N:M pattern (1 <= N <= M <= 32, M "
                             f"dividing cols = {cols}) of a per-weight mask; got "
                             f"{nm_n}:{nm_m}")
    if _int(m, "n", 1) != n:
        raise ValueError(f"'n' of a {rows} x {cols} {unit} mask is {n}; got {m['n']}")
    _int(m, "min_keep", 0, cols if m["scope"] == "channel" else n)


def _words(a: np.ndarray, n: int) -> np.ndarray:
    need = (n + 31) // 32
    if not np.issubdtype(a.dtype, np.integer) or a.ndim != 1:
        raise ValueError(f"its words must be 1-D uint32; got {a.dtype.name} {a.shape}")
    if a.size != need:
        raise ValueError(f"{a.size} words for n = {n}: need ceil(n / 32) = {need}")
    if a.size and (int(a.min()) < 0 or int(a.max()) > 0xFFFFFFFF):
        raise ValueError(f"its words must be uint32 values; got {int(a.min())}.."
                         f"{int(a.max())}")
    return a.astype(np.uint32)


def load_masks(path: str | Path) -> list[LayerMask]:
    """The masks of a masks file, every field and word checked; errors name the file
    and the layer."""
    return read_masks(path)[0]


def read_masks(path: str | Path) -> tuple[list[LayerMask], dict[str, dict] | None]:
    """(masks, fingerprints): load_masks's masks, and per layer the fingerprint of the
    model they were made for (None for a file that records none)."""
    arrays = load_arrays(path)
    if META_KEY not in arrays:
        raise FileFormatError(f"{path}: not a prune8 masks file (no {META_KEY!r} entry)")
    try:
        meta = json.loads(str(arrays[META_KEY]))
    except ValueError as e:
        raise FileFormatError(f"{path}: unreadable {META_KEY!r} entry ({e})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("layers"), dict):
        raise FileFormatError(f"{path}: the {META_KEY!r} entry must be an object with "
                              f"'format' and 'layers' (an object per layer)")
    if meta.get("format") != FORMAT:
        raise FileFormatError(f"{path}: masks format {meta.get('format')!r}, expected {FORMAT}")
    layers = meta["layers"]
    strays = [k for k in arrays if k != META_KEY and k not in layers]
    if strays:
        raise FileFormatError(f"{path}: array {strays[0]!r} has no entry in {META_KEY!r}")
    out = []
    for name, m in layers.items():
        if name not in arrays:
            raise FileFormatError(f"{path}: layer {name!r} listed but its words are missing")
        try:
            _check_entry(m)
            words = _words(arrays[name], m["n"])
            options = PruneOptions.from_record(**{k: v for k, v in m.items()
                                                  if k not in COVER_FIELDS})
            lm = LayerMask(name=name, words=words, n=m["n"], rows=m["rows"], cols=m["cols"],
                           options=options)
            lm.stats()  # no bits set past n
        except (ValueError, errors.Prune8Error) as e:
            raise FileFormatError(f"{path}: layer {name!r}: {e}") from None
        out.append(lm)
    return out, _fingerprints(path, meta, layers)


def _fingerprints(path, meta: dict, layers: dict) -> dict[str, dict] | None:
    prints = meta.get(FINGERPRINT_KEY)
    if prints is None:
        return None
    if not isinstance(prints, dict) or set(prints) != set(layers):
        raise FileFormatError(f"{path}: the {FINGERPRINT_KEY!r} entry must be an object "
                              f"with one fingerprint per layer")
    for name, fp in prints.items():
        if not (isinstance(fp, dict) and set(fp) == set(FINGERPRINT_FIELDS)
                and isinstance(fp["shape"], list)
                and all(isinstance(d, int) and not isinstance(d, bool) for d in fp["shape"])
                and isinstance(fp["quant"], str) and isinstance(fp["weights"], str)):
            raise FileFormatError(f"{path}: layer {name!r}: a fingerprint must be an object "
                                  f"of 'shape' (a list of integers), 'quant' and 'weights' "
                                  f"(strings)")
    return prints


def _same_shape(a: list[int], b: list[int]) -> bool:
    """Equal shapes, or the same count where one is flat: a .npy layer is 1-D in its file
    and masked as --rows x --cols."""
    return a == b or ((len(a) == 1 or len(b) == 1) and int(np.prod(a)) == int(np.prod(b)))


def check_masks_fit(masks_path, masks: list[LayerMask], prints: dict[str, dict] | None,
                    model: Mapping[str, Layer], model_path, force: bool = False) -> list[str]:
    """Refuse masks made for another model than `model` (ModelError, one line naming the
    layer and what differs: a layer it lacks, its shape, its quantization, its weights),
    unless `force`. Returns the warnings to print: what `force` let through, or that the
    file records no fingerprint to check."""
    warnings = []
    missing = [m.name for m in masks if m.name not in model]
    if missing:
        raise ModelError(f"{masks_path}: mask for layer {missing[0]!r}, which {model_path} "
                         f"does not have")
    if prints is None:
        return [f"{masks_path} records no fingerprint of the model it was made for (made by "
                f"prune8 pull without --model, or an older prune8): not checked against "
                f"{model_path}"]
    for m in masks:
        made_for, have = prints[m.name], fingerprint(model[m.name])
        if made_for == have or (_same_shape(made_for["shape"], have["shape"])
                                and made_for["quant"] == have["quant"]
                                and made_for["weights"] == have["weights"]):
            continue
        if not _same_shape(made_for["shape"], have["shape"]):
            what = (f"of shape {'x'.join(map(str, made_for['shape']))}; {model_path}'s is "
                    f"{'x'.join(map(str, have['shape']))}")
        elif made_for["quant"] != have["quant"]:
            what = (f"with other quantization parameters (scales, zero points) than "
                    f"{model_path}'s")
        else:
            what = f"with other weights than {model_path}'s"
        problem = f"{masks_path}: made for a layer {m.name!r} {what}"
        if not force:
            raise ModelError(problem + ": these masks belong to another model (--force "
                                       "applies them anyway)")
        warnings.append(problem + " (--force: used anyway)")
    return warnings
