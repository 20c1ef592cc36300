"""The report's charts: ReportContext -> inline SVG strings (matplotlib, no pyplot).

Figures are made as ``matplotlib.figure.Figure`` objects and drawn by the SVG canvas, so
nothing touches pyplot's global state or needs a display. The SVG is deterministic (fixed
hash salt per chart, no date) so that re-rendering a run folder gives the same bytes.
"""

from __future__ import annotations

import dataclasses
import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import matplotlib
from matplotlib.axes import Axes
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator
from matplotlib.transforms import Bbox

from harness.core.model import AGGREGATE_KEY
from harness.report.context import BudgetLine, PercentileCurve, ReportContext

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

BUDGET_COLOR = "#c0392b"
STEADY_COLOR = "#2a9d8f"
USERS_COLOR = "#7f7f7f"
WIDE_IN = (10.0, 3.6)
LEGEND_ROWS = 20  # more request names than this: a two-column legend
LEGEND_CHARS = 48  # request names are shortened to this in legends
OFF_SCALE_FACTOR = 4.0  # a budget this many times above the highest point is not drawn
SMALL_IN = (5.2, 3.3)
# Text stays text in the SVG (smaller files; the page's font draws it). Request names and
# messages are shown as written: with maths parsing on, a name such as "/cost/$x^$" (Locust
# keeps templated paths) would be typeset, or fail to parse and lose the whole report.
RC_PARAMS: dict[RcKeyType, Any] = {
    "svg.fonttype": "none",
    "text.parse_math": False,
    "font.family": "sans-serif",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    # A title at a fixed height: matplotlib would otherwise measure every tick label again
    # at each draw to lift it above ticks at the top or an offset text (x1e6) under it,
    # which these charts do not have (the same SVG bytes either way).
    "axes.titley": 1.0,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.fontsize": 7.5,
    "legend.framealpha": 0.85,
}


@dataclass(frozen=True)
class Chart:
    """One chart of the report: an inline SVG, or a note saying why there is none."""

    id: str
    title: str
    svg: str | None
    note: str | None = None
    wide: bool = True


def render_charts(ctx: ReportContext) -> tuple[Chart, ...]:
    """Every chart of the report, in the order the page shows them."""
    colors = _colors([r.key for r in ctx.requests])
    charts = [_throughput(ctx), _errors(ctx)]
    charts.extend(_latency_over_time(ctx, colors))
    charts.append(_distribution(ctx, colors))
    charts.append(_flow(ctx))
    return tuple(charts)


# --- helpers -------------------------------------------------------------------------


def _colors(keys: Sequence[str]) -> dict[str, str]:
    """One colour per request name: tab20's ten strong colours first, then its pale ones."""
    cmap = matplotlib.colormaps["tab20"]
    order = [*range(0, 20, 2), *range(1, 20, 2)]
    return {k: matplotlib.colors.to_hex(cmap(order[i % 20])) for i, k in enumerate(keys)}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "chart"


def inline_svg(fig: Figure, chart_id: str, title: str | None = None) -> str:
    """The figure as an SVG element to inline in a page: text stays text, a fixed salt and
    no date make re-renders byte-identical, and ``title`` (when given) labels it."""
    buf = io.StringIO()
    # Tick labels are made while drawing: they too must be read literally.
    literal: dict[RcKeyType, Any] = {
        "svg.fonttype": "none",
        "svg.hashsalt": chart_id,
        "text.parse_math": False,
    }
    with matplotlib.rc_context(literal):
        FigureCanvasSVG(fig).print_svg(buf, metadata={"Date": None})
    text = buf.getvalue()
    text = text[text.index("<svg") :]  # inline: no XML declaration or DOCTYPE
    # Responsive: the viewBox keeps the aspect ratio, CSS sets the width.
    text = re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r"<svg\1", text, count=1)
    if title is None:
        return text
    label = title.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
    return text.replace("<svg", f'<svg role="img" aria-label="{label}"', 1)


def new_figure(size: tuple[float, float]) -> Figure:
    with matplotlib.rc_context(RC_PARAMS):
        return Figure(figsize=size, layout="constrained")


