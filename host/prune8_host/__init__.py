"""prune8 host tools: the NumPy twin of the firmware and the tools around the board.

The layout, one room per job (docs/architecture.md): `twin` (the bit-exact reference),
`files` (model, masks and packed files), `vboard` (the virtual board), `device` (the
serial link and every operation on a board), `suite` (the on-board test suite) and
`commands` (the `prune8` command line). The accuracy studies of `make eval` live
outside the package, in the checkout's eval/.
"""

from prune8 import __version__

__all__ = ["__version__"]
