"""What the tests share and the product does not ship: the checkout's root (ROOT), the
firmware run on CPython behind a pipe (board_on_cpython), models several modules use
(models), the MicroPython unix port as a second board (unix_port), and the prune8
command run against a board on a port (cli)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
