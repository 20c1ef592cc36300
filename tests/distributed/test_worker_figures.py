"""Per-worker figures: the master's CPU tally and the report's worker table (literal data)."""

from __future__ import annotations

from harness import distributed
from harness.report.context import WorkerRow, worker_rows


def test_a_worker_cpu_is_the_mean_and_max_of_its_reports_samples() -> None:
    w = distributed.WorkerSeen("c1", 0, joined_epoch=1_764_650_000.0)
    w.add_cpu({"cpu": [[1.0, 20.0, None], [2.0, 40.0, 3.0]]})
    w.add_cpu({"cpu": [[3.0, 30.0]]})
    w.add_cpu({"cpu": [["bad"]], "entries": []})  # a malformed sample is skipped
    doc = w.to_json()
    assert (doc["cpu_mean_pct"], doc["cpu_max_pct"], doc["cpu_samples"]) == (30.0, 40.0, 3)
    assert distributed.WorkerSeen("c2", 1, 0.0).to_json()["cpu_mean_pct"] is None


def test_the_worker_table_says_when_each_worker_joined_and_left() -> None:
    facts = {
        "format_version": 1,
        "workers": [
            {
                "name": "worker-0 (vm, pid 7)", "status": "accepted", "requests": 120,
                "cut_off": 2, "cpu_mean_pct": 12.5, "cpu_max_pct": 30.0,
                "clock_offset_ms": -0.4, "joined_epoch": 1_764_650_000.0,
                "final_epoch": 1_764_650_061.5,
            },
            {
                "name": "worker-1 (vm, pid 8)", "status": "accepted", "requests": 40,
                "joined_epoch": 1_764_650_001.0, "last_heard_epoch": 1_764_650_030.0,
            },
            "not a worker",
        ],
    }  # fmt: skip
    assert worker_rows(facts) == (
        WorkerRow("worker-0 (vm, pid 7)", "accepted", 120, 2, 12.5, 30.0, -0.4,
                  "04:33:20Z", "04:34:21Z"),
        WorkerRow("worker-1 (vm, pid 8)", "accepted", 40, 0, None, None, None, "04:33:21Z",
                  "no final data (last heard 04:33:50Z)"),
    )  # fmt: skip
    assert worker_rows(None) == () and worker_rows({"workers": None}) == ()
    lines = distributed.worker_lines(facts)
    assert lines[1].endswith(
        ", 120 requests (+2 cut off), joined 04:33:20Z, left 04:34:21Z, CPU 12% (max 30%)"
    )
