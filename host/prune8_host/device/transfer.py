"""Moving models to the board and files back, over the framed link (docs/protocol.md).

What a layer sends and how the board stores it is `prune8_host.files.records`, made once
per layer of a Model (`Model.record`); the board's files are parsed by
`prune8_host.files.boardstore`.
"""

from __future__ import annotations

import struct

import numpy as np

from prune8 import errors
from prune8.protocol import (
    BEGIN,
    BEGIN_FMT,
    COMMIT,
    DATA,
    END,
    IMAGES,
    KEEP,
    LAYER,
    MAX_PAYLOAD,
    MODEL_ID_FMT,
    OPEN,
    READ,
    READ_FMT,
    SIZE_FMT,
    WRITE,
)
from prune8_host.errors import UsageError
from prune8_host.files.model import Model
from prune8_host.files.records import check_fits, model_id, stored_size

from . import calls, patience
from .progress import progress_bar
from .session import BoardSession


def push_model(session: BoardSession, model: Model, only: list[str] | None = None,
               board_layers: list[str] | None = None, quiet: bool = False,
               kept_bytes: int = 0, kept_headers: dict[str, bytes] | None = None):
    """Send `model` to the board as its new /prune8/model.bin; returns (model id, link).

    With `only`, just those layers travel: the board's other layers (`board_layers`, in
    their order, at most `kept_bytes` of the current model.bin; `kept_headers`: their
    stored headers, as the board lists them) are kept as they are, and named layers it
    lacks are added. Refused before anything is sent when a layer's shape is past the
    board's limits or the new model.bin would not fit its filesystem.
    """
    for layer in model.values():
        if layer.weights.ndim != 2:
            raise UsageError(f"layer {layer.name!r} must be 2-D (rows, cols) to push")
        try:
            check_fits(layer)
        except errors.CapacityError as e:
            rows, cols = layer.weights.shape
            raise errors.CapacityError(f"layer {layer.name!r} ({rows} x {cols}) does not fit "
                                       f"the board: {e}") from None
    sent = [model.record(n) for n in model if not only or n in only]
    new_size = stored_size(sent) + kept_bytes   # at most: what model.bin will hold
    check_space(session, new_size)
    if only:
        order = [("keep", n) if n not in only else ("send", n) for n in board_layers or []]
        order += [("send", n) for n in only if n not in (board_layers or [])]
    else:
        order = [("send", n) for n in model]
    total = sum(len(r.data) for r in sent)
    # The model's id and every layer's CRC go ahead of the bytes, so the board writes
    # model.bin front to back and checks them (a value written behind the end of a file
    # costs LittleFS a copy of the rest). The id covers kept layers' stored headers too:
    # without them (kept_headers), none is announced (0) and the board works it out.
    heads = [(kept_headers or {}).get(name) if kind == "keep"
             else model.record(name).stored_header for kind, name in order]
    announced = 0 if None in heads else model_id(heads)
    frames = [(BEGIN, struct.pack(BEGIN_FMT, len(order), announced))]
    for kind, name in order:
        if kind == "keep":
            frames.append((KEEP, name.encode()))
            continue
        record = model.record(name)
        frames.append((LAYER, record.header))
        frames += [(DATA, record.data[i:i + MAX_PAYLOAD])
                   for i in range(0, len(record.data), MAX_PAYLOAD)]
    frames.append((END, b"\0"))
    with progress_bar(total, "push", quiet) as update, \
            session.link(calls.PUSH, progress=update) as link:
        if not announced:  # END writes the id at offset 4: the board rewrites the file
            link.bounds[END] = patience.rewrite_seconds(new_size)
        got = struct.unpack(MODEL_ID_FMT, link.exchange(frames)[-1])[0]
    return got, link


def check_space(session: BoardSession, needed: int) -> None:
    """Refuse a new model.bin of `needed` bytes that the board's filesystem cannot hold
    beside the current one (a push commits by a rename, so both exist for a moment)."""
    free, total = session.info.get("fs_free"), session.info.get("fs_total")
    if free is None or needed <= free:
        return
    raise errors.CapacityError(
        f"the model needs {needed:,} bytes of the board's filesystem but only {free:,} are "
        f"free ({total:,} in all): remove files from the board, or push fewer layers "
        f"(--layer)")


def pull_file(session: BoardSession, path: str, quiet: bool = False) -> bytes:
    """The whole content of a file under /prune8/ on the board."""
    with session.link(calls.FILES) as link:
        size = struct.unpack(SIZE_FMT, link.request(OPEN, path.encode()))[0]
        with progress_bar(size, "pull", quiet) as update:
            link.progress = update
            chunks = link.exchange(
                [(READ, struct.pack(READ_FMT, off, min(MAX_PAYLOAD, size - off)))
                 for off in range(0, size, MAX_PAYLOAD)])
            link.progress = None
        link.request(END)
    return b"".join(chunks)


def stream_images(session: BoardSession, code: str, images: np.ndarray,
                  labels: np.ndarray | None = None, quiet: bool = False) -> bytes:
    """Send int8 images (and a label byte after each) to the receiver `code` starts,
    back to back in full frames (an image may continue in the next); return the board's
    reply to the end frame."""
    x = np.asarray(images, np.int8)
    items = x.view(np.uint8) if labels is None else \
        np.concatenate([x.view(np.uint8), np.asarray(labels, np.uint8)[:, None]], axis=1)
    data = items.tobytes()
    with progress_bar(len(data), "images", quiet) as update, \
            session.link(code, progress=update) as link:
        frames = [(IMAGES, data[i:i + MAX_PAYLOAD]) for i in range(0, len(data), MAX_PAYLOAD)]
        return link.exchange(frames + [(END, b"\0")])[-1]


def put_file(session: BoardSession, path: str, data: bytes, quiet: bool = False):
    """Write `data` to `path` under /prune8/ on the board (via PATH.tmp and a rename)."""
    with progress_bar(len(data), "put", quiet) as update, \
            session.link(calls.FILES, progress=update) as link:
        link.exchange([(WRITE, path.encode())]
                      + [(DATA, data[off:off + MAX_PAYLOAD])
                         for off in range(0, len(data), MAX_PAYLOAD)]
                      + [(COMMIT, b"\0"), (END, b"\0")])
    return link