def _time_axis(ctx: ReportContext) -> tuple[float, str]:
    """Seconds, or minutes for runs longer than half an hour."""
    span = max(ctx.timeline.mid_s, default=0.0)
    return (60.0, "time since start (min)") if span > 1800 else (1.0, "time since start (s)")


def _mark_steady(ax: Axes, ctx: ReportContext, scale: float) -> None:
    if ctx.steady_end_s > ctx.steady_start_s:
        ax.axvspan(
            ctx.steady_start_s / scale,
            ctx.steady_end_s / scale,
            color=STEADY_COLOR,
            alpha=0.09,
            lw=0,
            label="steady state",
        )


def _nan(values: Sequence[float | None]) -> list[float]:
    return [math.nan if v is None else v for v in values]


def _marker(n: int) -> str | None:
    return "o" if n <= 30 else None


def _no_data(chart_id: str, title: str, why: str, wide: bool = True) -> Chart:
    return Chart(chart_id, title, None, f"No data: {why}.", wide)


def _budget_hlines(ax: Axes, lines: Sequence[BudgetLine], scale: float = 1.0) -> None:
    seen: set[tuple[str, float]] = set()
    for line in lines:
        if (line.label, line.limit) in seen:
            continue
        seen.add((line.label, line.limit))
        ax.axhline(
            line.limit / scale,
            color=BUDGET_COLOR,
            ls="--",
            lw=1.1,
            label=f"budget {line.label}",
        )


# --- the charts ----------------------------------------------------------------------


class _ReusedAxes:
    """One figure and axes, cleared and drawn again for each chart of a series of alike ones.

    Making a figure and its axes, and the tick artists each axis makes on its first draw,
    is a quarter of a small chart's cost; a report has a chart like this per request name.
    ``fresh()`` leaves the axes as a new one would be where any chart here can tell: no
    artists, data limits and view limits as new, autoscaling on, the colour cycle at its
    start, the position the layout starts from; the ticks, already made, are kept (the
    next draw sets their places and labels). The charts drawn are the bytes a new figure
    gives (``tests/report/test_chart_reuse.py``).
    """

    def __init__(self, size: tuple[float, float]) -> None:
        self._size = size
        self._fig: Figure | None = None
        self._ax: Axes | None = None

    def fresh(self) -> tuple[Figure, Axes]:
        """The figure and its axes, as new. Call inside ``rc_context(RC_PARAMS)``."""
        if self._fig is None or self._ax is None:
            self._fig = new_figure(self._size)
            self._ax = self._fig.add_subplot()
            return self._fig, self._ax
        fig, ax = self._fig, self._ax
        for artist in [*ax.lines, *ax.patches, *ax.collections, *ax.texts]:
            artist.remove()
        if (legend := ax.get_legend()) is not None:
            legend.remove()
        ax.relim()
        # Limits of a new axes: autoscaling keeps a view that was changed when no data is
        # left to scale to (a line of NaN only).
        ax.viewLim.set_points(Bbox.unit().get_points())
        ax.set_autoscale_on(True)
        ax.set_prop_cycle(None)
        spec = ax.get_subplotspec()
        if spec is not None:
            ax.set_position(spec.get_position(fig))
            ax.set_in_layout(True)  # set_position takes it out of the layout
        return fig, ax


def _timeline_axes(ctx: ReportContext) -> tuple[Figure, Axes, list[float], str]:
    """A wide figure over the run's timeline, steady state marked: (figure, axes, the
    intervals' mid times in the axis unit, the x label). Call inside ``rc_context``."""
    scale, xlabel = _time_axis(ctx)
    fig = new_figure(WIDE_IN)
    ax = fig.add_subplot()
    _mark_steady(ax, ctx, scale)
    return fig, ax, [m / scale for m in ctx.timeline.mid_s], xlabel


