"""Files of the board's store (docs/protocol.md, "Storage on the board"), read on the
host with the firmware's own parser (`prune8.store` runs on CPython too), so the host
and the board cannot disagree about them."""

from __future__ import annotations

import os
import struct
import tempfile

import numpy as np

from prune8 import calib, store
from prune8.formats import STORE_HEAD
from prune8.groups_format import GROUP_RECORD, GROUPS_MAGIC, MEMBER_RECORD, ROLES, TABLE_ENTRY
from prune8_host.errors import ModelError
from prune8_host.twin.layer import LayerMask, PruneOptions


def _parsed(data: bytes, reader):
    # The firmware's parsers read files, as the board does: give them one.
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "store.bin")
        with open(path, "wb") as f:
            f.write(data)
        return reader(path)


def parse_masks(data: bytes) -> tuple[int, list[LayerMask]]:
    """masks.bin bytes -> (model id, masks)."""
    model_id, index = _parsed(data, store.read_masks_index)
    out = []
    for m in index:
        words = np.frombuffer(data[m.offset:m.offset + m.nbytes], "<u4").astype(np.uint32)
        options = PruneOptions.from_record(
            method=m.method, tie=m.tie, sparsity_bp=m.bp, min_keep=m.min_keep,
            min_score=m.min_score, seed=m.seed, br=m.br, bc=m.bc, nm_n=m.nm_n, nm_m=m.nm_m,
            steps=m.steps, scope=m.scope)
        out.append(LayerMask(name=m.name, words=words, n=m.n, rows=m.rows, cols=m.cols,
                             options=options))
    return model_id, out


def parse_calib(data: bytes) -> tuple[int, dict[str, np.ndarray]]:
    """calib.bin bytes -> (model id, {layer: int8 activations})."""
    model_id, acts = _parsed(data, calib.read_calib_file)
    return model_id, {n: np.frombuffer(a, np.int8).copy() for n, a in acts.items()}


def member_table(member, rows: int, cols: int, channels: int) -> np.ndarray:
    """A group member (twin.channels.Member) as the board's table: the group channel that
    each row (role rows) or column (cols) of the layer makes or reads, -1 for none,
    shortened to its shortest period P (unit u's channel is entry u % P; P divides the
    units). A member no table can say (a unit of two channels) is refused."""
    units = rows if member.role == "rows" else cols
    index = np.asarray(member.index).reshape(channels, -1)
    table = np.full(units, -1, np.int64)
    for ch, us in enumerate(index):
        for u in us[us >= 0].tolist():
            if table[u] != -1:
                raise ModelError(f"layer {member.layer!r}: {member.role[:-1]} {u} belongs "
                                 f"to two channels of one group")
            table[u] = ch
    for period in range(1, units + 1):
        if units % period == 0 and (table.reshape(-1, period) == table[:period]).all():
            return table[:period]
    raise AssertionError("the whole table is a period")


def groups_file(model_id: int, groups, layers) -> bytes:
    """The board's groups.bin (groups_format.GROUP_RECORD) for (channels, members) pairs of
    the model `layers` (name -> twin Layer) whose id the board gave it."""
    if any(channels > 32767 for channels, _ in groups):
        raise ModelError("a channel group of more than 32767 channels is past the board's "
                         "tables")
    out = [GROUPS_MAGIC, struct.pack(STORE_HEAD, model_id, len(groups))]
    for channels, members in groups:
        out.append(struct.pack(GROUP_RECORD, channels, len(members)))
        for m in members:
            rows, cols = layers[m.layer].weights.shape
            table = member_table(m, rows, cols, channels)
            name = m.layer.encode()
            out += [bytes([len(name)]), name,
                    struct.pack(MEMBER_RECORD, ROLES.index(m.role), table.size),
                    table.astype(TABLE_ENTRY).tobytes()]
    return b"".join(out)
