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


def small_budget_profile(tmp_path, heap_bytes):
    """The esp32 profile with a smaller heap budget (the same capacity, so the same
    measured figures), as a file --board takes."""
    from prune8_host.boards import load_board

    esp32 = load_board("esp32")
    path = tmp_path / "tight.toml"
    path.write_text("".join(
        f"{k} = {v!r}\n".replace("'", '"') if isinstance(v, str) else f"{k} = {v}\n"
        for k, v in vars(esp32).items() if k not in ("name", "path", "heap_bytes"))
        + f"heap_bytes = {heap_bytes}\n")
    return str(path)
