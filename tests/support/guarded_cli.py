"""Run prune8 commands as a hostile-input test needs to see them: in one process whose
address space is capped (RLIMIT_AS), each under an alarm, and report what each did.

    python -m support.guarded_cli JOBS.json     (tests/ on PYTHONPATH)

JOBS.json: {"limit_bytes": N, "timeout_s": S, "runs": [{"argv": [...], "out": PATH or
null}, ...]}. Prints one JSON object: for each run its status (the exit status, or
"traceback" when an exception escaped prune8's main, "hang" when the alarm went off,
"memory" for a MemoryError), stdout and stderr (the last 2,000 characters), whether the
output changed (the file's bytes, and the files of its directory, before and after),
and the process's peak resident memory. In one process, so that 600 runs cost what
600 calls cost, not 600 interpreter start-ups.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import signal
import sys
import traceback


class Hang(Exception):
    """The alarm went off: a command blocked or looped."""


def _on_alarm(signum, frame):
    raise Hang()


def _state(out: str | None):
    """What a run may change: the output's bytes and its directory's listing."""
    if out is None:
        return None
    directory = os.path.dirname(out) or "."
    try:
        with open(out, "rb") as f:
            data = f.read().hex()
    except FileNotFoundError:
        data = None
    return {"data": data, "listing": sorted(os.listdir(directory))}


def run_all(jobs: dict) -> dict:
    from prune8_host.cli import main
    from prune8_host.files import tflite
    tflite.schema()  # loaded before the cap, as the first command would
    signal.signal(signal.SIGALRM, _on_alarm)
    results = []
    for run in jobs["runs"]:
        before = _state(run.get("out"))
        stdout, stderr = io.StringIO(), io.StringIO()
        detail = ""
        signal.alarm(jobs["timeout_s"])
        try:
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                status = main(run["argv"])
        except Hang:
            status = "hang"
        except MemoryError:
            status, detail = "memory", traceback.format_exc()
        except BaseException:  # the point: anything that escapes main
            status, detail = "traceback", traceback.format_exc()
        finally:
            signal.alarm(0)
        after = _state(run.get("out"))
        results.append({"argv": run["argv"], "status": status,
                        "stdout": stdout.getvalue()[-2000:],
                        "stderr": (stderr.getvalue() + detail)[-2000:],
                        "out_changed": before != after,
                        "out_exists": bool(after and after["data"] is not None)})
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"results": results, "peak_rss_bytes": peak_kb * 1024}


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        jobs = json.load(f)
    limit = jobs["limit_bytes"]
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    report = run_all(jobs)
    sys.stdout.write(json.dumps(report))
