"""The prune8 command run as a user runs it, against a board on a port."""

import json
import subprocess
import sys


def board_cli(port, *args, timeout=600):
    """(exit status, the --json report or, when nothing was printed, stderr) of
    `prune8 ARGS --port PORT --quiet --json`."""
    proc = subprocess.run([sys.executable, "-m", "prune8_host.cli", *args, "--port", port,
                           "--quiet", "--json"], capture_output=True, text=True,
                          timeout=timeout)
    return proc.returncode, json.loads(proc.stdout) if proc.stdout.strip() else proc.stderr
