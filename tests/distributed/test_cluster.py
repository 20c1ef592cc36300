"""A master and workers as separate `paybench worker` processes on 127.0.0.1: the counts are
exact, a mismatched or badly clocked worker is refused before any request, a worker killed
mid-run makes the run UNRELIABLE and is named, a late final report is still counted."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from harness.preflight import HEALTH_PATHS
from harness.recording import load_recording
from harness.runfolder import HDR_FILE
from harness.target.process import ReferenceTarget
from tests.distributed.cluster import cluster, kill_tree, locust_child

pytestmark = pytest.mark.e2e

_COUNTER = re.compile(r"^paybench_target_requests_total\{.*\} (\S+)$", re.M)
LATE_S = 1.5  # the late worker's final data leaves this long after its stop (> Locust's 0.5 s)


def served(url: str) -> int:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    return int(sum(float(v) for v in _COUNTER.findall(text)))


def _distributed(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())["extra"]["distributed"]


def test_two_workers_count_exactly_and_a_late_final_report_is_counted(tmp_path: Path) -> None:
    with ReferenceTarget() as target, cluster(tmp_path, target.url) as c:
        before = served(target.url)
        c.start_master("--run-time", "6s")
        c.start_worker()
        late = c.start_worker({"PAYBENCH_TEST_FINAL_DELAY_S": str(LATE_S)})
        late_pid = locust_child(late)
        assert c.wait_master() == 0, c.text("master.out") + c.text("master.err")
        assert c.wait_workers() == [0, 0], c.text("worker0.out")
        after = served(target.url)
    run_dir = c.run_dir()
    summary = json.loads((run_dir / "summary.json").read_text())
    whole = summary["whole_run"]
    reported = whole["count"] + whole["cut_off"]
    # paybench's own preflight asked each health endpoint once before the load started
    assert reported == after - before - len(HEALTH_PATHS)
    assert reported > 0
    facts = _distributed(run_dir)
    assert facts["problems"] == [] and facts["refused"] is None
    workers = facts["workers"]
    assert [w["status"] for w in workers] == ["accepted", "accepted"]
    for w in workers:
        assert w["declared"]["requests"] == w["requests"]
        assert abs(w["clock_offset_ms"]) <= facts["max_clock_offset_ms"]
        assert w["clock_rounds"] > 0
    # The late worker's final data came more than Locust's 0.5 s after the stop, and counted.
    stop = load_recording(run_dir / HDR_FILE).test_stop_epoch
    assert stop is not None
    (slow,) = [w for w in workers if w["pid"] == late_pid]
    assert slow["final_epoch"] - stop >= LATE_S
    assert late.returncode == 0
    # The CLI ends with a line per worker.
    shown = c.text("master.out").splitlines()
    assert shown[-3] == "workers:"
    assert all(re.match(r"  worker-\d \(.+\): accepted, clock [+-]\d", ln) for ln in shown[-2:])


def test_a_worker_of_another_version_is_refused_before_any_request(tmp_path: Path) -> None:
    with ReferenceTarget() as target, cluster(tmp_path, target.url) as c:
        before = served(target.url)
        c.start_master("--run-time", "6s", expect=1)
        odd = c.start_worker({"PAYBENCH_TEST_WORKER_VERSION": "9.9.9"})
        assert c.wait_master() == 2
        assert c.wait_workers() == [2]
        assert served(target.url) - before == len(HEALTH_PATHS)  # the preflight only
    err = c.text("master.err").strip().splitlines()
    assert re.fullmatch(
        r"paybench: error: worker-\d \(.+, pid \d+\) runs paybench version 9\.9\.9 "
        r"\(master: .+\): .+",
        err[-1],
    ), err
    assert "paybench version 9.9.9" in c.text("worker0.out")
    assert _distributed(c.run_dir())["workers"][0]["status"] == "refused"
    assert odd.returncode == 2


def test_a_worker_whose_clock_is_off_is_refused(tmp_path: Path) -> None:
    with ReferenceTarget() as target, cluster(tmp_path, target.url) as c:
        before = served(target.url)
        c.start_master("--run-time", "6s", expect=1)
        c.start_worker({"PAYBENCH_TEST_CLOCK_OFFSET_S": "0.6"})
        assert c.wait_master() == 3
        assert c.wait_workers() == [3]
        assert served(target.url) - before == len(HEALTH_PATHS)
    last = c.text("master.err").strip().splitlines()[-1]
    assert re.search(r"worker-\d \(.+\)'s clock is \+\d+ ms off the master's \(limit 250 ms", last)
    offset = _distributed(c.run_dir())["workers"][0]["clock_offset_ms"]
    assert 500 < offset < 700


def test_a_worker_killed_mid_run_makes_the_run_unreliable_and_is_named(tmp_path: Path) -> None:
    with ReferenceTarget() as target, cluster(tmp_path, target.url) as c:
        c.start_master("--run-time", "10s")
        c.start_worker()
        doomed = c.start_worker()
        c.wait_for_requests()
        pid = locust_child(doomed)
        kill_tree(pid)
        assert c.wait_master() == 3, c.text("master.out") + c.text("master.err")
    out = c.text("master.out")
    assert "UNRELIABLE" in out
    assert re.search(rf"worker-\d \([^)]*, pid {pid}\) never sent its final counts", out), out
    facts = _distributed(c.run_dir())
    assert any(f"pid {pid}" in p for p in facts["problems"])
    assert re.search(rf"pid {pid}\): accepted, .*, left without its final data", out), out


def test_too_few_workers_by_the_timeout_exits_3_naming_how_many_joined(tmp_path: Path) -> None:
    with ReferenceTarget() as target, cluster(tmp_path, target.url) as c:
        before = served(target.url)
        c.start_master("--run-time", "6s", expect=2, timeout="3s")
        c.start_worker()
        assert c.wait_master() == 3
        assert c.wait_workers() == [3]
        assert served(target.url) - before == len(HEALTH_PATHS)
    last = c.text("master.err").strip().splitlines()[-1]
    assert re.match(
        r"paybench: error: only 1 of 2 worker\(s\) joined the master at 127\.0\.0\.1:", last
    ), last
