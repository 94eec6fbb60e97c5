"""How long the host waits for a board: slowness is normal, silence is the fault.

A board is never given up on because it answers slowly. Every wait is measured from
the later of two moments: the last byte the board sent, and when the last byte the
host wrote can have reached the board at the line's baud (a USB-serial adapter takes
a whole frame at once and then needs 23 ms to put it on a 115,200-baud line). Only a
board that stays silent past the bound of what it is doing is given up on, with the
message the operation always gave. The bounds, per operation (docs/protocol.md,
"Waiting"), come from what a real ESP32 does:

- The flash (ESP32-WROOM-32's 4 MB SPI NOR flash: the GD25Q32C / W25Q32JV class):
  a 4 KB sector erase takes 45-50 ms typically and up to 400 ms (tSE max); a 256-byte
  page program 0.7 ms, up to 3 ms (tPP max). LittleFS erases a 4 KB block before
  reusing it and may compact a metadata pair (a few blocks) on any write, close or
  rename, so one step that writes can stall for a few erases at worst: FLASH_S.
- The REPL answering a command that writes nothing (prompt, "OK", the first line of
  output): REPL_S.
- Work proportional to a model's size (a prune, a KEEP copying a stored layer, images
  run through the model) has its own bound, computed by whoever starts it
  (workflow.prune_timeout) or the generous constants below.
"""

from __future__ import annotations

BITS_PER_BYTE = 10          # start + 8 data + stop

REPL_S = 5.0                # a REPL answer that writes no flash
FLASH_S = 10.0              # a step that writes flash: 10 worst-case erases (4 s), doubled
                            # for a host or board busy with other work
COPY_S = 60.0               # KEEP: copying a stored layer of up to a few hundred KB (read and
                            # write at the flash's tens of KB/s, plus its erases)
IMAGES_S = 120.0            # one frame of images run through the stored model (as prune's
                            # fixed part in workflow.prune_timeout)
RESEND_S = 2.0              # an answer not there this long after the frame's last byte
                            # reached the board: complete a damaged frame and send again
SECTOR = 4096               # LittleFS's block on the ESP32: one flash sector
SECTOR_MAX_S = 0.4 + 16 * 0.003  # erasing one and programming its 16 pages, at the worst
                                 # (W25Q32JV: tSE 400 ms, tPP 3 ms)


def rewrite_seconds(nbytes: int) -> float:
    """The longest a board may take to rewrite `nbytes` of a file (LittleFS copies every
    block after a byte written behind the file's end), on top of FLASH_S."""
    return FLASH_S + -(-nbytes // SECTOR) * SECTOR_MAX_S


def wire_seconds(nbytes: int, baud: int) -> float:
    """How long `nbytes` take on a UART at `baud` (0: unpaced, no time)."""
    return nbytes * BITS_PER_BYTE / baud if baud else 0.0