def _throughput(ctx: ReportContext) -> Chart:
    cid, title = "chart-throughput", "Requests per second and users over time"
    t = ctx.timeline
    if not t.mid_s:
        return _no_data(cid, title, "the run recorded no intervals")
    with matplotlib.rc_context(RC_PARAMS):
        fig, ax, x, xlabel = _timeline_axes(ctx)
        ax.plot(x, t.rps, color="#1f77b4", lw=1.6, marker=_marker(len(x)), ms=3, label="requests/s")
        rps_budgets = [
            b for b in ctx.budget_lines if b.metric == "rps" and b.request_key == AGGREGATE_KEY
        ]
        _budget_hlines(ax, rps_budgets)
        if ctx.expected_peak_rps is not None:
            ax.axhline(
                ctx.expected_peak_rps, color="#6c3483", ls=":", lw=1.2, label="expected peak"
            )
        peak = [ctx.expected_peak_rps] if ctx.expected_peak_rps is not None else []
        top = max([*t.rps, *(b.limit for b in rps_budgets), *peak])
        ax.set_ylim(0, max(top * 1.15, 1.0))  # a flat line must not sit on the frame
        ax.set_xlabel(xlabel)
        ax.set_ylabel("requests per second (req/s)")
        ax.set_title(title)
        users = ax.twinx()
        users.step(x, t.users, where="mid", color=USERS_COLOR, lw=1.2, label="users")
        users.set_ylim(0, max(max(t.users, default=0) * 1.15, 1))
        users.set_ylabel("users")
        users.grid(False)
        handles, labels = ax.get_legend_handles_labels()
        h2, l2 = users.get_legend_handles_labels()
        ax.legend(handles + h2, labels + l2, loc="upper left", bbox_to_anchor=(1.08, 1.0))
        return Chart(cid, title, inline_svg(fig, cid, title))


def _errors(ctx: ReportContext) -> Chart:
    cid, title = "chart-errors", "Error rate over time"
    t = ctx.timeline
    if not t.mid_s:
        return _no_data(cid, title, "the run recorded no intervals")
    with matplotlib.rc_context(RC_PARAMS):
        fig, ax, x, xlabel = _timeline_axes(ctx)
        ax.plot(
            x,
            _nan(t.error_rate_pct),
            color="#d62728",
            lw=1.6,
            marker=_marker(len(x)),
            ms=3,
            label="failed requests (all names)",
        )
        lines = [b for b in ctx.budget_lines if b.metric == "error_rate"]
        # A per-name limit is still worth seeing against the run's error rate; one line a limit.
        by_limit: dict[float, list[BudgetLine]] = {}
        for b in lines:
            by_limit.setdefault(b.limit, []).append(b)
        _budget_hlines(
            ax,
            [
                dataclasses.replace(
                    same[0],
                    label=same[0].label
                    + ("" if any(b.request_key == AGGREGATE_KEY for b in same) else " (per name)"),
                )
                for same in by_limit.values()
            ],
        )
        top = max([v for v in t.error_rate_pct if v is not None] + [b.limit for b in lines])
        ax.set_ylim(0, max(top * 1.15, 1.0))
        ax.set_xlabel(xlabel)
        ax.set_ylabel("failed requests (%)")
        ax.set_title(title)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
        return Chart(cid, title, inline_svg(fig, cid, title))


_LINE_STYLES = {"p50": "-", "median": "-", "p90": "-", "p95": "-", "p99": "-"}


