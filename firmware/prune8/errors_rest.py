# The rest of errors.py's table: the errors of the board's store, receivers, stored
# layers, streaming, int8 inference and the kernel switch, and the host's dtype checks.
# prune8.errors loads this module the first time one of these builders is asked for
# (errors.quant_int(...)), so a board that only runs the Pruner never holds it
# (docs/heap.md). Same rules as errors.py: each builder returns an exception instance,
# and the twin raises the same classes with the same text (docs/spec.md §6.1).

from .error_types import (
    DtypeError,
    EmptyInputError,
    LengthMismatchError,
    PatternError,
    QuantError,
    ScheduleError,
    StoreError,
)
from .limits import MAX_SMALL, MAX_UNITS_LIMIT


def steps_value(steps, limit):
    return ScheduleError("steps must be an integer in 0..%d (0: prune in one shot); got %r"
                         % (limit, steps))


def no_activations(name):
    return EmptyInputError("layer %r has no activations for the gradient proxy: add %s.act "
                           "to the model" % (name, name))


def no_calibration(name, cols):
    return EmptyInputError("layer %r has no calibration samples for Wanda: add %s.calib "
                           "(samples x %d, int8) to the model" % (name, name, cols))


def no_block_size():
    return PatternError("method blocks needs a block size")


def dtype(what, got):
    """Host: an array whose dtype is not int8. Floats are told to quantize."""
    if got.startswith("float") or got.startswith("complex"):
        return DtypeError("%s must be int8, got %s: quantize to int8 first "
                          "(scale, round and clip to -128..127)" % (what, got))
    return DtypeError("%s must be int8; got %s" % (what, got))


def dtype_scores(got):
    return DtypeError("scores must be an integer array; got %s" % got)


def score_range(lo, hi):
    return DtypeError("scores must be integers in 0..%d; got values from %d to %d"
                      % (MAX_SMALL, lo, hi))


def dtype_words(got):
    return DtypeError("mask words must be uint32 values; got %s" % got)


def quant_int(name, value, lo, hi):
    return QuantError("%s must be an integer in %d..%d; got %r" % (name, lo, hi, value))


def quant_multiplier(value):
    return QuantError("multiplier must be 0 or in 1073741824..2147483647 (2**30..2**31-1, "
                      "as QuantizeMultiplier makes it); got %r" % (value,))


def quant_bias(value, index):
    return QuantError("bias must hold integers in -536870912..536870911 (|bias| < 2**29); "
                      "got %r at index %d" % (value, index))


def quant_relu(value):
    return QuantError("relu must be True or False; got %r" % (value,))


def dense_shape(rows, cols):
    return LengthMismatchError("a dense layer needs 1 <= rows, cols <= %d; got rows=%r, cols=%r"
                               % (MAX_UNITS_LIMIT, rows, cols))


def dense_length(what, got, need):
    return LengthMismatchError("%s has %d entries; the layer needs %d" % (what, got, need))


def chain_mismatch(index, what, got, need):
    return LengthMismatchError("layer %d's %s is %r but the layer before it gives %r"
                               % (index, what, got, need))


def calib_full(limit):
    return QuantError("calibration holds at most %d images (the column sums must stay "
                      "small ints); reset() to start again" % limit)


def truncated(what):
    return StoreError("truncated %s" % what)


def not_store_file(path, what):
    return StoreError("%s is not a prune8 %s file" % (path, what))


def past_layer_end():
    return StoreError("read past the end of a stored layer")


def no_layer(name, names):
    return ValueError("no layer %r on the board (layers: %s)" % (name, ", ".join(names)))


def no_layer_to_keep(name):
    return ValueError("the board's model has no layer %r to keep" % name)


def no_masks():
    return ValueError("the board holds no masks for its model: run prune first")


def no_quant(name):
    return ValueError("layer %r has no int8 inference parameters: push a quantized model "
                      "(e.g. examples/digits_mlp.npz)" % name)


def packed_no_quant(name):
    return ValueError("packed layer %r has no int8 inference parameters" % name)


def not_packed(path):
    return ValueError("%s is not a prune8 packed model" % path)


def packed_format(fmt):
    return ValueError("unknown packed format %r" % (fmt,))


def calib_samples(calib):
    return ValueError("%d calibration samples: at most 65536" % calib)


def layer_format(quant, scaled):
    return ValueError("unknown quantization %d or scale flag %d" % (quant, scaled))


def data_before_layer():
    return ValueError("data before a layer header")


def data_beyond_layer():
    return ValueError("data beyond the announced layer")


def layer_count(announced, got):
    return ValueError("model announced %d layers, got %d" % (announced, got))


def layer_crc_mismatch(name, got, announced):
    return ValueError("layer %s arrived with CRC-32 %08x, the host announced %08x: nothing "
                      "was saved, push it again" % (name, got, announced))


def model_id_mismatch(got, announced):
    return ValueError("the model's id is %08x, the host announced %08x: nothing was saved, "
                      "push it again" % (got, announced))


def link_closed():
    return EOFError("link closed")


def unexpected_frame(t, doing):
    return ValueError("unexpected frame type %d while %s" % (t, doing))


def outside_root(root):
    return ValueError("only files under %s/ can be read or written" % root)


def read_past_end():
    return ValueError("read past the end of the file")


def images_cut(got, stride):
    return ValueError("the images ended %d bytes into an item of %d" % (got, stride))


def tile_size(limit, tile):
    return ValueError("tile must be 1..%d weights; got %r" % (limit, tile))


def nm_tile(m, tile):
    return ValueError("an N:M group of %d does not fit a tile of %d" % (m, tile))


def kernels_name(name, names):
    return ValueError("kernels must be one of %s; got %r" % (", ".join(names), name))


def no_viper():
    return ValueError("this port cannot run the viper kernels (no native emitter, or "
                      "prune8/viper is missing): use 'python'")




# -- channel groups (prune8.channels) -------------------------------------------------

def groups_stale():
    return StoreError("the board's channel groups were made for another model than the one "
                      "it holds: send them again (prune8 run MODEL.tflite --structured "
                      "channels)")


def groups_bad(why):
    return StoreError("the board's channel groups file is damaged (%s): send it again "
                      "(prune8 run MODEL.tflite --structured channels)" % why)


def no_groups():
    return ValueError("the board holds no channel groups: prune8 run MODEL.tflite "
                      "--structured channels sends them")
