"""The report context (what the templates and charts are given), from literal runs."""

from __future__ import annotations

import dataclasses
import math

import pytest

from harness.core import catalogue
from harness.core.model import (
    AGGREGATE_KEY,
    BudgetResult,
    IntervalPoint,
    RegressionBudget,
    RequestStats,
    RunResult,
    Verdict,
    request_key,
)
from harness.report.context import (
    MAX_FAILURE_ROWS,
    MAX_TIMELINE_POINTS,
    build_report_context,
    curve_percentiles,
)
from tests.report.sample_runs import SCRIPT, budget, make_sample, meta, new_histogram, stats_from

STATUS_KEY = request_key(*catalogue.STATUS)
WEBHOOK_KEY = request_key(*catalogue.WEBHOOK_COMPLETED)
FLOW_KEY = request_key(*catalogue.FLOW_CHECKOUT)


def test_verdict_headline_and_the_broken_and_marginal_budgets(sample):
    ctx = build_report_context(*sample)
    assert ctx.outcome == "FAIL"
    assert ctx.headline == "1 of 7 budgets broken (1 marginal)"
    assert [b.name for b in ctx.broken] == [f"{STATUS_KEY} p95 < 250 ms"]
    assert [b.name for b in ctx.marginal] == [f"{WEBHOOK_KEY} p95 < 150 ms"]
    assert ctx.reasons == ()


def test_budget_rows_carry_measured_limit_margin_interval_and_verdict(sample):
    ctx = build_report_context(*sample)
    by_key = {b.request_key: b for b in ctx.budgets}
    status = by_key[STATUS_KEY]
    assert (status.status, status.broken, status.marginal) == ("FAIL", True, False)
    assert status.measured_text == "277 ms"
    assert status.limit_text == "< 250 ms"
    assert status.margin_text == "-10.9 %"
    assert status.ci_text == "262 ms \u2013 291 ms"
    assert status.key_path == f'requests."{STATUS_KEY}".p95'
    webhook = by_key[WEBHOOK_KEY]
    assert (webhook.status, webhook.status_label, webhook.broken) == ("MARGINAL", "MARGINAL", False)
    errors = by_key[AGGREGATE_KEY]
    assert (errors.condition, errors.measured_text, errors.ci_text) == (
        "error_rate < 1 %",
        "0.09 %",
        "\u2013",
    )
    assert [b.status for b in ctx.budgets].count("PASS") == 5


def test_facts_name_the_run(sample):
    facts = {f.label: f.value for f in build_report_context(*sample).facts}
    assert facts["Run id"] == "20250301T020000Z-a1b2c3"
    assert facts["Profile"] == "nightly"
    assert facts["Target"] == "http://127.0.0.1:8321 (reference)"
    assert facts["Users"] == "20"
    assert facts["Spawn rate"] == "5 users/s"
    assert facts["Duration"] == "60.0 s (planned 60.0 s)"
    assert facts["Started"] == "2025-03-01T02:00:00Z"
    assert facts["Versions"] == "paybench 0.1.0 · Locust 2.47.0 · scenarios 1"
    assert facts["Git commit"] == "0123456789abcdef0123456789abcdef01234567"
    assert facts["Budgets"] == "budgets.yaml (warm-up 5.0 s)"
    assert facts["Measurement"].startswith("exact")


def test_request_rows_are_the_exact_percentiles(sample):
    result, verdict, budgets = sample
    ctx = build_report_context(result, verdict, budgets)
    assert [r.key for r in ctx.requests] == [s.key for s in result.requests]
    for row, s in zip(ctx.requests, result.requests, strict=True):
        assert row.count == s.count and row.failures == s.failures
        assert row.rps == pytest.approx(s.count / 50.0)
        assert row.avg_ms == pytest.approx(s.avg_ms)
        assert row.max_ms == s.max_ms
        for got, p in zip(
            (row.p50_ms, row.p90_ms, row.p95_ms, row.p99_ms, row.p999_ms),
            (50, 90, 95, 99, 99.9),
            strict=True,
        ):
            # The HDR value, except that no percentile is shown above the exact maximum.
            assert got == pytest.approx(min(s.percentile_ms(p), s.max_ms))
        assert row.p999_ms <= row.max_ms
    flows = [r for r in ctx.requests if r.is_flow]
    assert [r.key for r in flows] == [FLOW_KEY]
    assert ctx.total.is_total and ctx.total.count == result.total.count
    assert ctx.total.error_rate_pct == pytest.approx(100 * 3 / result.total.count)