def _latency_over_time(ctx: ReportContext, colors: dict[str, str]) -> list[Chart]:
    t = ctx.timeline
    if not t.latency:
        return [
            _no_data(
                "chart-latency",
                "Latency percentiles over time",
                "no interval recorded a latency",
            )
        ]
    scale, xlabel = _time_axis(ctx)
    shades = ["#9ecae1", "#4292c6", "#08519c", "#08306b", "#000000"]
    charts = []
    small = _ReusedAxes(SMALL_IN)
    for series in t.latency:
        cid = f"chart-latency-{_slug(series.request_key)}"
        title = f"Latency over time: {series.request_key}"
        with matplotlib.rc_context(RC_PARAMS):
            fig, ax = small.fresh()
            x = [m / scale for m in t.mid_s]
            _mark_steady(ax, ctx, scale)
            top = 0.0
            for i, line in enumerate(series.lines):
                values = _nan(line.values_ms)
                top = max([top, *[v for v in values if not math.isnan(v)]])
                ax.plot(
                    x,
                    values,
                    color=shades[min(i, len(shades) - 1)] if len(series.lines) > 1 else "#1f77b4",
                    lw=1.4,
                    marker=_marker(len(x)),
                    ms=2.5,
                    label=line.label,
                )
            budgets = [
                b
                for b in ctx.budget_lines
                if b.request_key == series.request_key and b.unit == "ms"
            ]
            # A limit far above the data would flatten the lines it judges: say it instead.
            far = [b for b in budgets if top > 0 and b.limit > OFF_SCALE_FACTOR * top]
            near = [b for b in budgets if b not in far]
            _budget_hlines(ax, near)
            top = max([top, *[b.limit for b in near]])
            ax.set_ylim(0, max(top * (1.3 if far else 1.12), 0.001))
            for b in far:
                ax.plot(
                    [], [], color=BUDGET_COLOR, ls="--", lw=1.1, label=f"budget {b.label} (above)"
                )
            ax.set_xlabel(xlabel)
            ax.set_ylabel("latency (ms)")
            ax.set_title(_wrap_title(series.request_key), fontsize=9)
            # Below the axes: inside, the legend would hide the lines it explains; the
            # percentile lines first, the steady-state shading last.
            handles, labels = ax.get_legend_handles_labels()
            order = sorted(range(len(labels)), key=lambda i: labels[i] == "steady state")
            ax.legend(
                [handles[i] for i in order],
                [labels[i] for i in order],
                loc="upper center",
                bbox_to_anchor=(0.5, -0.2),
                ncols=3,
                frameon=False,
            )
            charts.append(Chart(cid, title, inline_svg(fig, cid, title), wide=False))
    return charts


def _wrap_title(text: str, width: int = 52) -> str:
    """Shortened in the middle: request names differ at their ends (ids, [variants])."""
    if len(text) <= width:
        return text
    head = (width - 1) * 2 // 5
    return text[:head] + "…" + text[len(text) - (width - 1 - head) :]


# No tick at 0 %: it sits on the left edge, too close to 50 % to read.
_PCT_TICKS = (50.0, 90.0, 99.0, 99.9, 99.99, 99.999, 99.9999)


def _pct_label(p: float) -> str:
    return f"{p:g} %"


def _hdr_axes(ax: Axes, max_x: float) -> None:
    """Log x axis at 1/(1-q), labelled with the percentile q (the HdrHistogram plot)."""
    ax.set_xscale("log")
    ticks = [1.0 / (1.0 - p / 100.0) for p in _PCT_TICKS if 1.0 / (1.0 - p / 100.0) <= max_x * 1.01]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(
        FuncFormatter(lambda x, _pos: _pct_label(round(100.0 * (1.0 - 1.0 / x), 4)))
    )
    ax.set_xlim(1.0, max(max_x, 2.0))
    ax.set_xlabel("percentile (log scale of 1/(1 - percentile))")


def _plot_curves(
    ax: Axes,
    curves: Sequence[PercentileCurve],
    colors: dict[str, str],
    lines: Sequence[BudgetLine],
) -> tuple[float, float]:
    low, high = math.inf, 0.0
    for i, c in enumerate(curves):
        color = colors.get(c.request_key, matplotlib.colors.to_hex(f"C{i % 10}"))
        label = f"{_wrap_title(c.request_key, LEGEND_CHARS)} (n={c.count:,})"
        ax.plot(c.x, c.values_ms, color=color, lw=1.5, label=label)
        positive = [v for v in c.values_ms if v > 0]
        low = min([low, *positive])
        high = max([high, *c.values_ms])
        # A percentile budget: a dashed line at its limit from its percentile onwards.
        for b in lines:
            if b.request_key != c.request_key or b.percentile is None:
                continue
            x0 = 1.0 / (1.0 - b.percentile / 100.0)
            ax.hlines(b.limit, x0, max(c.x[-1], x0 * 10), colors=color, linestyles="--", lw=1.1)
            ax.plot([x0], [b.limit], marker="v", color=color, ms=5)
            high = max(high, b.limit)
    return low, high


