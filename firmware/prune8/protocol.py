# The wire and storage formats, in one place (docs/protocol.md, docs/sparse.md;
# what both sides agree on: docs/spec.md §9.6, §9.7).
#
# Frame types and link constants of the serial link, the struct format of every frame
# payload and of every record stored under /prune8/, the store paths, and the names
# whose index a record holds. The board (link, the receivers, store, sparse) and the
# host (prune8_host.device, prune8_host.files) both import this module, so the two
# sides cannot disagree about a byte.

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

# -- frames: 0xA5 | type | seq u16 LE | len - 1 | payload | CRC-32 LE over type..payload

SYNC = const(0xA5)          # first byte of a frame; the board hunts for it
ACK = const(0x06)           # board answer, then the frame's seq (SEQ): applied
NAK = const(0x15)           # board answer, then the frame's seq (SEQ): damaged, resend
MAX_PAYLOAD = const(256)    # payload bytes per frame: the length byte holds len - 1
HEADER = const(5)           # sync, type, seq lo, seq hi, len - 1
TRAILER = const(4)          # the CRC
FRAME_HEAD = "<BHB"         # type, seq, len - 1 (after SYNC)
SEQ = "<H"                  # after ACK / NAK
CRC = "<I"                  # CRC-32 (IEEE, as zlib and binascii compute it)

# Frame types, host to board. The value is the ASCII letter docs/protocol.md names.
BEGIN = const(0x42)         # B: a model follows; payload BEGIN_FMT
LAYER = const(0x4C)         # L: u8 name length, name, LAYER_FMT
DATA = const(0x44)          # D: the next bytes of a layer or of a file being written
KEEP = const(0x4B)          # K: copy this layer (payload: its name) from the stored model
END = const(0x45)           # E: commit a push / end a file session / reply with a result
OPEN = const(0x4F)          # O: open a file for reading (payload: its path); REPLY SIZE_FMT
READ = const(0x52)          # R: READ_FMT; REPLY with those bytes
WRITE = const(0x57)         # W: open PATH.tmp for writing (payload: PATH)
COMMIT = const(0x43)        # C: rename PATH.tmp over PATH
IMAGES = const(0x49)        # I: images (calibrate), or images and label bytes (evaluate), back
                            # to back: an item may continue in the next frame
ABORT = const(0x58)         # X: end any receiver; nothing is committed
BAUD = const(0x55)          # U: BAUD_FMT: change the line's baud for the rest of a transfer
                            # (docs/protocol.md, "Baud switch"); handled by every receiver
# Frame types, board to host (same seq as the frame they answer).
REPLY = const(0x64)         # d: data
ERROR = const(0x21)         # !: UTF-8 message; the receiver refuses the request

# layer count, and the id of the model being pushed (the CRC-32 of its layers' stored
# headers: the board checks it at END) or 0: the board works it out at END and writes it
# into the file's header then, which LittleFS pays for with a copy of the whole file
BEGIN_FMT = "<HI"
MAX_NAME = const(229)       # UTF-8 bytes of a layer name: what a LAYER frame holds beside
                            # LAYER_FMT, MAX_PAYLOAD - 1 - calcsize(LAYER_FMT)
# rows, cols, activation bytes, calibration samples, then the int8 inference parameters:
# quantization (QUANT_*), multiplier, shift (per tensor; per channel they follow the
# biases), input and output zero points, fused ReLU; whether the layer comes with the
# scale-aware score's per-row multipliers (SCALE values, after everything else); and
# the CRC-32 of the bytes the board will store for it (checked when the layer is
# complete), or 0: the board fills its record's CRC in then, a write into the file
# behind its end, which LittleFS pays for with a copy of the layer
LAYER_FMT = "<HHIIBibbbBBI"
QUANT_NONE = const(0)       # no int8 inference parameters
QUANT_TENSOR = const(1)     # one multiplier and shift for the layer
QUANT_CHANNEL = const(2)    # one per row (output channel): rows MULT, then rows SHIFT
MODEL_ID_FMT = "<I"         # END's reply to a push: the committed model's id
SIZE_FMT = "<I"             # OPEN's reply: the file's size
READ_FMT = "<IH"            # offset, length (at most MAX_PAYLOAD)
BAUD_FMT = "<IIB"           # new rate, the line's rate now (to go back to), step (BAUD_*)
BAUD_SWITCH = const(0)      # answered at the old rate with the rate the board switches to
                            # (0: it cannot, or the request came twice), then it switches
BAUD_CONFIRM = const(1)     # sent at the new rate; answered with the board's current rate
BAUD_REPLY = "<I"           # the answer to both steps: a rate
SWITCH_MS = const(1000)     # how long the board waits at the new rate for BAUD_CONFIRM
                            # before it goes back to the old one
IDLE_MS = const(4000)       # switched, a board that hears nothing for this long between
                            # frames goes back to the REPL's rate (a host killed mid-transfer):
                            # twice the host's resend time (RESEND_S), so never while a host
                            # still runs the transfer
