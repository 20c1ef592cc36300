"""Abort rules in real runs: ``paybench run`` against the reference target on loopback.

Two runs, scaled down from the shipped rules (30 s windows at 2 s intervals) to 1 s
intervals and 2 s windows, 3 in a row:

- the target fails 80 % of business requests from 5 s after it started: the run stops at
  the first window the recorded data allows, FAILs with the abort as its reason (exit 1),
  keeps and reports its data, and is recorded as aborted;
- the target fails every business request for one second only: no abort; and a rule whose
  every window breaches but never holds enough requests never fires and says so.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
from pathlib import Path

import pytest

from harness.core.abort import AbortRules, AbortWatch, IntervalFigures, KeyFigures
from harness.core.budgets import parse_budgets
from harness.recording import HDR_FILE, Recording, load_recording
from harness.runfolder import LIVE_FILE, read_live
from tests.e2e.helpers import load_summary, only_run_dir, paybench

pytestmark = pytest.mark.e2e

INTERVAL_S = 1.0
USERS = 6  # the smoke profile's, all spawned at once
RUN_TIME_S = 60
BUDGETS = """\
version: 1
steady_state: {warmup: 1s}
requests:
  "POST /api/payments/v2/initiate": {avg: "< 2s"}
run: {error_rate: "< 1%"}
abort:
  window: 2s
  windows: 3
  min_samples: 5
  run:
    error_rate: "> 50%"
