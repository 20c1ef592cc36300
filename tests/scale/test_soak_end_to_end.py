"""A 4-hour soak, end to end: ``paybench check`` judges it, ``paybench report`` reports it.

The recording is the soak profile's (100 users, 4 h of 2 s intervals, 14 request names),
synthetic and seeded (``tests/scale/synthetic.py``, built once per session by the
``soak_run`` fixture), with 0.7 % of the busy requests failing: every request name stays
under its own 1 % error budget and the soak's whole-run budget (< 0.5 %) breaks. Nothing
here is timed; ``benchmarks/soak_scale.py`` measures how long both commands take.
"""

from __future__ import annotations

import html
import json
import math
import re

import pytest

from harness.core.model import AGGREGATE_KEY, is_percentile_metric
from tests.e2e.helpers import load_summary, paybench
from tests.scale.cases import CASES
from tests.scale.synthetic import SyntheticRun

pytestmark = pytest.mark.e2e

REPORTS = ("report.html", "summary.md", "junit.xml")
# Bounds a hang only: a 4 h check takes seconds to tens of seconds on a busy machine.
CLI_TIMEOUT_S = 600
MAX_TIMELINE_POINTS = 400  # the report merges a longer timeline into this many points


@pytest.fixture(scope="module")
def judged(soak_run: SyntheticRun) -> tuple[SyntheticRun, dict, str]:
    """The soak judged once by the real CLI: (the run, its summary.json, check's stdout)."""
    run_dir = soak_run.run_dir
    checked = paybench(
        "check", str(run_dir), "--budgets", str(run_dir / "budgets.yaml"), timeout=CLI_TIMEOUT_S
    )
    assert "Traceback" not in checked.stderr, checked.stderr[-3000:]
    _rates, code, _broken = CASES["soak"]
    assert checked.returncode == code, checked.stdout[-3000:] + checked.stderr[-3000:]
    return soak_run, load_summary(run_dir), checked.stdout


def test_a_4h_soak_is_judged_by_paybench_check(judged: tuple[SyntheticRun, dict, str]) -> None:
    """The verdict of 4 h of intervals: the one broken budget, every other holding, each
    timed budget with a confidence interval of the pooled bootstrap around its value."""
    run, summary, stdout = judged
    _rates, code, broken = CASES["soak"]
    verdict = summary["verdict"]
    assert verdict["exit_code"] == code == 1
    assert verdict["outcome"] == "FAIL"
    by_status: dict[str, set[tuple[str, str]]] = {}
    for b in verdict["budgets"]:
        by_status.setdefault(b["status"], set()).add((b["request"], b["metric"]))
    assert by_status.pop("fail") == broken == {(AGGREGATE_KEY, "error_rate")}
    assert set(by_status) <= {"pass", "skipped"}, by_status
    assert len(by_status["pass"]) >= 40  # the soak's budgets: every name, p99.9 included
    (error_rate,) = [b for b in verdict["budgets"] if b["status"] == "fail"]
    assert 0.5 < error_rate["measured"] < 0.7  # percent: above the soak's limit, as built

    # The window judged is the steady state the recording was built with, to the interval,
    # and every request of the run is counted once.
    assert summary["steady_state"]["end_s"] == pytest.approx(run.duration_s)
    assert summary["steady_state"]["start_s"] == pytest.approx(
        run.steady_start_epoch - (run.stop_epoch - run.duration_s), abs=1e-3
    )
    assert summary["whole_run"]["count"] == run.requests > 300_000
    assert summary["whole_run"]["failures"] == run.failures

    timed = [b for b in verdict["budgets"] if b["metric"] == "avg" or _percentile(b)]
    assert {b["metric"] for b in timed} >= {"avg", "p95", "p99", "p99.9"}
    for b in timed:
        low, high, measured = b["ci_low"], b["ci_high"], b["measured"]
        assert low is not None and high is not None, b
        assert math.isfinite(low) and math.isfinite(high), b
        assert low <= measured <= high, b

    # The verdict table the CLI printed says the same.
    assert stdout.startswith("FAIL:"), stdout[:200]
    assert re.search(r"^\s+error_rate\s+0\.[5-6]\d %\s+< 0\.5%.*FAIL$", stdout, re.M), stdout


def test_a_4h_soak_is_reported_by_paybench_report(
    judged: tuple[SyntheticRun, dict, str],
) -> None:
    """`paybench report` writes the three reports of the judged soak again, from the run
    folder alone, and they say what the verdict said."""
    run, summary, _ = judged
    run_dir = run.run_dir
    for name in REPORTS:
        (run_dir / name).unlink()
    reported = paybench("report", str(run_dir), timeout=CLI_TIMEOUT_S)
    assert "Traceback" not in reported.stderr, reported.stderr[-3000:]
    assert reported.returncode == 0, reported.stdout[-3000:] + reported.stderr[-3000:]
    for name in REPORTS:
        assert f"wrote {run_dir / name}" in reported.stdout

    budgets = summary["verdict"]["budgets"]
    junit = (run_dir / "junit.xml").read_text(encoding="utf-8")
    assert junit.count("<testcase ") == len(budgets)
    assert 'failures="1"' in junit
    assert '<property name="outcome" value="FAIL" />' in junit

    markdown = (run_dir / "summary.md").read_text(encoding="utf-8")
    assert markdown.startswith("## paybench FAIL: 1 of ")
    assert "`Aggregated` error\\_rate < 0.5 %" in markdown  # the broken budget, named
    assert "4 h 00 min" in markdown
    total = summary["total"]  # the steady state's requests, the table's last row
    assert f"| **all requests** | {total['count']:,} | {total['failures']:,} |" in markdown

    page = html.unescape((run_dir / "report.html").read_text(encoding="utf-8"))
    assert "FAIL" in page
    # 7,201 intervals do not make 7,201 points: the timeline is merged, and says so.
    per_point = math.ceil(run.intervals / MAX_TIMELINE_POINTS)
    assert f"Charts over time merge every {per_point} intervals into one point" in page
    # A chart for the run over time, one per request name, and the distributions.
    charts = re.findall(r'id="(chart-[a-z0-9-]+)"', page)
    names = {r["key"] for r in summary["requests"]}  # every name the soak sent
    assert len(names) == 14
    assert {"chart-throughput", "chart-errors", "chart-distribution"} <= set(charts)
    assert len([c for c in charts if c.startswith("chart-latency-")]) >= len(names)
    assert all(name in page for name in names)
    assert page.count("<svg") == len(charts)

    # Written again from the same folder, the judgement is the same (summary untouched).
    assert json.loads((run_dir / "summary.json").read_text(encoding="utf-8")) == summary


def _percentile(budget: dict) -> bool:
    return is_percentile_metric(budget["metric"])
