"""Sparse storage formats for pruned int8 layers, with exact sizes and lossless round trips.

A layer is a 2-D int8 array W (rows x cols, row-major); "non-zero" means W != 0, so a
format stores pruned weights and natural zeros alike by omission. Index fields are u16
when every index fits (rows * cols <= 65536), u32 otherwise. All little-endian.

| format | payload | bytes |
| --- | --- | --- |
| dense  | W | rows * cols |
| native | mask words (bit i set = W[i] != 0), then the non-zero values | 4 ceil(n/32) + nnz |
| csr    | row pointers (rows + 1), column indices (nnz), values (nnz) | w (rows + 1) + w nnz + nnz |
| coo    | per non-zero: row, column, value | (2 w + 1) nnz |
| block  | block mask words (bit b set = block b has a non-zero), then the dense values of those blocks, row-major within each | 4 ceil(nb/32) + br bc nzb |

`pack_layer` picks the smallest (ties go to the simpler format, in the order above).
docs/sparse.md describes the packed model file (`write_packed` / `read_packed`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from prune8.formats import BIAS, MULT, QUANT_CHANNEL, QUANT_NONE, QUANT_TENSOR, SHIFT
from prune8.packed_format import PACKED_FORMATS, PACKED_HEAD, PACKED_MAGIC, PACKED_RECORD
from prune8_host.errors import FileFormatError, UsageError
from prune8_host.twin.bits import popcount
from prune8_host.twin.layer import Layer
from prune8_host.twin.mask import mask_from_keep, mask_to_keep

from .inputs import check_input
from .output import PACKED_SUFFIX, check_suffix, write_output
from .records import QuantParams

FORMATS = PACKED_FORMATS
BLOCK_SIZES = ((1, 4), (4, 1), (2, 2), (4, 4), (2, 8), (8, 2))  # tried by pack_layer


@dataclass(frozen=True)
class Packed:
    """One layer in one format: `payload` decodes back to the layer exactly. `quant`
    carries a quantized layer's inference parameters (records.QuantParams: multiplier, shift,
    in_zp, out_zp,
    relu, int32 bias bytes) so a board can run the layer from its packed form."""
    format: str
    rows: int
    cols: int
    nnz: int
    payload: bytes
    br: int = 0
    bc: int = 0
    quant: QuantParams | None = None

    @property
    def size(self) -> int:
        return len(self.payload)


def index_width(rows: int, cols: int) -> int:
    return 2 if rows * cols <= 65536 else 4


def _idx(width: int) -> str:
    return "<u2" if width == 2 else "<u4"


def expected_size(fmt: str, w: np.ndarray, br: int = 0, bc: int = 0) -> int:
    """The payload size of a format by its formula (docs above), without encoding."""
    rows, cols = w.shape
    nnz = int(np.count_nonzero(w))
    iw = index_width(rows, cols)
    if fmt == "dense":
        return rows * cols
    if fmt == "native":
        return 4 * ((rows * cols + 31) // 32) + nnz
    if fmt == "csr":
        return iw * (rows + 1) + iw * nnz + nnz
    if fmt == "coo":
        return (2 * iw + 1) * nnz
    nb = (rows // br) * (cols // bc)
    blocks = w.reshape(rows // br, br, cols // bc, bc).swapaxes(1, 2)
    nzb = int(np.count_nonzero(blocks.reshape(nb, -1).any(axis=1)))
    return 4 * ((nb + 31) // 32) + br * bc * nzb


def expected_payload(p: Packed) -> int:
    """The payload size a packed layer's record announces (the block format's also
    counts the blocks its mask keeps)."""
    rows, cols, nnz = p.rows, p.cols, p.nnz
    iw = index_width(rows, cols)
    if p.format == "dense":
        return rows * cols
    if p.format == "native":
        return 4 * ((rows * cols + 31) // 32) + nnz
    if p.format == "csr":
        return iw * (rows + 1) + iw * nnz + nnz
    if p.format == "coo":
        return (2 * iw + 1) * nnz
    nb = (rows // p.br) * (cols // p.bc)
    nw = 4 * ((nb + 31) // 32)
    kept = popcount(np.frombuffer(p.payload[:nw], np.uint8))
    return nw + p.br * p.bc * kept


def encode(fmt: str, w: np.ndarray, br: int = 0, bc: int = 0) -> Packed:
    w = np.asarray(w)
    if w.dtype != np.int8 or w.ndim != 2:
        raise UsageError(f"a layer to pack must be a 2-D int8 array; got {w.dtype} {w.shape}")
    rows, cols = w.shape
    flat = w.reshape(-1)
    nz = flat != 0
    nnz = int(np.count_nonzero(nz))
    iw = _idx(index_width(rows, cols))
    if fmt == "dense":
        payload = w.tobytes()
    elif fmt == "native":
        payload = mask_from_keep(nz).astype("<u4").tobytes() + flat[nz].tobytes()
    elif fmt == "csr":
        counts = np.count_nonzero(w, axis=1)
        ptr = np.concatenate([[0], np.cumsum(counts)]).astype(iw)
        cidx = np.nonzero(w)[1].astype(iw)
        payload = ptr.tobytes() + cidx.tobytes() + flat[nz].tobytes()
    elif fmt == "coo":
        r, c = np.nonzero(w)
        rec = np.zeros(nnz, dtype=[("r", iw), ("c", iw), ("v", "i1")])
        rec["r"], rec["c"], rec["v"] = r, c, w[r, c]
        payload = rec.tobytes()
    elif fmt == "block":
        if br < 1 or bc < 1 or rows % br or cols % bc:
            raise UsageError(f"block {br}x{bc} does not tile a {rows}x{cols} layer")
        blocks = w.reshape(rows // br, br, cols // bc, bc).swapaxes(1, 2).reshape(-1, br * bc)
        keep = blocks.any(axis=1)
        payload = mask_from_keep(keep).astype("<u4").tobytes() + blocks[keep].tobytes()
    else:
        raise UsageError(f"format must be one of {', '.join(FORMATS)}; got {fmt!r}")
    return Packed(fmt, rows, cols, nnz, payload, br if fmt == "block" else 0,
                  bc if fmt == "block" else 0)


def decode(p: Packed, where: str = "packed layer") -> np.ndarray:
    """The dense int8 layer a packed one holds (FileFormatError if it cannot)."""
    if p.rows < 1 or p.cols < 1 or not 0 <= p.nnz <= p.rows * p.cols:
        raise FileFormatError(f"{where}: a {p.rows} x {p.cols} layer with {p.nnz} non-zeros")
    if p.format == "block" and (p.br < 1 or p.bc < 1 or p.rows % p.br or p.cols % p.bc):
        raise FileFormatError(f"{where}: blocks of {p.br} x {p.bc} do not tile "
                              f"{p.rows} x {p.cols}")
    if p.size != expected_payload(p):
        raise FileFormatError(f"{where}: a {p.format} payload of {p.size} bytes; its "
                              f"shape and {p.nnz} non-zeros make {expected_payload(p)}")
    try:
        return _decode(p)
    except (ValueError, IndexError) as e:
        raise FileFormatError(f"{where}: its {p.format} payload does not decode ({e})") \
            from None


def _decode(p: Packed) -> np.ndarray:
    rows, cols, nnz, data = p.rows, p.cols, p.nnz, p.payload
    n = rows * cols
    iw = index_width(rows, cols)
    idx = _idx(iw)
    out = np.zeros(n, np.int8)
    if p.format == "dense":
        out[:] = np.frombuffer(data, np.int8, n)
    elif p.format == "native":
        nw = 4 * ((n + 31) // 32)
        keep = mask_to_keep(np.frombuffer(data[:nw], "<u4"), n)
        out[keep] = np.frombuffer(data[nw:], np.int8, nnz)
    elif p.format == "csr":
        ptr = np.frombuffer(data, idx, rows + 1).astype(np.int64)
        cidx = np.frombuffer(data, idx, nnz, iw * (rows + 1)).astype(np.int64)
        vals = np.frombuffer(data, np.int8, nnz, iw * (rows + 1 + nnz))
        if ptr[0] != 0 or ptr[-1] != nnz or np.any(np.diff(ptr) < 0) or np.any(cidx >= cols):
            raise ValueError("row pointers or column indices out of range")
        r = np.repeat(np.arange(rows), np.diff(ptr))
        out[r * cols + cidx] = vals
    elif p.format == "coo":
        rec = np.frombuffer(data, dtype=[("r", idx), ("c", idx), ("v", "i1")], count=nnz)
        if np.any(rec["r"] >= rows) or np.any(rec["c"] >= cols):
            raise ValueError("row or column indices out of range")
        out[rec["r"].astype(np.int64) * cols + rec["c"]] = rec["v"]
    elif p.format == "block":
        br, bc = p.br, p.bc
        nb = (rows // br) * (cols // bc)
        nw = 4 * ((nb + 31) // 32)
        keep = mask_to_keep(np.frombuffer(data[:nw], "<u4"), nb)
        blocks = np.zeros((nb, br * bc), np.int8)
        blocks[keep] = np.frombuffer(data[nw:], np.int8).reshape(-1, br * bc)
        out = blocks.reshape(rows // br, cols // bc, br, bc).swapaxes(1, 2).reshape(-1)
    else:
        raise FileFormatError(f"unknown packed format {p.format!r}")
    return out.reshape(rows, cols)


def candidates(w: np.ndarray) -> list[Packed]:
    """Every format for w (block-sparse with each block size that tiles it)."""
    rows, cols = w.shape
    out = [encode(f, w) for f in FORMATS[:-1]]
    out += [encode("block", w, br, bc) for br, bc in BLOCK_SIZES
            if rows % br == 0 and cols % bc == 0]
    return out


def pack_layer(w: np.ndarray) -> Packed:
    """The smallest encoding of w (the first, in FORMATS order, on a tie)."""
    return min(candidates(w), key=lambda p: p.size)


# -- packed model file ----------------------------------------------------------------------

def packed_bytes(layers: dict[str, Packed]) -> bytes:
    """A packed model (docs/sparse.md), as written to a file or to the board."""
    out = bytearray(PACKED_MAGIC + struct.pack(PACKED_HEAD, len(layers)))
    for name, p in layers.items():
        raw = name.encode()
        q = p.quant
        out += bytes([len(raw)]) + raw + struct.pack(
            PACKED_RECORD, FORMATS.index(p.format), p.rows, p.cols, p.nnz, p.br, p.bc, p.size,
            *(q.header if q else (QUANT_NONE, 0, 0, 0, 0, 0)))
        if q:
            out += q.tail
        out += p.payload
    return bytes(out)


def write_packed(path, layers: dict[str, Packed]) -> int:
    """Write a packed model (docs/sparse.md); returns the file size. A name that says
    another format (x.tflite, x.npz) is refused: a packed model runs only on prune8."""
    check_suffix(path, PACKED_SUFFIX)
    return write_output(path, packed_bytes(layers))


def read_packed(path) -> dict[str, Packed]:
    check_input(path, "a packed model")  # a FIFO would block, /dev/zero never end
    with open(path, "rb") as f:
        return parse_packed(f.read(), str(path))


def parse_packed(data: bytes, where: str = "packed model") -> dict[str, Packed]:
    """The layers of a packed model; a truncated or inconsistent file is refused whole
    (each layer's payload must decode to its shape)."""
    if data[:len(PACKED_MAGIC)] != PACKED_MAGIC:
        raise FileFormatError(f"{where}: not a prune8 packed model (magic {data[:4]!r})")
    pos = len(PACKED_MAGIC)

    def take(n: int, what: str) -> bytes:
        nonlocal pos
        if pos + n > len(data):
            raise FileFormatError(f"{where}: truncated ({len(data)} bytes) in {what}")
        pos += n
        return data[pos - n:pos]

    (count,) = struct.unpack(PACKED_HEAD, take(struct.calcsize(PACKED_HEAD), "the header"))
    out = {}
    for i in range(count):
        raw = take(take(1, f"layer {i}'s name")[0], f"layer {i}'s name")
        try:
            name = raw.decode()
        except UnicodeDecodeError:
            raise FileFormatError(f"{where}: layer {i}'s name is not UTF-8") from None
        f, rows, cols, nnz, br, bc, size, quant, *params = struct.unpack(
            PACKED_RECORD, take(struct.calcsize(PACKED_RECORD), f"layer {name!r}'s record"))
        if f >= len(FORMATS) or name in out:
            raise FileFormatError(f"{where}: layer {name!r}: " + (
                f"unknown format {f}" if f < 256 and name not in out else "listed twice"))
        q = None
        if quant > QUANT_CHANNEL:
            raise FileFormatError(f"{where}: layer {name!r}: unknown quantization {quant}")
        if quant:
            bias = take(struct.calcsize(BIAS) * rows, f"layer {name!r}'s biases")
            channels = b"" if quant == QUANT_TENSOR else take(
                (struct.calcsize(MULT) + struct.calcsize(SHIFT)) * rows,
                f"layer {name!r}'s per-channel parameters")
            q = QuantParams(quant, *params, bias=bias, channels=channels)
        p = Packed(FORMATS[f], rows, cols, nnz, take(size, f"layer {name!r}'s payload"),
                   br, bc, q)
        decode(p, f"{where}: layer {name!r}")  # refuses a payload of another shape
        out[name] = p
    if pos != len(data):
        raise FileFormatError(f"{where}: {len(data) - pos} bytes after the last layer")
    return out


def packed_model(layers: dict[str, Packed]):
    """The dense model a packed one holds (its layers with their quantization)."""
    out = {}
    for name, p in layers.items():
        quant = {}
        q = p.quant
        if q:
            rows = p.rows
            mult, shift = np.int32(q.multiplier), np.int32(q.shift)
            if q.kind == QUANT_CHANNEL:
                mult = np.frombuffer(q.channels, np.dtype(MULT), rows).astype(np.int32)
                shift = np.frombuffer(q.channels, np.dtype(SHIFT), rows,
                                      np.dtype(MULT).itemsize * rows).astype(np.int32)
            quant = {"bias": np.frombuffer(q.bias, np.dtype(BIAS)).astype(np.int32),
                     "mult": mult, "shift": shift, "relu": np.int8(q.relu),
                     "in_zp": np.int32(q.in_zp), "out_zp": np.int32(q.out_zp)}
        out[name] = Layer(name, decode(p), quant=quant)
    return out
