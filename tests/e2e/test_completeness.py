"""Counts are complete: what paybench reports equals what the reference target served."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from harness.preflight import HEALTH_PATHS
from harness.target.process import ReferenceTarget
from tests.e2e.helpers import load_summary, only_run_dir, paybench

pytestmark = pytest.mark.e2e

_COUNTER = re.compile(r"^paybench_target_requests_total\{.*\} (\S+)$", re.M)


def served(url: str) -> int:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    return int(sum(float(v) for v in _COUNTER.findall(text)))


@pytest.mark.parametrize("workers", [0, 2])
def test_reported_count_equals_served_count(tmp_path: Path, workers: int) -> None:
    out = tmp_path / "reports"
    with ReferenceTarget() as target:
        before = served(target.url)
        r = paybench(
            "run",
            "--host",
            target.url,
            "--workers",
            str(workers),
            "--run-time",
            "6s",
            "--out",
            str(out),
            "--no-history",
        )
        assert r.returncode == 0, r.stdout + r.stderr
        after = served(target.url)
    summary = load_summary(only_run_dir(out))
    assert summary["run"]["workers"] == workers
    whole = summary["whole_run"]
    reported = whole["count"] + whole["cut_off"]
    # paybench's own preflight asked each health endpoint once before the load started
    assert reported == after - before - len(HEALTH_PATHS)
    assert reported > 50
