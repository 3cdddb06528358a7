"""docs/parallel.md's sentences follow the numbers they sit beside; the peak-RSS wrapper measures a real process."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks.parallel.report import projection_reading

REPO = Path(__file__).resolve().parents[2]


def _row(n: int, strategy: str, step: float, memory: float) -> dict:  # type: ignore[type-arg]
    return {"model": "WRN-28-40", "N": n, "strategy": strategy, "step_s": step, "memory_bytes": memory}


def test_the_projection_reading_is_computed_from_the_rows() -> None:
    rows = [_row(2, "group", 1.0, 5.0), _row(2, "data", 2.0, 9.0), _row(2, "layer", 4.0, 9.0),
            _row(4, "group", 0.5, 3.0), _row(4, "data", 0.4, 2.0), _row(4, "layer", 4.0, 9.0)]
    text = projection_reading(rows)
    assert "shorter than data parallelism's at N = 2, and it needs less memory per device at N = 2;" in text
    assert "its shortest step is at N = 4" in text
    rows[3]["step_s"] = 0.3  # other numbers, other sentence
    assert "shorter than data parallelism's at N = 2, 4," in projection_reading(rows)


def test_peak_rss_is_recorded_for_a_process_that_allocates(tmp_path: Path) -> None:
    script = tmp_path / "alloc.py"
    script.write_text("import sys\nblock = bytearray(300 * 2**20)\nsys.exit(0)\n")
    record = tmp_path / "rss.jsonl"
    env = {**os.environ, "TGLC_PEAK_RSS_FILE": str(record), "RANK": "3"}
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "parallel" / "peak_rss.py"), str(script)], env=env,
                   check=True, timeout=60)
    line = json.loads(record.read_text())
    assert line["rank"] == 3 and line["peak_rss_mib"] > 300
