# The limits of prune8's inputs: what the checks compare against and the error messages
# name. A module of their own, which imports nothing: errors.py re-exports them (they
# are part of its table), and the message builders it loads lazily take them from here,
# so no module of the table imports another that imports it back.

# Largest integer argument accepted where a threshold is compared against scores:
# a MicroPython small int (31-bit signed), so comparisons never build a big int.
MAX_SMALL = 0x3FFFFFFF
MAX_BP = 10000
MAX_STEPS = 100000  # a gradual prune's steps (prune8.schedule, prune8.prune_model)
# The scale-aware score's per-row multiplier: 32768 for the row with the largest scale.
MAX_SCALE = 32768
MAX_BLOCK = 255           # block height and width: a u8 each in a mask record
# Profile sanity bounds: every intermediate value then stays a small int on the board
# (128 * 128 * MAX_UNITS_LIMIT < 2**30).
MAX_WEIGHTS_LIMIT = 1 << 20
MAX_UNITS_LIMIT = 4096
