"""Guards the cut-off count against Locust's stop/wake-up race (harness.plugin `_tracked`).

``User.stop`` kills a waiting user through a hub callback, a loop turn later. A user whose
wait ended in between starts its next request, and the kill lands at the request's first
yield, before a byte is sent (the pooled-socket check of geventhttpclient, urllib3's
dropped-connection check). Counting that request as cut off made paybench report one
request more than the server served (seen as ``count + 1 cut off`` for the status polls of
the checkout journeys). ``stop_race.py`` reproduces the race on every run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import HERE, ROOT, locust_env


@pytest.mark.parametrize("kind", ["fast", "http"])
def test_a_request_killed_before_it_was_sent_is_not_cut_off(
    loopback_factory, tmp_path: Path, kind: str
) -> None:
    server = loopback_factory()
    result = subprocess.run(
        [sys.executable, str(HERE / "stop_race.py"), server.url, str(tmp_path / "run"), kind],
        cwd=ROOT,
        env=locust_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    # The race happened: Locust judged the user idle and killed it, after it had woken up.
    assert outcome["killed_at_once"] and outcome["woke"] and outcome["dead"]
    # Only the first request reached the server; the second was killed before it was sent.
    assert server.served() == 1
    assert (outcome["count"], outcome["cut_off"]) == (1, 0)
