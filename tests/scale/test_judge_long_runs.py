"""Every shipped profile's run length, judged and reported through the CLI.

The recordings are synthetic (``tests/scale/synthetic.py``: seeded, in the plugin's own
format) so that a 30-minute pre-release run takes a second to build rather than its
length to record. ``paybench check`` (in process: the CLI's own command, without a new
interpreter's imports each time) judges them against the project's budgets.yaml and
writes their reports; nothing here is timed. The soak's 4 hours go through the real CLI
in test_soak_end_to_end.py, and the wall time and memory of both commands, up to a
day-long soak, are measured by ``benchmarks/soak_scale.py``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from harness.cli import main
from harness.core import stats
from harness.core.model import is_percentile_metric
from harness.profiles import available_profiles
from harness.recording import FORMAT_VERSION, HDR_FILE, ROW_COLUMNS
from tests.e2e.helpers import load_summary
from tests.scale.cases import CASES, STATUS, build_case, run_id
from tests.scale.synthetic import build_profile_run

pytestmark = pytest.mark.e2e

# Above this many intervals the bootstrap pools intervals before resampling: a long run's
# confidence intervals take another code path than a short one's.
POOLED_ABOVE = 200
REPORTS = ("report.html", "summary.md", "junit.xml")
# The soak (4 h) is judged and reported end to end by test_soak_end_to_end.py.
PROFILES = [p for p in available_profiles() if p != "soak"]


def _cli(*args: str) -> Result:
    result = CliRunner().invoke(main, list(args), env={"COLUMNS": "120"})
    assert "Traceback" not in result.output, result.output[-3000:]
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def _check(run_dir: Path) -> Result:
    return _cli("check", str(run_dir), "--budgets", str(run_dir / "budgets.yaml"))


@pytest.mark.parametrize("profile", PROFILES)
def test_a_run_as_long_as_the_profile_is_judged_and_reported(profile: str, tmp_path: Path) -> None:
    """Regression: judging a run whose steady state held more than 200 intervals with an
    `avg` budget crashed (the mean's bootstrap pooled the intervals into 200 blocks but
    weighted the unpooled count); every shipped profile's length is judged here."""
    _rates, code, broken = CASES.get(profile, ({}, 0, set()))
    run = build_case(tmp_path, profile)
    run_dir = run.run_dir

    checked = _check(run_dir)
    assert checked.exit_code == code, checked.output[-3000:]

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

    # check wrote the reports (`paybench report` writes them again: test_soak_end_to_end).
    for name in REPORTS:
        assert (run_dir / name).is_file(), name
    junit = (run_dir / "junit.xml").read_text(encoding="utf-8")
    assert junit.count("<testcase ") == len(verdict["budgets"])
    assert f'failures="{len(broken)}"' in junit


def _is_percentile(budget: dict) -> bool:
    return is_percentile_metric(budget["metric"])


def test_a_synthetic_recording_is_a_consistent_run(tmp_path: Path) -> None:
    """The builder writes the plugin's format (version 2, a line per interval): its
    intervals add up to each key's whole-run row, as the plugin's do, and a long profile's
    run crosses the pooling threshold for a budgeted name."""
    run = build_profile_run(tmp_path / "runs" / run_id("nightly"), "nightly", seed=3)
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
    prerelease = build_profile_run(tmp_path / "runs" / run_id("prerelease"), "prerelease")
    assert prerelease.non_empty_intervals[STATUS] > 4 * POOLED_ABOVE


def test_a_version_1_recording_is_judged_as_its_streamed_twin(
    tmp_path: Path,
) -> None:
    """Older recordings still load: a 30-minute pre-release run (900 intervals, pooled for
    the bootstrap) written as one JSON document (format version 1, before the master
    streamed its recording) is judged budget for budget as the same data streamed line by
    line (version 2), and its reports are written."""
    _rates, code, broken = CASES["prerelease"]
    summaries = []
    for version in (1, 2):
        run = build_case(tmp_path / f"v{version}", "prerelease", format_version=version)
        text = (run.run_dir / HDR_FILE).read_text(encoding="utf-8")
        written = json.loads(text if version == 1 else text.split("\n", 1)[0])
        assert written["format_version"] == version
        assert run.non_empty_intervals[STATUS] > POOLED_ABOVE
        checked = _check(run.run_dir)
        assert checked.exit_code == code, checked.output[-3000:]
        summaries.append(load_summary(run.run_dir))
        assert all((run.run_dir / name).is_file() for name in REPORTS)
    v1, v2 = summaries
    assert v1["verdict"] == v2["verdict"]
    budgets = v1["verdict"]["budgets"]
    failed = {(b["request"], b["metric"]) for b in budgets if b["status"] == "fail"}
    assert failed == broken
    for part in ("whole_run", "total", "requests", "ramp", "steady_state"):
        assert v1[part] == v2[part], part
