# The store's formats, in one place (docs/protocol.md "Storage on the board",
# docs/sparse.md; what both sides agree on: docs/spec.md §9.6, §9.7).
#
# The paths under /prune8/, the magic and struct format of every record stored there,
# and the names whose index a record holds. The board (store, the prunes, infer) and
# the host (prune8_host.device, prune8_host.files) both import this module, so the two
# sides cannot disagree about a byte. The serial link's frames are prune8.protocol's;
# the packed model's records are prune8.packed_format's and the channel groups'
# prune8.groups_format's, loaded only by what reads those files (a prune holds this
# module: docs/heap.md).

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

ROOT = "/prune8"
MODEL_PATH = ROOT + "/model.bin"      # the pushed model
MASKS_PATH = ROOT + "/masks.bin"      # the masks computed for it
CALIB_PATH = ROOT + "/calib.bin"      # the gradient proxy's activations calibrated there
PRUNED_PATH = ROOT + "/pruned.bin"    # the model with its masks applied (apply_model)
GOLDEN_PATH = ROOT + "/golden.bin"    # the on-board suite's golden vectors
MANIFEST_PATH = ROOT + "/manifest.json"   # which build is deployed
# scratch files of a layer pruned from flash (prune8.stream), removed when it is done
SCORES_PATH = ROOT + "/scores.tmp"    # the layer's scores: int16 per weight, int32 per unit
MASK_STEP_PATH = ROOT + "/step.tmp"   # a gradual prune's mask of one step
RUNNING_PATH = ROOT + "/running.tmp"  # ... the AND of its steps so far
WORK_PATH = ROOT + "/work.tmp"        # ... the weights as pruned so far
TMP_SUFFIX = ".tmp"         # every file is written as NAME.tmp, then renamed over NAME

MODEL_MAGIC = b"P8M1"
MASKS_MAGIC = b"P8K1"
CALIB_MAGIC = b"P8C1"
GOLDEN_MAGIC = b"P8G1"
# a layer's int8 inference parameters (LAYER_RECORD; a LAYER frame carries the same)
QUANT_NONE = const(0)       # no int8 inference parameters
QUANT_TENSOR = const(1)     # one multiplier and shift for the layer
QUANT_CHANNEL = const(2)    # one per row (output channel): rows MULT, then rows SHIFT
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