def test_ramp_total_merges_the_histograms_of_every_name_but_flows(sample):
    result, verdict, budgets = sample
    ctx = build_report_context(result, verdict, budgets)
    assert [r.key for r in ctx.ramp] == [s.key for s in result.ramp]
    plain = [s for s in result.ramp if s.request_type != "FLOW"]
    merged = new_histogram()
    for s in plain:
        merged.add(s.histogram)
    total = ctx.ramp_total
    assert total is not None and total.count == sum(s.count for s in plain)
    assert total.p95_ms == pytest.approx(
        min(merged.percentile_ms(95), max(s.max_ms for s in plain))
    )


def test_ramp_total_without_histograms_leaves_percentiles_unknown(sample):
    result, verdict, budgets = sample
    bare = tuple(dataclasses.replace(s, histogram=None) for s in result.ramp)
    ctx = build_report_context(dataclasses.replace(result, ramp=bare), verdict, budgets)
    assert ctx.ramp_total.count == sum(s.count for s in bare if s.request_type != "FLOW")
    assert ctx.ramp_total.p95_ms is None and ctx.ramp_total.avg_ms is not None


def test_curves_reach_as_far_as_the_samples_resolve():
    assert curve_percentiles(5)[-1] == pytest.approx(90.0)  # at least one decade
    assert curve_percentiles(1000)[-1] == pytest.approx(99.9)
    assert curve_percentiles(10**9)[-1] == pytest.approx(99.9999)
    assert curve_percentiles(1000)[0] == 0.0


def test_latency_curves_and_flow_distribution(sample):
    result, verdict, budgets = sample
    ctx = build_report_context(result, verdict, budgets)
    assert FLOW_KEY not in [c.request_key for c in ctx.latency_curves]
    assert [c.request_key for c in ctx.flow_curves] == [FLOW_KEY]
    plans = next(c for c in ctx.latency_curves if c.request_key == "GET /api/plans")
    s = result.find("GET /api/plans")
    for p, v in zip(plans.percentiles, plans.values_ms, strict=True):
        assert v == pytest.approx(min(s.percentile_ms(p), s.max_ms))
    assert list(plans.values_ms) == sorted(plans.values_ms)
    assert plans.x[0] == 1.0 and plans.x[-1] == pytest.approx(
        1.0 / (1.0 - plans.percentiles[-1] / 100)
    )
    (bins,) = ctx.flow_bins
    flow = result.find(FLOW_KEY)
    assert sum(bins.counts) == flow.count  # every flow lands in a bin
    assert bins.edges_ms[0] <= flow.min_ms * 1.001 and bins.edges_ms[-1] >= flow.max_ms * 0.999
    assert bins.p95_ms == pytest.approx(flow.percentile_ms(95))


def test_budget_lines_for_the_charts(sample):
    ctx = build_report_context(*sample)
    lines = {(b.request_key, b.metric): b for b in ctx.budget_lines}
    assert lines[("GET /api/plans", "p95")].percentile == 95.0
    assert lines[("GET /api/plans", "p95")].label == "p95 < 300 ms"
    assert lines[(request_key(*catalogue.INITIATE), "avg")].percentile is None
    assert lines[(AGGREGATE_KEY, "error_rate")].unit == "%"


