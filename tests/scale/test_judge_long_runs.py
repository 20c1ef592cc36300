"""Every shipped profile's run length, judged and reported through the real CLI.

The recordings are synthetic (``tests/scale/synthetic.py``: seeded, in the plugin's own
format) so that a 30-minute pre-release run and a 4-hour soak take seconds to build
rather than their length to record. ``paybench check`` judges them against the project's
budgets.yaml, ``paybench report`` writes their reports again; nothing here is timed (the
wall time and memory of both, up to a day-long soak, are measured by
``benchmarks/soak_scale.py``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from harness.config import load_budgets
from harness.core import catalogue, stats
from harness.core.model import AGGREGATE_KEY, is_percentile_metric, request_key
from harness.profiles import available_profiles
from harness.recording import FORMAT_VERSION, HDR_FILE, ROW_COLUMNS
from tests.e2e.helpers import load_summary, paybench
from tests.scale.synthetic import PROJECT_BUDGETS, SyntheticRun, build_profile_run

pytestmark = pytest.mark.e2e

STATUS = request_key(*catalogue.STATUS)
# The requests a soak sends more than once a second (thousands of samples each).
BUSY = (
    catalogue.PLANS,
    catalogue.INITIATE,
    catalogue.STATUS,
    catalogue.SUBSCRIPTION,
    catalogue.WEBHOOK_COMPLETED,
)
# Above this many intervals the bootstrap pools intervals before resampling: a long run's
# confidence intervals take another code path than a short one's.
POOLED_ABOVE = 200
REPORTS = ("report.html", "summary.md", "junit.xml")
# A 4 h recording's check and report each take a while on a 2-core machine (see
# docs/performance.md); the timeout only bounds a hang.
CLI_TIMEOUT_S = 900

# What each shipped profile's synthetic run is built to show, and so what its verdict must
# be: (error rates changed from the defaults, exit code, the budgets that must break).
# Every other budget holds with a wide margin; a profile added later passes by default.
CASES: dict[str, tuple[dict[str, float], int, set[tuple[str, str]]]] = {
    # 1.5 % of status checks fail: that request's error budget (< 1 %) breaks.
    "prerelease": ({STATUS: 0.015}, 1, {(STATUS, "error_rate")}),
    # 0.7 % of the busy business requests fail (the rest of the load is a few per cent):
    # each name stays under its 1 %, the soak's whole-run budget (< 0.5 %) breaks.
    "soak": (
        {request_key(*key): 0.007 for key in BUSY},
        1,
        {(AGGREGATE_KEY, "error_rate")},
    ),
}


def _run_id(profile: str) -> str:
    # Shaped like a real run id (UTC start, six hex digits), one per profile.
    return f"20251126T090000Z-{profile.encode().hex()[:6]}"


def _build(tmp_path: Path, profile: str) -> tuple[SyntheticRun, int, set[tuple[str, str]]]:
    rates, code, broken = CASES.get(profile, ({}, 0, set()))
    warmup_s = load_budgets(PROJECT_BUDGETS, profile=profile).warmup_s or 0.0
    run = build_profile_run(
        tmp_path / "runs" / _run_id(profile),
        profile,
        warmup_s=warmup_s,
        error_rates=rates,
        seed=7,
    )
    return run, code, broken


@pytest.mark.parametrize("profile", available_profiles())
def test_a_run_as_long_as_the_profile_is_judged_and_reported(profile: str, tmp_path: Path) -> None:
    """Regression: judging a run whose steady state held more than 200 intervals with an
    `avg` budget crashed (the mean's bootstrap pooled the intervals into 200 blocks but
    weighted the unpooled count); every shipped profile's length is judged here."""
    run, code, broken = _build(tmp_path, profile)
    run_dir = run.run_dir

    checked = paybench(
        "check", str(run_dir), "--budgets", str(run_dir / "budgets.yaml"), timeout=CLI_TIMEOUT_S
    )
    assert "Traceback" not in checked.stderr, checked.stderr[-3000:]
    assert checked.returncode == code, checked.stdout[-3000:] + checked.stderr[-3000:]

    summary = load_summary(run_dir)
    verdict = summary["verdict"]
    assert verdict["exit_code"] == code
    assert verdict["outcome"] == ("PASS" if code == 0 else "FAIL")
    failed = {(b["request"], b["metric"]) for b in verdict["budgets"] if b["status"] == "fail"}
    assert failed == broken, failed
    # Every budgeted name has samples; a regression budget has no baseline to judge against
    # in a run folder judged on its own (check keeps no history).
    statuses = {b["status"] for b in verdict["budgets"]}
    assert statuses <= {"pass", "fail", "skipped"}, verdict["budgets"]
    # The judged window is the steady state the recording was built with, to the interval.
    assert summary["steady_state"]["end_s"] == pytest.approx(run.duration_s)
    assert summary["whole_run"]["count"] == run.requests
    assert summary["whole_run"]["failures"] == run.failures

    timed = [b for b in verdict["budgets"] if b["metric"] == "avg" or _is_percentile(b)]
    assert {b["metric"] for b in timed} >= {"avg"}, verdict["budgets"]
    for b in timed:
        low, high, measured = b["ci_low"], b["ci_high"], b["measured"]
        assert low is not None and high is not None, b
        assert math.isfinite(low) and math.isfinite(high), b
        assert low <= measured <= high, b

    for name in REPORTS:
        (run_dir / name).unlink()
    reported = paybench("report", str(run_dir), timeout=CLI_TIMEOUT_S)
    assert "Traceback" not in reported.stderr, reported.stderr[-3000:]
    assert reported.returncode == 0, reported.stdout[-3000:] + reported.stderr[-3000:]
    for name in REPORTS:
        assert (run_dir / name).is_file(), name
        assert f"wrote {run_dir / name}" in reported.stdout
    junit = (run_dir / "junit.xml").read_text(encoding="utf-8")
    assert junit.count("<testcase ") == len(verdict["budgets"])
    assert f'failures="{len(broken)}"' in junit


