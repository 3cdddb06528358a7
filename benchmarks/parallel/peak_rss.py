"""Run a Python script and record the process's peak resident memory when it exits.

    python -m benchmarks.parallel.peak_rss SCRIPT [ARGS...]          (also as each torchrun worker: -m)

The peak (``ru_maxrss``) is appended as one JSON line — ``{"rank": r, "peak_rss_mib": ...}``, ``r`` from
``$RANK`` — to the file ``$TGLC_PEAK_RSS_FILE``. It measures any checkout's trainer alike (the numbers
of a trainer's own ``memory.json`` exist only where that trainer writes one).
"""
from __future__ import annotations

import atexit
import fcntl
import json
import os
import resource
import runpy
import sys


def _record() -> None:
    path = os.environ.get("TGLC_PEAK_RSS_FILE")
    if not path:
        return
    line = json.dumps({"rank": int(os.environ.get("RANK", "0")),
                       "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)})
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write(line + "\n")


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    script = sys.argv[1]
    sys.argv = sys.argv[1:]
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    atexit.register(_record)
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