def test_timeline_series(sample):
    result, verdict, budgets = sample
    ctx = build_report_context(result, verdict, budgets)
    t = ctx.timeline
    assert len(t.mid_s) == len(result.timeline) == 30 and t.intervals_per_point == 1
    assert t.mid_s[0] == 1.0
    assert t.rps[0] == pytest.approx(result.timeline[0].requests / 2.0)
    assert t.users[-1] == 20
    assert t.error_rate_pct[12] == pytest.approx(100 * 2 / result.timeline[12].requests)
    assert [s.request_key for s in t.latency] == [s.key for s in result.requests]
    plans = t.latency[0]
    assert [line.label for line in plans.lines] == ["p50", "p95", "p99"]
    assert plans.lines[1].values_ms[3] == result.timeline[3].percentiles_ms["GET /api/plans"]["p95"]


def test_a_long_timeline_is_merged_keeping_the_worst_latency():
    points = tuple(
        IntervalPoint(
            start_s=2.0 * i,
            duration_s=2.0,
            users=10,
            requests=100 if i % 7 else 0,
            failures=1 if i == 500 else 0,
            percentiles_ms={"GET /a": {"p95": float(i % 10)}} if i % 7 else {},
        )
        for i in range(1000)
    )
    result, verdict, budgets = make_sample()
    ctx = build_report_context(dataclasses.replace(result, timeline=points), verdict, budgets)
    t = ctx.timeline
    assert t.intervals_per_point == 3 and len(t.mid_s) <= MAX_TIMELINE_POINTS
    assert t.mid_s[0] == 3.0  # the middle of 0 s .. 6 s
    (series,) = [s for s in t.latency if s.request_key == "GET /a"]
    assert series.lines[0].values_ms[0] == 2.0  # intervals 0 (empty), 1, 2: the highest
    assert t.rps[0] == pytest.approx(200 / 6.0)
    assert any("merge every 3 intervals" in n for n in ctx.notes)
    # An interval without requests has no error rate (not 0 %).
    lonely = tuple(p for p in points if p.start_s < 2.0)
    one = build_report_context(dataclasses.replace(result, timeline=lonely), verdict, budgets)
    assert one.timeline.error_rate_pct == (None,)


def test_failures_are_sorted_and_capped():
    result, verdict, budgets = make_sample()
    many = tuple(
        dataclasses.replace(result.failures[0], message=f"error {i}", count=i + 1)
        for i in range(MAX_FAILURE_ROWS + 7)
    )
    ctx = build_report_context(
        dataclasses.replace(result, failures=(*many, result.failures[1])), verdict, budgets
    )
    assert len(ctx.failures) == MAX_FAILURE_ROWS and ctx.failures_omitted == 8
    assert ctx.failures[0].count == MAX_FAILURE_ROWS + 7
    assert [f.count for f in ctx.failures] == sorted((f.count for f in ctx.failures), reverse=True)
    sample_ctx = build_report_context(result, verdict, budgets)
    assert sample_ctx.failures[1].message == SCRIPT  # kept verbatim: escaping is the template's


def test_unreliable_and_incomplete_runs_say_why():
    result, verdict, budgets = make_sample()
    result = dataclasses.replace(
        result,
        incomplete=True,
        incomplete_reason="interrupted after 31 s",
        unreliable_reasons=("the load generator's CPU reached 97 %",),
    )
    verdict = Verdict("UNRELIABLE", verdict.results, ("the load generator's CPU reached 97 %",))
    ctx = build_report_context(result, verdict, budgets)
    assert ctx.outcome == "UNRELIABLE"
    assert ctx.headline == (
        "the run is an unreliable measurement and cannot be judged; "
        "1 of 7 budgets broken (1 marginal)"
    )
    assert ctx.reasons == ("the load generator's CPU reached 97 %", "interrupted after 31 s")
    facts = {f.label: f.value for f in ctx.facts}
    assert facts["Incomplete"] == "interrupted after 31 s"
    incomplete = build_report_context(result, Verdict("INCOMPLETE", (), ("stopped",)), None)
    assert incomplete.headline == "the run did not finish; no budgets were set"


