"""The charts: titled, axes with units, budgets and the steady state drawn, no crash on no data."""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET

import pytest

from harness.core.model import IntervalPoint, RequestStats, RunResult, Verdict
from harness.report import build_report_context, render_charts
from harness.report.charts import OFF_SCALE_FACTOR
from tests.report.sample_runs import make_sample, stats_from

SVG = "{http://www.w3.org/2000/svg}"


def texts(chart) -> list[str]:
    """Every text drawn in a chart (the SVG keeps text as text)."""
    root = ET.fromstring(chart.svg)
    return ["".join(t.itertext()).strip() for t in root.iter(f"{SVG}text")]


@pytest.fixture(scope="module")
def charts():
    return {c.id: c for c in render_charts(build_report_context(*make_sample()))}


def test_every_chart_of_the_sample_is_drawn_with_a_title(charts):
    assert list(charts) == [
        "chart-throughput",
        "chart-errors",
        "chart-latency-get-api-plans",
        "chart-latency-post-api-payments-v2-initiate",
        "chart-latency-get-api-payments-v2-status-merchant-order-id",
        "chart-latency-post-api-payments-v2-webhook-completed",
        "chart-latency-get-api-health",
        "chart-latency-flow-checkout-initiate-confirmed",
        "chart-distribution",
        "chart-flow",
    ]
    for chart in charts.values():
        assert chart.svg is not None and chart.note is None
        assert chart.svg.startswith('<svg role="img" aria-label=')
        assert "viewBox" in chart.svg and "<?xml" not in chart.svg
    assert "Requests per second and users over time" in texts(charts["chart-throughput"])
    assert "Error rate over time" in texts(charts["chart-errors"])
    assert "GET /api/plans" in texts(charts["chart-latency-get-api-plans"])


def test_axes_carry_their_units(charts):
    throughput = texts(charts["chart-throughput"])
    assert "requests per second (req/s)" in throughput and "users" in throughput
    assert "time since start (s)" in throughput
    assert "failed requests (%)" in texts(charts["chart-errors"])
    assert "latency (ms)" in texts(charts["chart-latency-get-api-plans"])
    distribution = texts(charts["chart-distribution"])
    assert "latency (ms, log scale)" in distribution
    assert "percentile (log scale of 1/(1 - percentile))" in distribution
    assert {"50 %", "90 %", "99 %"} <= set(distribution)
    flow = texts(charts["chart-flow"])
    assert "flow duration (ms)" in flow and "flows (count)" in flow


def test_budgets_and_the_steady_state_are_drawn(charts):
    plans = texts(charts["chart-latency-get-api-plans"])
    assert "budget p95 < 300 ms" in plans and "steady state" in plans
    assert "budget avg < 2,000 ms" in texts(charts["chart-latency-post-api-payments-v2-initiate"])
    assert "budget error_rate < 1 %" in texts(charts["chart-errors"])
    assert "expected peak" in texts(charts["chart-throughput"])
    assert "budget p95 < 5,000 ms" in texts(charts["chart-flow"])
    # Dashed: matplotlib writes the dash pattern into the line's style.
    assert "stroke-dasharray" in charts["chart-latency-get-api-plans"].svg
    # 100 ms over a health check of ~5 ms would flatten its lines: named, not drawn.
    health = texts(charts["chart-latency-get-api-health"])
    assert "budget p95 < 100 ms (above)" in health
    assert "budget p95 < 100 ms" not in health
    assert OFF_SCALE_FACTOR > 1


def test_charts_are_deterministic():
    a = render_charts(build_report_context(*make_sample()))
    b = render_charts(build_report_context(*make_sample()))
    assert [c.svg for c in a] == [c.svg for c in b]
    ids = [ET.fromstring(c.svg).find(f".//{SVG}clipPath").get("id") for c in a]
    assert len(set(ids)) == len(ids), "clip path ids must not collide inside one page"


def test_no_data_gives_notes_not_crashes():
    result, _verdict, _budgets = make_sample()
    total = RequestStats("", "Aggregated", 0, 0, 0.0, None, None, None)
    empty = RunResult(meta=result.meta, requests=(), total=total)
    charts = render_charts(build_report_context(empty, Verdict("PASS", ())))
    assert [(c.id, c.svg) for c in charts] == [
        ("chart-throughput", None),
        ("chart-errors", None),
        ("chart-latency", None),
        ("chart-distribution", None),
        ("chart-flow", None),
    ]
    assert all(c.note and c.note.startswith("No data: ") for c in charts)


def test_short_and_odd_data_still_draws():
    result, verdict, budgets = make_sample()
    one = IntervalPoint(0.0, 2.0, 1, 0, 0, {"GET /api/plans": {"p95": float("nan")}})
    single = stats_from("GET", "/api/plans", [1200], 0, 2.0)
    odd = dataclasses.replace(
        result,
        requests=(single,),
        ramp=(),
        timeline=(one,),
        steady_start_s=0.0,
        steady_end_s=2.0,
    )
    charts = {c.id: c for c in render_charts(build_report_context(odd, verdict, budgets))}
    assert charts["chart-throughput"].svg and charts["chart-errors"].svg
    assert charts["chart-latency-get-api-plans"].svg  # a line of NaN only: empty, not a crash
    assert charts["chart-distribution"].svg
    assert charts["chart-flow"].note == "No data: no checkout flow completed in the steady state."


def test_a_soak_length_run_is_plotted_in_minutes():
    result, verdict, budgets = make_sample()
    points = tuple(
        IntervalPoint(10.0 * i, 10.0, 5, 50, 0, {"GET /api/plans": {"p95": 40.0}})
        for i in range(720)
    )
    soak = dataclasses.replace(result, timeline=points, steady_end_s=7200.0)
    charts = {c.id: c for c in render_charts(build_report_context(soak, verdict, budgets))}
    assert "time since start (min)" in texts(charts["chart-throughput"])


def test_flows_without_histograms_say_so():
    result, verdict, budgets = make_sample()
    rounded = tuple(
        dataclasses.replace(s, histogram=None, source="locust") for s in result.locust_requests
    )
    locust_only = dataclasses.replace(result, requests=rounded, ramp=(), exact=False)
    charts = {c.id: c for c in render_charts(build_report_context(locust_only, verdict, budgets))}
    flow = texts(charts["chart-flow"])
    assert "only Locust's figures were recorded." in flow
    assert "Percentile distribution" in flow  # Locust's p50 and p95 still make a curve


def test_many_long_request_names_fit_their_legend():
    result, verdict, budgets = make_sample()
    long = "/api/a/really/long/request/name/that/goes/on/{}/and/on"
    many = tuple(
        stats_from("GET", long.format(i), [1000 * (i + 1)] * 3, 0, 50.0) for i in range(40)
    )
    wide = dataclasses.replace(result, requests=many)
    # filterwarnings=error: a legend that collapsed the axes would fail here.
    (chart,) = [
        c
        for c in render_charts(build_report_context(wide, verdict, budgets))
        if c.id == "chart-distribution"
    ]
    labels = [t for t in texts(chart) if t.startswith("GET ")]
    assert len(labels) == 40 and len(set(labels)) == 40  # shortened, still told apart
