"""A rank that dies or stalls makes the others fail with a clear error within the process group's timeout."""
from __future__ import annotations

import re
import time

import gp_workers
import pytest

from tglc_zoo.distributed.launch import launch

PG_TIMEOUT = 6.0

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("fault, expected", [
    ("exit", "died without reporting (exit code 3)"),
    ("stall", "still running at the deadline"),
])
def test_peer_failure_is_reported_not_hung(fault, expected):
    t0 = time.monotonic()
    results = launch(gp_workers.faulty, 2, (fault, 120.0), timeout=150, pg_timeout=PG_TIMEOUT, grace=3.0,
                     raise_on_error=False)
    assert time.monotonic() - t0 < 100  # spawn + imports + timeout; never the 120 s stall
    survivor, victim = results
    assert not survivor.ok and not victim.ok
    assert expected in victim.describe()
    # the survivor names the collective, the layer and the likely causes, within the configured timeout
    assert "CollectiveError: group-parallel all-gather at stages.0.0.shortcut failed on rank 0" in survivor.error
    assert "a peer process died, stalled past the process group's timeout" in survivor.error
    elapsed = float(re.search(r"rank 0 failed after ([0-9.]+)s", survivor.error).group(1))
    assert elapsed < PG_TIMEOUT + 4
