"""The firmware's entry points that the host runs through the raw REPL, in one table.

Each is a line of Python for the board: it imports one module of `firmware/prune8`
and calls one function there (docs/protocol.md). The receivers (push, files,
calibrate, evaluate) then talk in frames; the others print one JSON line.
"""

from __future__ import annotations

from dataclasses import asdict

from prune8_host.twin.layer import PruneOptions

INFO = "from prune8 import status;status.info()"      # version, capacity, free heap
LS = "from prune8 import status;status.ls()"          # what /prune8/ holds
LS_HEADERS = "from prune8 import status;status.ls(True)"  # ... with the layers' headers
PUSH = "from prune8 import push;push.push()"          # receive a model
FILES = "from prune8 import files;files.files()"      # read and write files
CALIBRATE = "from prune8 import infer;infer.calibrate()"


def evaluate(with_masks: bool, packed: bool) -> str:
    return f"from prune8 import infer;infer.evaluate({with_masks!r},{packed!r})"


PRUNE_IMPORT = "from prune8 import prune_model"


def prune(options: PruneOptions, layers: list[str] | None = None,
          tile: int | None = None) -> str:
    """prune_model.prune(...) with these options, by the names it takes, for every layer or
    those in `layers` (each value a literal: its repr). `tile` streams every layer in tiles
    of that many weights, as a layer too big for RAM is (the tests' way to reach it)."""
    kwargs = {**asdict(options), "layers": layers}
    if tile:
        kwargs["tile"] = tile
    args = ",".join(f"{k}={v!r}" for k, v in kwargs.items())
    return f"{PRUNE_IMPORT};prune_model.prune({args})"


GROUPS_IMPORT = "from prune8 import channels"


def prune_groups(options: PruneOptions, tile: int | None = None) -> str:
    """channels.prune_groups(...): the channel groups the board holds (/prune8/groups.bin)
    masked with these options (those a group takes: docs/channels.md); `tile` reads the
    layers that many weights at a time (the tests' way to split rows and periods)."""
    kwargs = {"method": options.method, "sparsity_bp": options.sparsity_bp,
              "tie": options.tie, "min_keep": options.min_keep, "seed": options.seed}
    if tile:
        kwargs["tile"] = tile
    args = ",".join(f"{k}={v!r}" for k, v in kwargs.items())
    return f"{GROUPS_IMPORT};channels.prune_groups({args})"
