# The serial link's wire format, in one place (docs/protocol.md; what both sides agree
# on: docs/spec.md §9.6, §9.7).
#
# Frame types and link constants, and the struct format of every frame payload. The
# board (link, the receivers) and the host (prune8_host.device) both import this
# module, so the two sides cannot disagree about a byte. What is stored under /prune8/
# and how is prune8.formats': a prune on the board reads and writes the store and
# never loads the link's table.

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
# quantization (formats.QUANT_*), multiplier, shift (per tensor; per channel they follow the
# biases), input and output zero points, fused ReLU; whether the layer comes with the
# scale-aware score's per-row multipliers (SCALE values, after everything else); and
# the CRC-32 of the bytes the board will store for it (checked when the layer is
# complete), or 0: the board fills its record's CRC in then, a write into the file
# behind its end, which LittleFS pays for with a copy of the layer
LAYER_FMT = "<HHIIBibbbBBI"
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
