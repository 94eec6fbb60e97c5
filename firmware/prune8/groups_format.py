# The coupled channel groups' file format, /prune8/groups.bin (docs/channels.md).
#
# Written by the host (prune8_host.files.boardstore), read by the board's group prune
# (prune8.channels): both import this module, so the two sides cannot disagree about a
# byte. Apart from prune8.formats (the model and masks store, which a layer prune holds)
# so that a layer prune does not hold these too (docs/heap.md).

from .formats import ROOT

GROUPS_PATH = ROOT + "/groups.bin"    # the model's channel groups, for prune8.channels
GROUPS_MAGIC = b"P8J1"
# GROUPS_MAGIC, formats.STORE_HEAD (the id of the model they were made for, group
# count), then per group GROUP_RECORD (channels, members) and per member a name,
# MEMBER_RECORD (role: its index in ROLES; period P) and P TABLE_ENTRY values: the group
# channel that unit u (row or column) of the layer makes or reads is entry u % P (-1:
# none), P dividing the layer's rows (role "rows") or columns ("cols")
GROUP_RECORD = "<HH"
MEMBER_RECORD = "<BH"
TABLE_ENTRY = "<h"
ROLES = ("rows", "cols")        # what a channel group member's units are
