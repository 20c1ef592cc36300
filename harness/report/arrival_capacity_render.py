"""capacity.html and capacity.md of an arrival-rate capacity run: charts, templates, files.

The context comes from ``harness.report.arrival_capacity`` (pure); here the two charts are
drawn against the offered rate (matplotlib ``Figure`` objects through ``charts.new_figure``,
never pyplot's global state), the pages rendered through the one Jinja environment, and
``write_arrival_capacity_reports`` is the only function that touches the disk.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

from harness.core.format import fmt_rps
from harness.report.arrival_capacity import ArrivalCapacityContext
from harness.report.charts import RC_PARAMS, Chart, inline_svg, new_figure
from harness.report.render import environment
from harness.runfolder import CAPACITY_HTML, CAPACITY_MD, write_atomic

CHART_IN = (9.0, 3.8)
# Latencies spanning more than this ratio get a logarithmic axis (an overloaded step's
# queue is seconds where the service time is milliseconds).
LOG_SPAN = 30.0

CARRIED_COLOR = "#1e8449"
SATURATED_COLOR = "#b9770e"
BROKEN_COLOR = "#c0392b"
RATE_COLOR = "#1f77b4"
IDEAL_COLOR = "#7f7f7f"
SERVICE_COLOR = "#6c3483"
VERDICT_STYLE = {
    "carried": ("o", CARRIED_COLOR),
    "saturated": ("s", SATURATED_COLOR),
    "budget broken": ("X", BROKEN_COLOR),
}


def arrival_capacity_charts(ctx: ArrivalCapacityContext) -> tuple[Chart, ...]:
    return (_completed_chart(ctx), _latency_chart(ctx))


def _completed_chart(ctx: ArrivalCapacityContext) -> Chart:
    cid, title = "chart-arrival-completed", f"Completed against offered ({ctx.unit})"
    if not ctx.steps:
        return Chart(cid, title, None, "No data: no step was measured.")
    offered = [s.offered_per_s for s in ctx.steps]
    completed = [s.completed_per_s for s in ctx.steps]
    top = max([*offered, *completed]) * 1.08
    with matplotlib.rc_context(RC_PARAMS):
        fig = new_figure(CHART_IN)
        ax = fig.add_subplot()
        ax.plot([0, top], [0, top], color=IDEAL_COLOR, ls="--", lw=1.0, label="y = x (all carried)")
        ax.plot(offered, completed, color=RATE_COLOR, lw=1.4, label="completed")
        for verdict, (marker, color) in VERDICT_STYLE.items():
            points = [
                (s.offered_per_s, s.completed_per_s) for s in ctx.steps if s.verdict == verdict
            ]
            if points:
                ax.plot(*zip(*points, strict=True), marker, color=color, ms=6, label=verdict)
        if ctx.capacity_per_s is not None:
            ax.axvline(
                ctx.capacity_per_s,
                color=CARRIED_COLOR,
                ls=":",
                lw=1.1,
                label=f"capacity {fmt_rps(ctx.capacity_per_s)}/s",
            )
        if ctx.saturation_per_s is not None:
            ax.axhline(
                ctx.saturation_per_s,
                color=SATURATED_COLOR,
                ls=":",
                lw=1.0,
                label=f"saturation {fmt_rps(ctx.saturation_per_s)}/s",
            )
        ax.set_xlim(0, top)
        ax.set_ylim(0, top)
        ax.set_xlabel(f"offered arrival rate ({ctx.unit})")
        ax.set_ylabel(f"completed ({ctx.unit})")
        ax.set_title(title)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
        return Chart(cid, title, inline_svg(fig, cid, title))


def _latency_chart(ctx: ArrivalCapacityContext) -> Chart:
    cid = "chart-arrival-latency"
    title = "Payment initiation p95 against offered rate: from the intended start and service time"
    values = [v for s in ctx.steps for v in (s.p95_ms, s.service_p95_ms) if v is not None]
    if not values:
        return Chart(cid, title, None, "No data: no step recorded a latency.")
    offered = [s.offered_per_s for s in ctx.steps]
    with matplotlib.rc_context(RC_PARAMS):
        fig = new_figure(CHART_IN)
        ax = fig.add_subplot()
        payer = [math.nan if s.p95_ms is None else s.p95_ms for s in ctx.steps]
        ax.plot(
            offered,
            payer,
            color=RATE_COLOR,
            lw=1.4,
            marker="o",
            ms=4,
            label="p95 from the intended start",
        )
        if ctx.has_service:
            service = [
                math.nan if s.service_p95_ms is None else s.service_p95_ms for s in ctx.steps
            ]
            ax.plot(
                offered,
                service,
                color=SERVICE_COLOR,
                lw=1.2,
                ls="-.",
                marker="s",
                ms=3,
                label="service-time p95",
            )
        if ctx.capacity_per_s is not None:
            ax.axvline(ctx.capacity_per_s, color=CARRIED_COLOR, ls=":", lw=1.1, label="capacity")
        if ctx.first_not_carried_per_s is not None:
            ax.axvline(
                ctx.first_not_carried_per_s,
                color=BROKEN_COLOR,
                ls=":",
                lw=1.1,
                label="first not carried",
            )
        positive = [v for v in values if v > 0]
        if positive and max(positive) / min(positive) > LOG_SPAN:
            ax.set_yscale("log")
            ax.set_ylabel("p95 (ms, log scale)")
        else:
            ax.set_ylim(0, max(values) * 1.15 or 0.001)
            ax.set_ylabel("p95 (ms)")
        ax.set_xlim(left=0, right=max(offered) * 1.08)
        ax.set_xlabel(f"offered arrival rate ({ctx.unit})")
        ax.set_title(title)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
        return Chart(cid, title, inline_svg(fig, cid, title))


def render_arrival_capacity_html(ctx: ArrivalCapacityContext, charts: Sequence[Chart]) -> str:
    """The self-contained page (inline CSS and SVG; nothing is fetched)."""
    template = environment().get_template("arrival_capacity.html.j2")
    return template.render(ctx=ctx, charts=list(charts))


def render_arrival_capacity_markdown(ctx: ArrivalCapacityContext) -> str:
    """capacity.md: the answer and the step table (for a review or a PR)."""
    return environment().get_template("arrival_capacity.md.j2").render(ctx=ctx)


def write_arrival_capacity_reports(run_dir: Path, ctx: ArrivalCapacityContext) -> tuple[Path, Path]:
    """Write capacity.html and capacity.md into the run folder; returns their paths."""
    html = write_atomic(
        run_dir / CAPACITY_HTML, render_arrival_capacity_html(ctx, arrival_capacity_charts(ctx))
    )
    md = write_atomic(run_dir / CAPACITY_MD, render_arrival_capacity_markdown(ctx))
    return html, md
