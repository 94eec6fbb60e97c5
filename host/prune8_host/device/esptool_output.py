"""What esptool says, turned into what prune8 shows: its logger, its markup, its errors.

esptool prints through a process-wide logger (esp_pylib's EspLog). `EsptoolOutput`
stands in for it while it is entered (`with EsptoolOutput(progress, on_message) as
out:`), so esptool never writes to the terminal itself: its progress reaches a
`ProgressCallback` and its messages, as plain text one line at a time, an
`on_message` callback, where the caller decides what to show. On exit esptool's own
logger is back. `first_line` gives the one line of an esptool exception worth quoting.
"""

from __future__ import annotations

from typing import Callable

from esp_pylib.logger import EspLog, EspLogBase
from rich.errors import MarkupError
from rich.text import Text

# (task, done, total): task names the step esptool reports progress for ("write";
# esptool 5.6 reports none for erase and MD5 verify); done and total count the bytes
# it sends, compressed ones when it compresses.
ProgressCallback = Callable[[str, int, int], None]
# (level, text): level is "info", "note", "warning", "error" or "debug".
MessageCallback = Callable[[str, str], None]


def first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _plain(arg: object) -> str:
    """esptool's messages are Rich markup (escaped paths, [bold] tags): give plain text."""
    if not isinstance(arg, str):
        return str(arg)
    try:
        return Text.from_markup(arg).plain
    except MarkupError:
        return arg


class EsptoolOutput(EspLogBase):
    """Stands in for esptool's logger: forwards progress and messages to callbacks."""

    def __init__(self, progress: ProgressCallback | None, on_message: MessageCallback | None):
        self.task = ""  # set by the caller before each esptool step; labels progress
        self._progress = progress
        self._on_message = on_message
        self._line: list[str] = []  # a line esptool is still printing with end=""
        self._previous: EspLogBase | None = None

    def __enter__(self) -> "EsptoolOutput":
        self._previous = EspLog.instance
        EspLog.set_logger(self)
        return self

    def __exit__(self, *exc) -> None:
        # esptool installs its own logger on import, so `_previous` is set; restore it
        # so esptool used elsewhere in this process prints as before.
        EspLog.instance = self._previous

    def _emit(self, level: str, text: str) -> None:
        if self._on_message is not None:
            for line in text.splitlines() or [""]:
                self._on_message(level, line)

    def print(self, *args, sep: str = " ", end: str = "\n", **_rich_options) -> None:
        self._line.append(sep.join(_plain(a) for a in args))
        if "\n" not in end:
            self._line.append(end)
            return
        text, self._line = "".join(self._line), []
        if text.strip():
            self._emit("info", text)

    def note(self, *args) -> None:
        self._emit("note", " ".join(_plain(a) for a in args))

    def hint(self, *args) -> None:
        self._emit("note", " ".join(_plain(a) for a in args))

    def debug(self, *args) -> None:
        self._emit("debug", " ".join(_plain(a) for a in args))

    def warn(self, *args, suggestion: str | None = None) -> None:
        self._emit("warning", " ".join(_plain(a) for a in args))

    def err(self, *args, suggestion: str | None = None) -> None:
        self._emit("error", " ".join(_plain(a) for a in args))

    # esptool still calls these older names in places (e.g. loader.py log.error).
    warning = warn
    error = err

    def set_verbosity(self, mode) -> None:
        """Verbosity is the caller's business (via its callbacks); nothing to set."""

    def progress_bar(self, cur_iter: int, total_iters: int, prefix: str = "",
                     suffix: str = "", bar_length: int = 30) -> None:
        if self._progress is not None:
            self._progress(self.task, cur_iter, total_iters)