"""


def _run(tmp_path: Path, budgets: str, fault: str, run_time_s: int, *extra: str) -> Path:
    (tmp_path / "budgets.yaml").write_text(budgets, encoding="utf-8")
    (tmp_path / "target.yaml").write_text(f"fault: {fault}\n", encoding="utf-8")
    r = paybench(
        "run",
        "--budgets",
        str(tmp_path / "budgets.yaml"),
        "--target-config",
        str(tmp_path / "target.yaml"),
        "--run-time",
        f"{run_time_s}s",
        "--out",
        str(tmp_path / "reports"),
        *extra,
        env={"PAYBENCH_INTERVAL": f"{INTERVAL_S:g}"},
        timeout=300,
    )
    assert "Traceback" not in r.stdout + r.stderr, r.stderr[-3000:]
    (tmp_path / "stdout.txt").write_text(r.stdout, encoding="utf-8")
    (tmp_path / "stderr.txt").write_text(r.stderr, encoding="utf-8")
    (tmp_path / "exit.txt").write_text(str(r.returncode), encoding="utf-8")
    return only_run_dir(tmp_path / "reports")


def _recorded(recording: Recording, upto: int) -> list[IntervalFigures]:
    """Every interval up to ``upto`` as the recording holds it (counts and failures)."""
    first = min(int(e.intervals.index.min()) for e in map(recording.entry, recording.keys))
    keys: dict[int, dict[str, KeyFigures]] = {i: {} for i in range(first, upto + 1)}
    for key in recording.keys:
        series = recording.entry(key).intervals
        for index, count, failures in zip(series.index, series.count, series.failures, strict=True):
            if first <= index <= upto:
                keys[int(index)][key] = KeyFigures(count=int(count), failures=int(failures))
    return [IntervalFigures(i, k) for i, k in sorted(keys.items())]


def test_a_target_failing_80_percent_is_stopped_fails_and_keeps_its_data(tmp_path: Path) -> None:
    run_dir = _run(tmp_path, BUDGETS, "{error_rate: 0.8, from_s: 5}", RUN_TIME_S)
    stdout = (tmp_path / "stdout.txt").read_text(encoding="utf-8")
    assert (tmp_path / "exit.txt").read_text() == "1", stdout
    lines = stdout.splitlines()
    assert lines[0].startswith("FAIL: "), stdout
    assert lines[1].startswith("why: aborted at "), stdout
    assert "error rate" in lines[1] and "over 3 windows of 2.0 s" in lines[1], lines[1]
    assert lines[1].endswith("(abort.run.error_rate: > 50%)"), lines[1]
    stderr = (tmp_path / "stderr.txt").read_text(encoding="utf-8")
    assert "; stopping the run" in stderr, stderr[-2000:]

    # run.json and summary.json say it was aborted, and by what.
    record = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    assert record["status"] == "finished" and record["incomplete_reason"] is None
    facts = record["extra"]["abort"]
    assert facts["aborted"] is True and facts["rule"] == "abort.run.error_rate"
    assert facts["value"] > 50 and facts["message"] == lines[1].removeprefix("why: ")
    summary = load_summary(run_dir)
    assert summary["abort"] == facts
    assert summary["verdict"]["outcome"] == "FAIL" and summary["verdict"]["exit_code"] == 1
    rows = [b for b in summary["verdict"]["budgets"] if b["key_path"] == "abort.run.error_rate"]
    assert [(b["status"], b["budget"]) for b in rows] == [("fail", "abort > 50%")]

    # The recording is whole (its end line, the cut-off count), and judged as any run's.
    recording = load_recording(run_dir / HDR_FILE)
    assert recording.test_stop_epoch is not None and recording.test_start_epoch is not None
    assert not recording.warnings
    whole = [recording.entry(k) for k in recording.keys]
    assert all(e.cut_off >= 0 for e in whole)
    requests = sum(e.count for e in whole if not e.is_flow)
    assert summary["whole_run"]["count"] == requests > 0
    assert summary["total"]["cut_off"] >= 0
    for name in ("report.html", "summary.md", "junit.xml", "locust_stats.csv", "locust.html"):
        assert (run_dir / name).is_file(), name
    assert "aborted at" in (run_dir / "summary.md").read_text(encoding="utf-8")
    junit = (run_dir / "junit.xml").read_text(encoding="utf-8")
    assert "budget: abort.run.error_rate" in junit and "aborted at" in junit
    # It stopped long before its planned end.
    ran_s = recording.test_stop_epoch - recording.test_start_epoch
    assert ran_s < RUN_TIME_S - 10, ran_s

    # At the first window the recorded data allows: the same rule fed the recording's
    # intervals (from the same steady state) fires on the same interval, unless the live
    # file skipped an interval (a late tick), which only ever delays the decision.
    live, _ = read_live(run_dir / LIVE_FILE, 0)
    steady = next(line for line in live if line.users >= USERS)
    assert steady.epoch is not None
    rules = parse_budgets(BUDGETS, "budgets.yaml").abort
    assert isinstance(rules, AbortRules)
    watch = AbortWatch(rules, INTERVAL_S)
    watch.begin_steady(steady.epoch + 1.0)
    decided = facts["interval_index"]
    replayed = None
    for interval in _recorded(recording, decided):
        if watch.observe(interval, 0.0) is not None:
            replayed = interval.index
            break
    seen = sorted({line.interval_index for line in live if line.interval_index is not None})
    skipped = any(b - a > 1 for a, b in itertools.pairwise(seen) if b <= decided)
    assert replayed is not None
    assert replayed == decided or (skipped and replayed < decided), (replayed, decided)
    # How long after the deciding interval closed the stop began (a figure, not a test).
    lag_s = recording.test_stop_epoch - (decided + 1) * INTERVAL_S
    print(f"abort: decided on interval {decided}, stop began {lag_s:.2f} s after it closed")

    # The history keeps the run, marked aborted in its extra (never a baseline).
    with sqlite3.connect(tmp_path / "reports" / "history.sqlite") as db:
        (extra,) = db.execute("SELECT extra_json FROM runs").fetchone()
    assert json.loads(extra)["abort"]["aborted"] is True


def test_a_brief_spike_and_a_rule_with_too_few_samples_do_not_abort(tmp_path: Path) -> None:
    """Every business request fails for one second (half a window): no abort. A second
    rule breaches in every window (health checks take more than 0.1 ms) but needs more
    requests than any window holds: it never fires, and the verdict says it watched
    nothing."""
    budgets = BUDGETS + (
        '  requests:\n    "GET /api/health*":\n'
        '      avg: {when: "> 0.1ms", windows: 1, min_samples: 100000}\n'
    )
    run_dir = _run(
        tmp_path, budgets, "{error_rate: 1.0, from_s: 8, until_s: 9}", 12, "--no-history"
    )
    stdout = (tmp_path / "stdout.txt").read_text(encoding="utf-8")
    record = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    assert record["extra"]["abort"]["aborted"] is False, stdout
    assert "aborted at" not in stdout
    recording = load_recording(run_dir / HDR_FILE)
    entries = [recording.entry(k) for k in recording.keys]
    # The spike happened: requests failed, and only some of them.
    failures = sum(e.failures for e in entries if not e.is_flow)
    assert 0 < failures < sum(e.count for e in entries if not e.is_flow), failures
    health = [e for e in entries if e.key.startswith("GET /api/health")]
    assert sum(e.count for e in health) > 0
    assert all(e.sum_ns / e.count > 100_000 for e in health if e.count)  # avg above 0.1 ms

    why = (
        'why: abort rule abort.requests."GET /api/health*".avg (> 0.1ms) watched nothing: '
        "no 2.0 s window held its 100,000 requests (at most "
    )
    assert any(line.startswith(why) for line in stdout.splitlines()), stdout
    summary = load_summary(run_dir)
    (no_data,) = summary["abort"]["no_data"]
    assert no_data.startswith(why.removeprefix("why: "))
    assert no_data in summary["verdict"]["reasons"]
    markdown = (run_dir / "summary.md").read_text(encoding="utf-8")
    assert "watched nothing: no 2.0 s window held its 100,000 requests" in markdown