def test_regression_skipped_and_no_samples_rows():
    result, _verdict, _budgets = make_sample()
    rb = RegressionBudget(
        key_path='regressions."GET /api/plans".p95',
        selector="GET /api/plans",
        metric="p95",
        max_increase=10.0,
        relative=True,
        significant_only=True,
        text="+10% significant",
    )
    missing = budget("GET /api/nothing", "p95", "<", 100.0, "< 100ms")
    results = (
        BudgetResult(rb, "GET /api/plans", "fail", 95.0, 88.0, -8.0, 90.0, 99.0,
                     baseline="median of 5 runs"),
        BudgetResult(rb, "GET /api/health", "skipped", 4.0, 0.0, None, message="no baseline yet"),
        BudgetResult(missing, "GET /api/nothing", "no samples", None, 100.0, None,
                     message="no request named GET /api/nothing ran"),
    )  # fmt: skip
    ctx = build_report_context(result, Verdict("FAIL", results), None)
    regression, skipped, none = ctx.budgets
    assert regression.kind == "regression" and regression.status == "FAIL"
    assert regression.condition == "p95 vs baseline +10% significant"
    assert regression.limit_text == "<= 88 ms" and regression.baseline == "median of 5 runs"
    assert (skipped.status, skipped.broken) == ("SKIPPED", False)
    assert (none.status, none.broken, none.measured_text) == ("NO SAMPLES", True, "\u2013")
    assert [b.status for b in ctx.broken] == ["FAIL", "NO SAMPLES"]
    assert ctx.headline == "2 of 3 budgets broken (1 skipped)"
    # A regression's limit moves with its baseline: no fixed line on the charts.
    assert [(b.request_key, b.metric) for b in ctx.budget_lines] == [("GET /api/nothing", "p95")]


def test_an_empty_run_still_has_a_context():
    empty_total = RequestStats("", AGGREGATE_KEY, 0, 0, 0.0, None, None, None)
    result = RunResult(meta=meta(started_at=None, ended_at=None), requests=(), total=empty_total)
    ctx = build_report_context(result, Verdict("PASS", ()), None)
    assert ctx.headline == "no budgets were set"
    assert ctx.total.count == 0 and ctx.total.p95_ms is None and ctx.total.avg_ms is None
    assert ctx.timeline.mid_s == () and ctx.latency_curves == () and ctx.flow_bins == ()
    assert {f.label: f.value for f in ctx.facts}["Duration"] == "\u2013 (planned 60.0 s)"


def test_a_request_name_without_samples_has_no_curve_and_no_percentiles():
    result, verdict, budgets = make_sample()
    idle = stats_from("GET", "/api/idle", [], 0, 50.0)
    ctx = build_report_context(
        dataclasses.replace(result, requests=(*result.requests, idle)), verdict, budgets
    )
    row = ctx.requests[-1]
    assert row.key == "GET /api/idle" and row.count == 0
    assert (row.p50_ms, row.avg_ms, row.max_ms, row.error_rate_pct) == (None, None, None, None)
    assert "GET /api/idle" not in [c.request_key for c in ctx.latency_curves]


def test_locust_only_runs_are_said_to_be_rounded():
    result, verdict, budgets = make_sample()
    rounded = tuple(
        dataclasses.replace(s, histogram=None, source="locust") for s in result.locust_requests
    )
    locust_run = dataclasses.replace(result, requests=rounded, ramp=(), timeline=(), exact=False)
    ctx = build_report_context(locust_run, verdict, budgets)
    assert any("Locust's own figures" in n for n in ctx.notes)
    plans = ctx.requests[0]
    assert plans.p50_ms == result.locust_requests[0].locust_percentiles_ms[50.0]
    assert plans.p99_ms is None  # Locust's figures here hold p50 and p95 only
    curve = next(c for c in ctx.latency_curves if c.request_key == "GET /api/plans")
    assert curve.percentiles == (50.0, 95.0)
    assert ctx.flow_bins == ()  # no histogram, no distribution
    assert not math.isnan(ctx.total.rps)
