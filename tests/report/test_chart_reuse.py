"""The per-request latency charts share one figure: each is the bytes a new figure gives.

``charts._ReusedAxes`` clears one figure and axes between the charts of the request names
(making them anew was a third of the charts' cost); nothing of one chart may leak into the
next: not a line, a limit, a colour or the layout.
"""

from __future__ import annotations

import dataclasses

from harness.report import build_report_context, render_charts
from harness.report.context import LatencySeries, SeriesLine
from tests.report.sample_runs import make_sample


def _latency_charts(ctx) -> dict[str, str | None]:
    return {c.id: c.svg for c in render_charts(ctx) if c.id.startswith("chart-latency-")}


def test_each_latency_chart_is_drawn_as_on_a_new_figure() -> None:
    ctx = build_report_context(*make_sample())
    series = ctx.timeline.latency
    # A series with no value at all (a name that only failed) after ones with values: a
    # view left from the chart before would stay, as autoscaling has nothing to scale to.
    empty = LatencySeries(
        "GET /api/only-failed",
        tuple(SeriesLine(line.label, (None,) * len(line.values_ms)) for line in series[0].lines),
    )
    many = dataclasses.replace(
        ctx, timeline=dataclasses.replace(ctx.timeline, latency=(*series, empty))
    )
    together = _latency_charts(many)
    assert len(together) == len(series) + 1
    for one in (*series, empty):
        alone = dataclasses.replace(ctx, timeline=dataclasses.replace(ctx.timeline, latency=(one,)))
        ((chart_id, svg),) = _latency_charts(alone).items()
        assert svg is not None
        assert together[chart_id] == svg, f"{chart_id} differs when drawn after other charts"


def test_the_order_of_the_names_changes_no_chart() -> None:
    ctx = build_report_context(*make_sample())
    backwards = dataclasses.replace(
        ctx, timeline=dataclasses.replace(ctx.timeline, latency=ctx.timeline.latency[::-1])
    )
    assert _latency_charts(backwards) == _latency_charts(ctx)
