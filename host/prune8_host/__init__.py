"""prune8 host tools: the NumPy twin of the firmware and the tools around the board."""

__version__ = "0.1.0"
