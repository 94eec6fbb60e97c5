# The packed (sparse) model's file format (docs/sparse.md; docs/spec.md §9.7).
#
# Written by the host (prune8_host.files.packed), read by the board's sparse inference
# (prune8.sparse, prune8.infer): both import this module, so the two sides cannot
# disagree about a byte. Apart from prune8.formats (the model and masks store, which a
# prune holds) so that a prune does not hold these too (docs/heap.md).

from .formats import ROOT

PACKED_PATH = ROOT + "/packed.bin"    # where `prune8 pack --port` puts it on the board
PACKED_MAGIC = b"P8S1"
# PACKED_MAGIC, PACKED_HEAD, then per layer a name and PACKED_RECORD: format, rows,
# cols, nnz, block height and width, payload bytes, then the inference parameters as in
# protocol.LAYER_FMT (rows BIAS values follow when quantized)
PACKED_HEAD = "<H"          # layer count
PACKED_RECORD = "<BHHIBBIBibbbB"
COO_ENTRY = "<HHb"          # a COO layer's row, column and value (u16 indices) ...
COO_ENTRY_WIDE = "<IIb"     # ... and with u32 indices, past 65536 weights
# the payload formats, in the order PACKED_RECORD's first field indexes
PACKED_FORMATS = ("dense", "native", "csr", "coo", "block")
