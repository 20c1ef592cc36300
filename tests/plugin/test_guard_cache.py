"""The allow-list's per-request cache and the request wrapper's fast path (issue 14).

The allow-list check answers from a set of exact netloc strings once a host has passed;
these tests hold it to refusing what the list refuses whatever passed before it: another
host after an allowed one, the same host spelt with credentials, and a host that was
allowed under an earlier list. The fast request wrapper (FastHttpSession's parameters
passed on one by one) still counts every request it starts, so none is cut off.
"""

from __future__ import annotations

import json
import subprocess
import sys

from .conftest import HERE, ROOT, locust_env


def _probe(url: str) -> dict:
    result = subprocess.run(
        [sys.executable, str(HERE / "guard_probe.py"), url],
        cwd=ROOT,
        env=locust_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_host_not_allowed_is_refused_after_an_allowed_one(loopback_factory) -> None:
    outcome = _probe(loopback_factory().url)
    steps = dict(outcome["steps"])
    assert steps["loopback"] is None
    assert steps["loopback again, named, with headers"] is None
    assert steps["loopback by name"] is None
    assert steps["loopback, extra keyword"] is None
    for label in ("other host after loopback", "the other host again"):
        assert steps[label].startswith("paybench refused a request to http://staging.invalid:")
        assert "--allow-host staging.invalid" in steps[label]
    # The same address as an allowed one, but another netloc string: checked on its own.
    assert "carries credentials" in steps["loopback, credentials in the URL"]
    # Allowed under one list (it passed, then failed to resolve), refused under the next.
    assert outcome["passed_while_allowed"] is True
    assert not steps["other host while allowed"].startswith("paybench refused")
    assert steps["other host, no longer allowed"].startswith("paybench refused a request")


def test_the_fast_wrapper_counts_every_request_it_starts(loopback_factory) -> None:
    outcome = _probe(loopback_factory().url)
    # Refused and failed requests are reported by Locust too, so each one completes.
    assert outcome["requests"] == len(outcome["steps"]) == 9
    assert outcome["started"] == 9
    assert outcome["cut_off"] == 0
