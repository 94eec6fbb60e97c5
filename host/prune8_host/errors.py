"""The errors a user can cause, in one family (docs/architecture.md, "Errors").

Everything the host raises for bad input, an unusable board or a failed tool derives
from `HostError`; `prune8`'s main prints its message as one line on stderr and exits
with status 2. The firmware's own `prune8.errors.Prune8Error` (bad arguments, shared
with the board, docs/spec.md §6.1) is treated alike. Code decides on these types, never
on message text.
"""

from __future__ import annotations


class HostError(Exception):
    """Something the user can fix: the message says what was wrong and what is allowed."""


class UsageError(HostError, ValueError):
    """Options that do not go together, or a value a command does not accept."""


class FileFormatError(HostError, ValueError):
    """A file that is missing or not a readable .npy / .npz; the message names it."""


class ModelError(HostError, ValueError):
    """A layer or activation array that is not what prune8 can prune; names file and layer."""


class BoardProfileError(HostError, ValueError):
    """A board profile file is missing, malformed, or has a wrong/missing/unknown key."""


class BuildError(HostError):
    """mpy-cross refused a firmware file (the message carries its diagnostics)."""


class BoardUnavailable(HostError, OSError):
    """The board cannot be used: no answer, busy port, no MicroPython, ..."""


class FirmwareMissing(BoardUnavailable):
    """The board answers but lacks this host's prune8 (none deployed, or another version):
    `prune8 deploy` fixes it."""


class LinkError(HostError, OSError):
    """The board stopped answering or answered nonsense; the message says what was seen."""


class BoardError(HostError, ValueError):
    """The board refused a request (capacity, full filesystem, ...): its own message."""


class HeapBudgetError(HostError, ValueError):
    """A prune whose measured heap need is over the board profile's budget, refused
    before anything is sent (prune8_host.heap_law); names the layer and the numbers."""


class BoardExecError(BoardError):
    """Code run on the board raised; the message is the exception's line, `error_output`
    holds the whole traceback the board printed and `exc_type` its exception's name."""

    def __init__(self, error_output: str):
        self.error_output = error_output
        self.last_line = last_error_line(error_output)
        name = self.last_line.split(":", 1)[0].strip()
        self.exc_type = name.rsplit(".", 1)[-1] if name.replace(".", "").isidentifier() else ""
        super().__init__(f"the board raised {self.last_line}")


def last_error_line(text: str) -> str:
    """The last non-blank line of a traceback: `Type: message`."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else text.strip()


class VirtualBoardError(HostError):
    """The virtual board could not start or its VM failed."""


class NodeSetupError(HostError):
    """Node.js or the MicroPython npm package is missing or unusable."""


class FlashError(HostError):
    """Anything `prune8 flash` refuses or fails at; the subclasses in
    prune8_host.device.flash and .esp_image (the file) say how (each also a ValueError
    or an OSError)."""
