"""prune8 host tools: the NumPy twin of the firmware and the tools around the board.

The layout, one room per job (docs/architecture.md): `twin` (the bit-exact reference),
`files` (model, masks and packed files), `vboard` (the virtual board), `device` (the
serial link and every operation on a board), `study` (the accuracy evaluation) and
`commands` (the `prune8` command line).
"""

from prune8 import __version__

__all__ = ["__version__"]