EVAL_FMT = "<IIHH"          # images, correct ones, CRC-32 of the logits (low, high half)

# -- the store under /prune8/ (docs/protocol.md, "Storage on the board")

ROOT = "/prune8"
MODEL_PATH = ROOT + "/model.bin"      # the pushed model
MASKS_PATH = ROOT + "/masks.bin"      # the masks computed for it
CALIB_PATH = ROOT + "/calib.bin"      # the gradient proxy's activations calibrated there
PACKED_PATH = ROOT + "/packed.bin"    # a packed (sparse) model, docs/sparse.md
PRUNED_PATH = ROOT + "/pruned.bin"    # the model with its masks applied (apply_model)
GOLDEN_PATH = ROOT + "/golden.bin"    # the on-board suite's golden vectors
MANIFEST_PATH = ROOT + "/manifest.json"   # which build is deployed
GROUPS_PATH = ROOT + "/groups.bin"    # the model's channel groups, for prune8.channels
# scratch files of a layer pruned from flash (prune8.stream), removed when it is done
SCORES_PATH = ROOT + "/scores.tmp"    # the layer's scores: int16 per weight, int32 per unit
MASK_STEP_PATH = ROOT + "/step.tmp"   # a gradual prune's mask of one step
RUNNING_PATH = ROOT + "/running.tmp"  # ... the AND of its steps so far
WORK_PATH = ROOT + "/work.tmp"        # ... the weights as pruned so far
TMP_SUFFIX = ".tmp"         # every file is written as NAME.tmp, then renamed over NAME

MODEL_MAGIC = b"P8M1"
MASKS_MAGIC = b"P8K1"
CALIB_MAGIC = b"P8C1"
PACKED_MAGIC = b"P8S1"
GOLDEN_MAGIC = b"P8G1"
GROUPS_MAGIC = b"P8J1"
STORE_HEAD = "<IH"          # after the magic of model, masks and calib: id, record count
# per stored layer, after u8 name length and name: rows, cols, activation bytes,
# calibration samples, CRC-32 of the stored data, then LAYER_FMT's inference parameters
# and scale flag. The layer's data: weights, activations, Wanda's sums (cols SUM, when
# calibration samples came), biases (rows BIAS, when quantized), per-channel multipliers
# and shifts (QUANT_CHANNEL), scale multipliers (rows SCALE, when flagged)
LAYER_RECORD = "<HHIIIBibbbBB"
# per stored mask, after the name: scorer, tie, bp, min_keep, min_score, n, rows, cols,
# seed, block height and width, N and M of an N:M pattern, schedule steps, scope
MASK_RECORD = "<BBHIIIHHIBBBBIB"
CALIB_RECORD = "<H"         # per calibrated layer, after the name: its column count
SUM = "<I"                  # one of Wanda's per-column sums of squares
BIAS = "<i"                 # one int32 bias
MULT = "<i"                 # one per-channel requantization multiplier
SHIFT = "<b"                # one per-channel requantization shift
SCALE = "<H"                # one row's scale multiplier for the scale-aware score
# packed model: PACKED_MAGIC, PACKED_HEAD, then per layer a name and PACKED_RECORD:
# format, rows, cols, nnz, block height and width, payload bytes, then the inference
# parameters as in LAYER_FMT (rows BIAS values follow when quantized)
PACKED_HEAD = "<H"          # layer count
PACKED_RECORD = "<BHHIBBIBibbbB"
COO_ENTRY = "<HHb"          # a COO layer's row, column and value (u16 indices) ...
COO_ENTRY_WIDE = "<IIb"     # ... and with u32 indices, past 65536 weights
# channel groups (docs/channels.md): GROUPS_MAGIC, STORE_HEAD (the id of the model they were
# made for, group count), then per group GROUP_RECORD (channels, members) and per member
# a name, MEMBER_RECORD (role: its index in ROLES; period P) and P TABLE_ENTRY values:
# the group channel that unit u (row or column) of the layer makes or reads is entry
# u % P (-1: none), P dividing the layer's rows (role "rows") or columns ("cols")
GROUP_RECORD = "<HH"
MEMBER_RECORD = "<BH"
TABLE_ENTRY = "<h"
GOLDEN_HEAD = "<I"          # golden vectors: case count; then per case a GOLDEN_CASE
GOLDEN_CASE = "<H"          # length of the case's JSON header

# Names whose index a record stores: their order is part of the format.
SCORERS = ("magnitude", "gradient", "mincut", "rows", "cols", "l2", "random", "wanda",
           "blocks", "scaled")
TIES = ("exact", "strict")
# one k for the layer, the same k in every row, or a coupled channel group's row mask
# (prune8.channels: the k of the group's channels); a layer prune takes LAYER_SCOPES
SCOPES = ("layer", "channel", "group")
LAYER_SCOPES = SCOPES[:2]
ROLES = ("rows", "cols")        # what a channel group member's units are
PACKED_FORMATS = ("dense", "native", "csr", "coo", "block")