def _is_percentile(budget: dict) -> bool:
    return is_percentile_metric(budget["metric"])


def test_a_synthetic_recording_is_a_consistent_run(tmp_path: Path) -> None:
    """The builder writes the plugin's format (version 2, a line per interval): its
    intervals add up to each key's whole-run row, as the plugin's do, and a long profile's
    run crosses the pooling threshold for a budgeted name."""
    run = build_profile_run(tmp_path / "runs" / _run_id("nightly"), "nightly", seed=3)
    lines = [json.loads(line) for line in (run.run_dir / HDR_FILE).read_text().splitlines()]
    head, end = lines[0], lines[-1]["end"]
    assert head["format_version"] == FORMAT_VERSION == 2
    assert head["interval_s"] == run.interval_s == 2.0
    assert end["test_stop_epoch"] - end["test_start_epoch"] == pytest.approx(300.0)
    rows: dict[int, list[list]] = {}
    for line in lines:
        for row in line.get("rows", ()):
            rows.setdefault(row[0], []).append(row)
    assert len(end["whole"]) == len(rows)  # every key's intervals, and its whole run
    columns = dict(zip(ROW_COLUMNS, range(len(ROW_COLUMNS)), strict=True))
    for whole in end["whole"]:
        intervals = rows[whole[0]]
        histograms = [stats.decode_histogram(r[columns["histogram"]]) for r in intervals]
        assert stats.merge_histograms(histograms) == stats.decode_histogram(whole[-1])
        for field in ("count", "failures", "cut_off", "sum_ns"):
            column = columns[field]
            assert sum(r[column] for r in intervals) == whole[column], (whole[0], field)
        assert [h.count for h in histograms] == [r[columns["count"]] for r in intervals]
    assert run.non_empty_intervals[STATUS] < POOLED_ABOVE
    prerelease = build_profile_run(tmp_path / "runs" / _run_id("prerelease"), "prerelease")
    assert prerelease.non_empty_intervals[STATUS] > 4 * POOLED_ABOVE


def test_a_version_1_soak_is_judged_and_reported_as_its_streamed_twin(tmp_path: Path) -> None:
    """Older recordings still load: a 4 h soak written as one JSON document (format
    version 1, before the master streamed its recording) is judged budget for budget as
    the same data streamed line by line (version 2), and its reports are written."""
    rates, code, broken = CASES["soak"]
    warmup_s = load_budgets(PROJECT_BUDGETS, profile="soak").warmup_s or 0.0
    summaries = []
    for version in (1, 2):
        run = build_profile_run(
            tmp_path / f"v{version}" / "runs" / _run_id("soak"),
            "soak",
            warmup_s=warmup_s,
            error_rates=rates,
            seed=7,
            format_version=version,
        )
        text = (run.run_dir / HDR_FILE).read_text(encoding="utf-8")
        written = json.loads(text if version == 1 else text.split("\n", 1)[0])
        assert written["format_version"] == version
        checked = paybench(
            "check", str(run.run_dir), "--budgets", str(run.run_dir / "budgets.yaml"),
            timeout=CLI_TIMEOUT_S,
        )  # fmt: skip
        assert "Traceback" not in checked.stderr, checked.stderr[-3000:]
        assert checked.returncode == code, checked.stdout[-3000:] + checked.stderr[-3000:]
        for name in REPORTS:
            (run.run_dir / name).unlink()
        reported = paybench("report", str(run.run_dir), timeout=CLI_TIMEOUT_S)
        assert reported.returncode == 0, reported.stdout[-3000:] + reported.stderr[-3000:]
        assert all((run.run_dir / name).is_file() for name in REPORTS)
        summaries.append(load_summary(run.run_dir))
    v1, v2 = summaries
    assert v1["verdict"] == v2["verdict"]
    budgets = v1["verdict"]["budgets"]
    failed = {(b["request"], b["metric"]) for b in budgets if b["status"] == "fail"}
    assert failed == broken
    for part in ("whole_run", "total", "requests", "ramp", "steady_state"):
        assert v1[part] == v2[part], part
