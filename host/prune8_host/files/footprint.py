"""What a .tflite costs to run, measured: file bytes, int8 weight bytes, multiply-
accumulates, the arena TFLM's interpreter allocates for it (its recording allocator),
and TFLM's invoke time on this host; and the same for two models side by side, in one
run, with how far the second one's outputs are from the first one's."""

from __future__ import annotations

import math
import os
import statistics
import tempfile
import time

import numpy as np

from prune8_host.errors import ModelError
from prune8_host.twin import tflm

from .graph import read_graph
from .tflite import parse

TIMED_INVOKES = 101       # invokes per model, interleaved; the median is reported
_WEIGHTED = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def macs_and_weights(data: bytes) -> tuple[int, int]:
    """(multiply-accumulates of one invoke, bytes of int8 weights) over the model's
    CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED operators (every other operator does
    no multiply-accumulate worth counting)."""
    g = read_graph(parse(data))
    macs = weights = 0
    seen = set()
    for op in g.ops:
        if op.kind not in _WEIGHTED or len(op.inputs) < 2:
            continue
        w = g.shape(op.inputs[1])
        out = g.shape(op.outputs[0])
        if op.kind == "CONV_2D":
            macs += math.prod(out) * w[1] * w[2] * w[3]
        elif op.kind == "DEPTHWISE_CONV_2D":
            macs += math.prod(out) * w[1] * w[2]
        else:
            macs += math.prod(out) * w[1]
        buf = g.tensors[op.inputs[1]].buffer
        if buf not in seen and g.is_const(op.inputs[1]):
            seen.add(buf)
            weights += math.prod(w)
    return macs, weights


def arena_bytes(data: bytes) -> int:
    """The bytes TFLM's arena holds for the model after allocation (its recording
    allocator's total)."""
    it = tflm.interpreter(data)
    with tempfile.TemporaryFile() as f:
        saved = [os.dup(1), os.dup(2)]
        for fd in (1, 2):
            os.dup2(f.fileno(), fd)
        try:
            it.print_allocations()
        finally:
            for fd, s in zip((1, 2), saved):
                os.dup2(s, fd)
                os.close(s)
        f.seek(0)
        text = f.read().decode(errors="replace")
    for line in text.splitlines():
        if "Arena allocation total" in line:
            return int(line.split("total")[1].split()[0])
    raise ModelError("TFLM did not report its arena allocation")


def invoke_times(models: list[bytes], image: np.ndarray, n: int = TIMED_INVOKES) -> list[float]:
    """Median seconds of one TFLM invoke of each model on `image`, the models' invokes
    interleaved so that the machine's load falls on all of them alike."""
    its = [tflm.interpreter(m) for m in models]
    for it in its:
        shape = tuple(int(d) for d in it.get_input_details(0)["shape"])
        it.set_input(image.reshape(shape), 0)
        it.invoke()  # warm
    times: list[list[float]] = [[] for _ in its]
    for _ in range(n):
        for i, it in enumerate(its):
            t0 = time.perf_counter()
            it.invoke()
            times[i].append(time.perf_counter() - t0)
    return [statistics.median(t) for t in times]


def footprint(data: bytes) -> dict:
    macs, weights = macs_and_weights(data)
    return {"file_bytes": len(data), "weight_bytes": weights, "macs": macs,
            "arena_bytes": arena_bytes(data)}


def compare(dense: bytes, small: bytes, images: np.ndarray, source: str) -> dict:
    """Dense vs small, measured in one run: footprints, invoke times (median, this
    host), and the small model's output drift from the dense one's on `images`."""
    a, b = footprint(dense), footprint(small)
    ta, tb = invoke_times([dense, small], images[0])
    a["invoke_us"], b["invoke_us"] = round(ta * 1e6, 2), round(tb * 1e6, 2)
    ratio = {k: round(b[k] / a[k], 4) if a[k] else None for k in a}
    ratio["speedup"] = round(ta / tb, 3) if tb else None
    return {"dense": a, "small": b, "ratio": ratio,
            "drift": tflm.drift(dense, small, images), "inputs": source}


def compare_lines(c: dict) -> list[str]:
    """The comparison as lines for a terminal."""
    a, b, r = c["dense"], c["small"], c["ratio"]
    rows = [("file", "file_bytes", "B"), ("int8 weights", "weight_bytes", "B"),
            ("MACs", "macs", ""), ("TFLM arena", "arena_bytes", "B"),
            ("TFLM invoke (median, this host)", "invoke_us", "us")]
    lines = [f"{'':<32}{'dense':>12}{'small':>12}{'small/dense':>13}"]
    for label, key, unit in rows:
        lines.append(f"{label:<32}{a[key]:>12,}{b[key]:>12,}{r[key]:>13.3f}"
                     if isinstance(a[key], int) else
                     f"{label:<32}{a[key]:>12}{b[key]:>12}{r[key]:>13.3f}")
    lines.append(f"speed-up of TFLM invoke: {r['speedup']}x")
    lines.append(tflm.drift_line(c["drift"], c["inputs"]))
    return lines
