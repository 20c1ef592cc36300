"""The Recorder's per-request interval check (harness.plugin `Recorder.on_request`).

A request's interval is ``int(end_epoch * (1 / interval_s))``. The hot path compares the
epoch with the current interval's float bounds instead of computing that index per request;
these tests hold it to the same index for every epoch, at the boundaries (the floats just
below, on and just above ``k * interval_s``), for intervals that are not exact binary
fractions, and for a wall clock that steps back.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from .conftest import HERE, ROOT, locust_env

START = 1764650000.0


def _around_boundaries(interval_s: float, intervals: int) -> list[float]:
    epochs = []
    first = math.floor(START / interval_s)
    for k in range(first, first + intervals):
        edge = k * interval_s
        down = math.nextafter(edge, -math.inf)
        up = math.nextafter(edge, math.inf)
        epochs += [math.nextafter(down, -math.inf), down, edge, up, edge + interval_s / 2]
    return epochs


def _run(interval_s: float, epochs: list[float]) -> dict:
    result = subprocess.run(
        [sys.executable, str(HERE / "recorder_clock.py"), repr(interval_s)],
        cwd=ROOT,
        env=locust_env(),
        input=json.dumps(epochs),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("interval_s", [2.0, 0.3, 0.1, 7.0])
def test_every_request_falls_in_the_interval_of_its_epoch(interval_s: float) -> None:
    epochs = _around_boundaries(interval_s, 40)
    # The wall clock steps back (an NTP correction) and forward again.
    epochs += [epochs[0], epochs[3], START + 100 * interval_s, epochs[-1]]
    outcome = _run(interval_s, epochs)
    assert outcome["recorded"] == outcome["expected"]
    assert sum(n for _, n in outcome["recorded"]) == len(epochs)
    assert outcome["bounds_exact"] and all(all(b) for b in outcome["bounds_exact"])