def _distribution(ctx: ReportContext, colors: dict[str, str]) -> Chart:
    cid, title = "chart-distribution", "Latency distribution by request name (steady state)"
    curves = ctx.latency_curves
    if not curves:
        return _no_data(cid, title, "no request completed in the steady state")
    # The legend lists every name: the figure grows with it (else the axes collapse).
    legend_cols = 1 if len(curves) <= LEGEND_ROWS else 2
    rows = math.ceil((len(curves) + 1) / legend_cols)
    with matplotlib.rc_context(RC_PARAMS):
        fig = new_figure((10.0 if legend_cols == 1 else 12.0, max(4.6, 1.2 + 0.16 * rows)))
        ax = fig.add_subplot()
        low, high = _plot_curves(ax, curves, colors, ctx.budget_lines)
        max_x = max(max(c.x) for c in curves)
        _hdr_axes(ax, max_x)
        if high > 0 and low < math.inf and high / low > 30:
            ax.set_yscale("log")
            ax.set_ylabel("latency (ms, log scale)")
        else:
            ax.set_ylim(0, high * 1.1 if high > 0 else 1)
            ax.set_ylabel("latency (ms)")
        ax.set_title(title)
        if any(b.percentile is not None for b in ctx.budget_lines):
            ax.plot(
                [],
                [],
                color="#555555",
                ls="--",
                marker="v",
                ms=5,
                label="budget (▼ at its percentile)",
            )
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), ncols=legend_cols)
        return Chart(cid, title, inline_svg(fig, cid, title))


def _flow(ctx: ReportContext) -> Chart:
    cid, title = "chart-flow", "Checkout flow duration (steady state)"
    if not ctx.flow_curves:
        return _no_data(cid, title, "no checkout flow completed in the steady state")
    lines = [b for b in ctx.budget_lines if b.unit == "ms"]
    with matplotlib.rc_context(RC_PARAMS):
        fig = new_figure((10.0, 4.4))
        left, right = fig.subplots(1, 2)
        single = len(ctx.flow_bins) == 1
        for i, bins in enumerate(ctx.flow_bins):
            color = f"C{i % 10}"
            # Outlined and see-through, so that two flows' durations can overlap readably.
            left.stairs(
                bins.counts,
                bins.edges_ms,
                fill=True,
                color=color,
                alpha=0.45,
                label=bins.request_key,
            )
            left.stairs(bins.counts, bins.edges_ms, color=color, lw=1.2)
            # Percentile marks for one flow only; with several the right panel compares them.
            marks = (
                ("p50", bins.p50_ms, "-"),
                ("p95", bins.p95_ms, "-."),
                ("p99", bins.p99_ms, ":"),
            )
            for name, value, ls in marks if single else ():
                if value is not None:
                    left.axvline(
                        value, color="#333333", ls=ls, lw=1, label=f"{name} {value:,.0f} ms"
                    )
            for b in lines:
                if b.request_key == bins.request_key:
                    left.axvline(
                        b.limit, color=BUDGET_COLOR, ls="--", lw=1.1, label=f"budget {b.label}"
                    )
            if bins.log_x:
                left.set_xscale("log")
        left.set_xlabel(
            "flow duration (ms)" + (", log scale" if any(b.log_x for b in ctx.flow_bins) else "")
        )
        left.set_ylabel("flows (count)")
        left.set_ylim(bottom=0)
        left.set_title("How long flows took")
        if ctx.flow_bins:
            left.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncols=2, frameon=False)
        else:
            left.set_axis_off()
            left.text(
                0.5,
                0.5,
                "No histogram of the flows' durations:\nonly Locust's figures were recorded.",
                ha="center",
                va="center",
                transform=left.transAxes,
                color="#5d6d7e",
            )
        colors = {c.request_key: f"C{i % 10}" for i, c in enumerate(ctx.flow_curves)}
        _low, high = _plot_curves(right, ctx.flow_curves, colors, ctx.budget_lines)
        _hdr_axes(right, max(max(c.x) for c in ctx.flow_curves))
        flow_keys = {c.request_key for c in ctx.flow_curves}
        # Non-percentile time budgets of a flow (avg, max) have no percentile: full width.
        _budget_hlines(
            right, [b for b in lines if b.request_key in flow_keys and b.percentile is None]
        )
        right.set_ylim(0, max(high * 1.1, 1.0))
        right.set_ylabel("flow duration (ms)")
        right.set_title("Percentile distribution")
        right.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncols=1, frameon=False)
        fig.suptitle(title, fontweight="bold", fontsize=10)
        return Chart(cid, title, inline_svg(fig, cid, title))
