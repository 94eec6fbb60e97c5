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


QUANT_KEYS = ("bias", "mult", "shift", "relu", "in_zp", "out_zp")


def quant_params(layer: Layer) -> tuple | None:
    """(multiplier, shift, in_zp, out_zp, relu, bias bytes) of a quantized layer, else None."""
    if not all(k in layer.quant for k in QUANT_KEYS):
        return None
    q = {k: np.asarray(layer.quant[k]) for k in QUANT_KEYS}
    return (int(q["mult"]), int(q["shift"]), int(q["in_zp"]), int(q["out_zp"]),
            int(q["relu"]), q["bias"].astype("<i4").tobytes())


def layer_bytes(layer: Layer) -> bytes:
    """What a layer sends: weights, activations, calibration samples, biases."""
    act = layer.activations.tobytes() if layer.activations is not None else b""
    calib = layer.calib.tobytes() if layer.calib is not None else b""
    q = quant_params(layer)
    return layer.weights.tobytes() + act + calib + (q[5] if q else b"")


def stored_bytes(layer: Layer) -> bytes:
    """What the board stores for a layer: weights, activations, instead of the
    calibration samples the per-column sums of squares it accumulated from them, and
    the biases of a quantized layer."""
    act = layer.activations.tobytes() if layer.activations is not None else b""
    sums = b""
    if layer.calib is not None:
        sums = twin.wanda_sumsq(layer.calib).astype("<u4").tobytes()
    q = quant_params(layer)
    return layer.weights.tobytes() + act + sums + (q[5] if q else b"")


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
            q = quant_params(layer)
            header = bytes([len(name.encode())]) + name.encode() + \
                struct.pack("<HHII", rows, cols, act, calib) + \
                struct.pack("<BibbbB", 1 if q else 0, *(q[:5] if q else (0, 0, 0, 0, 0)))
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


def stream_images(session: BoardSession, code: str, images: np.ndarray,
                  labels: np.ndarray | None = None, quiet: bool = False) -> bytes:
    """Send int8 images (and a label byte after each) to the receiver `code` starts, as
    many whole images per frame as fit; return the board's reply to the end frame."""
    x = np.asarray(images, np.int8)
    items = x.view(np.uint8) if labels is None else \
        np.concatenate([x.view(np.uint8), np.asarray(labels, np.uint8)[:, None]], axis=1)
    per_frame = max(1, MAX_PAYLOAD // items.shape[1])
    if items.shape[1] > MAX_PAYLOAD:
        raise ValueError(f"an image of {items.shape[1]} bytes does not fit a frame "
                         f"({MAX_PAYLOAD} bytes)")
    with progress_bar(items.size, "images", quiet) as update, \
            session.link(code, progress=update) as link:
        for i in range(0, len(items), per_frame):
            link.request(ord("I"), items[i:i + per_frame].tobytes())
            if update:
                update(items[i:i + per_frame].size)
        return link.request(ord("E"))


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


def parse_calib(data: bytes) -> tuple[int, dict[str, np.ndarray]]:
    """calib.bin bytes -> (model id, {layer: int8 activations}), with the firmware's parser."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "calib.bin")
        with open(path, "wb") as f:
            f.write(data)
        saved = store.CALIB
        store.CALIB = path
        try:
            with open(path, "rb") as f:
                model_id = struct.unpack("<I", f.read(8)[4:])[0]
            acts = store.read_calib(model_id)
        finally:
            store.CALIB = saved
    return model_id, {n: np.frombuffer(a, np.int8).copy() for n, a in acts.items()}
