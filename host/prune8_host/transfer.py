"""Moving models to the board and files back, over the framed link (docs/protocol.md).

The board's file formats are parsed with the firmware's own `prune8.store` (it runs on
CPython too), so the host and the board cannot disagree about them.
"""

from __future__ import annotations

import contextlib
import os
import struct
import tempfile
import zlib

import numpy as np
from tqdm import tqdm

from prune8 import errors, store
from prune8_host import twin
from prune8_host.link import MAX_PAYLOAD
from prune8_host.masks import UNITS, LayerMask
from prune8_host.model import Layer
from prune8_host.session import BoardSession

PUSH = "from prune8 import remote;remote.push()"
FILES = "from prune8 import remote;remote.files()"


@contextlib.contextmanager
def progress_bar(total: int, desc: str, quiet: bool):
    """A byte progress bar that appears only for transfers lasting over a second."""
    if quiet:
        yield None
        return
    bar = tqdm(total=total, desc=desc, unit="B", unit_scale=True, delay=1.0, leave=False)
    try:
        yield bar.update
    finally:
        bar.close()


def layer_bytes(layer: Layer) -> bytes:
    """What a layer sends: weights, then activations, then calibration samples."""
    act = layer.activations.tobytes() if layer.activations is not None else b""
    calib = layer.calib.tobytes() if layer.calib is not None else b""
    return layer.weights.tobytes() + act + calib


def stored_bytes(layer: Layer) -> bytes:
    """What the board stores for a layer: weights, activations, and instead of the
    calibration samples the per-column sums of squares it accumulated from them."""
    act = layer.activations.tobytes() if layer.activations is not None else b""
    sums = b""
    if layer.calib is not None:
        sums = twin.wanda_sumsq(layer.calib).astype("<u4").tobytes()
    return layer.weights.tobytes() + act + sums


def layer_crc(layer: Layer) -> int:
    """The CRC-32 the board records for a layer (so the host can tell it is the same)."""
    return zlib.crc32(stored_bytes(layer))


def check_fits(layer: Layer, max_weights: int, max_units: int) -> None:
    """The board's own capacity checks, made before any byte is sent."""
    rows, cols = layer.weights.shape
    if layer.n > max_weights:
        raise errors.capacity_weights(layer.n, max_weights)
    if rows > max_units:
        raise errors.capacity_units("rows", rows, max_units)
    if cols > max_units:
        raise errors.capacity_units("cols", cols, max_units)


def push_model(session: BoardSession, model: dict[str, Layer], only: list[str] | None = None,
               board_layers: list[str] | None = None, quiet: bool = False):
    """Send `model` to the board as its new /prune8/model.bin; returns (model id, link).

    With `only`, just those layers travel: the board's other layers (`board_layers`, in
    their order) are kept as they are, and named layers it lacks are added.
    """
    for layer in model.values():
        if layer.weights.ndim != 2:
            raise ValueError(f"layer {layer.name!r} must be 2-D (rows, cols) to push")
        check_fits(layer, session.info["max_weights"], session.info["max_units"])
    if only:
        order = [("keep", n) if n not in only else ("send", n) for n in board_layers or []]
        order += [("send", n) for n in only if n not in (board_layers or [])]
    else:
        order = [("send", n) for n in model]
    total = sum(len(layer_bytes(model[n])) for kind, n in order if kind == "send")
    with progress_bar(total, "push", quiet) as update, \
            session.link(PUSH, progress=update) as link:
        link.request(ord("B"), struct.pack("<H", len(order)))
        for kind, name in order:
            if kind == "keep":
                link.request(ord("K"), name.encode())
                continue
            layer = model[name]
            rows, cols = layer.weights.shape
            data = layer_bytes(layer)
            act = 0 if layer.activations is None else layer.activations.size
            calib = 0 if layer.calib is None else layer.calib.shape[0]
            header = bytes([len(name.encode())]) + name.encode() + \
                struct.pack("<HHII", rows, cols, act, calib)
            link.request(ord("L"), header)
            for i in range(0, len(data), MAX_PAYLOAD):
                link.request(ord("D"), data[i:i + MAX_PAYLOAD])
        model_id = struct.unpack("<I", link.request(ord("E")))[0]
    return model_id, link


def pull_file(session: BoardSession, path: str, quiet: bool = False) -> bytes:
    """The whole content of a file under /prune8/ on the board."""
    with session.link(FILES) as link:
        size = struct.unpack("<I", link.request(ord("O"), path.encode()))[0]
        chunks = []
        with progress_bar(size, "pull", quiet) as update:
            for off in range(0, size, MAX_PAYLOAD):
                chunk = link.request(ord("R"), struct.pack("<IH", off, min(MAX_PAYLOAD,
                                                                          size - off)))
                chunks.append(chunk)
                if update:
                    update(len(chunk))
        link.request(ord("E"))
    return b"".join(chunks)


def put_file(session: BoardSession, path: str, data: bytes, quiet: bool = False):
    """Write `data` to `path` under /prune8/ on the board (via PATH.tmp and a rename)."""
    with progress_bar(len(data), "put", quiet) as update, \
            session.link(FILES, progress=update) as link:
        link.request(ord("W"), path.encode())
        for off in range(0, len(data), MAX_PAYLOAD):
            link.request(ord("D"), data[off:off + MAX_PAYLOAD])
        link.request(ord("C"))
        link.request(ord("E"))
    return link


def parse_masks(data: bytes) -> tuple[int, list[LayerMask]]:
    """masks.bin bytes -> (model id, masks), with the firmware's parser."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "masks.bin")
        with open(path, "wb") as f:
            f.write(data)
        model_id, index = store.read_masks_index(path)
    out = []
    for m in index:
        words = np.frombuffer(data[m.offset:m.offset + m.nbytes], "<u4").astype(np.uint32)
        out.append(LayerMask(name=m.name, words=words, n=m.n, unit=UNITS[m.method],
                             method=m.method, tie=m.tie, sparsity_bp=m.bp,
                             min_keep=m.min_keep, min_score=m.min_score, rows=m.rows,
                             cols=m.cols, seed=m.seed, br=m.br, bc=m.bc, nm_n=m.nm_n,
                             nm_m=m.nm_m, steps=m.steps))
    return model_id, out
