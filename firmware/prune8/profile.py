# Capacity of the board this copy of prune8 was built for.
# `prune8 build --board B` rewrites this file in build/B/ from boards/B.toml;
# the source copy holds the default ESP32 profile (docs/spec.md §5.1).
NAME = "esp32"
MAX_WEIGHTS = 2048
MAX_UNITS = 64
HEAP_BYTES = 100000
