"""capacity.html and capacity.md of a stepped run: context (pure), charts, templates.

``build_capacity_context`` turns a ``CapacityAnalysis`` into the flat values the two
templates show; ``capacity_charts`` draws throughput and latency against users as inline
SVG (matplotlib ``Figure`` objects, never pyplot's global state); ``write_capacity_reports``
is the only function here that touches the disk.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

import matplotlib
from matplotlib.figure import Figure

from harness.core.capacity import (
    AGGREGATE_KEY,
    CHECKOUT_KEY,
    FLOW_TYPE,
    CapacityAnalysis,
    plain_name,
)
from harness.core.format import fmt_rps
from harness.core.model import Budgets
from harness.report.charts import RC_PARAMS, inline_svg, new_figure
from harness.report.render import environment
from harness.runfolder import CAPACITY_HTML, CAPACITY_MD, write_atomic

# The latency chart stays readable with this many request names; the rest are in the table.
MAX_LATENCY_SERIES = 6
FIT_POINTS = 120

BUDGET_COLOR = "#c0392b"
RATE_COLOR = "#1f77b4"
FIT_COLOR = "#6c3483"
KNEE_COLOR = "#b9770e"
HELD_COLOR = "#1e8449"
REQUESTS_COLOR = "#7f7f7f"


# --------------------------------------------------------------------------- context


@dataclass(frozen=True)
class StepRow:
    users: int
    start_s: float
    duration_s: float
    checkout_rps: float
    throughput_rps: float
    error_rate_pct: float | None
    p50_ms: float | None  # of payment initiation, or of every request without checkouts
    p95_ms: float | None
    p99_ms: float | None
    held: bool
    broken: tuple[str, ...]
    marks: tuple[str, ...]  # "capacity", "knee", "first break"
    cpu_ms_per_checkout: float | None = None  # the cost figure (the target process' CPU)


@dataclass(frozen=True)
class LatencySeries:
    """p95 of one request name at every step, and its p95 budget when there is one."""

    request_key: str
    label: str
    p95_ms: tuple[float | None, ...]
    budget_ms: float | None
    budget_text: str | None


@dataclass(frozen=True)
class FitView:
    lambda_rps: float
    sigma: float
    kappa: float
    r_squared: float
    peak_users: float | None
    peak_rate: float | None
    ceiling_rate: float | None
    extrapolated: bool
    curve_users: tuple[float, ...]
    curve_rate: tuple[float, ...]


@dataclass(frozen=True)
class CapacityContext:
    title: str
    sentence: str
    facts: tuple[tuple[str, str], ...]
    unit: str  # "checkouts/s" or "requests/s"
    capacity_users: int | None
    capacity_rate: float | None
    capacity_requests_rps: float | None
    first_broken_users: int | None
    first_broken: tuple[str, ...]
    saturation_reached: bool
    knee_users: int | None
    plateau_rate: float | None
    saturation_note: str
    fit: FitView | None
    expected_peak: float | None
    headroom: float | None
    lower_bound: bool  # no break and no knee: the capacity (and headroom) lie higher
    stop_text: str | None
    notes: tuple[str, ...]
    steps: tuple[StepRow, ...]
    latency: tuple[LatencySeries, ...]
    percentile_keys: tuple[str, ...]
    # request key -> p95 per step, for the full table under the charts
    percentile_rows: tuple[tuple[str, tuple[float | None, ...]], ...]
    has_cost: bool = False  # a step has CPU ms per checkout (the target process was scraped)


def build_capacity_context(
    analysis: CapacityAnalysis,
    *,
    budgets: Budgets | None,
    facts: Sequence[tuple[str, str]] = (),
    title: str = "paybench capacity",
) -> CapacityContext:
    """Everything the templates and charts show, as plain values (pure)."""
    a = analysis
    held, broke = a.capacity.held, a.capacity.first_broken
    knee = a.saturation.knee if a.saturation.reached else None
    latency_key = CHECKOUT_KEY if a.basis == "checkouts" else AGGREGATE_KEY
    rows = []
    for s in a.steps:
        marks = []
        if held is not None and s.users == held.users:
            marks.append("capacity")
        if knee is not None and s.users == knee.users:
            marks.append("knee")
        if broke is not None and s.users == broke.users:
            marks.append("first break")
        pct = s.percentiles_ms.get(latency_key, {})
        rows.append(
            StepRow(
                users=s.users,
                start_s=s.start_s,
                duration_s=s.duration_s,
                checkout_rps=s.checkout_rps,
                throughput_rps=s.throughput_rps,
                error_rate_pct=s.error_rate_pct,
                p50_ms=pct.get("p50"),
                p95_ms=pct.get("p95"),
                p99_ms=pct.get("p99"),
                held=s.budgets_held,
                broken=tuple(str(b) for b in s.broken),
                marks=tuple(marks),
                cpu_ms_per_checkout=(
                    None if s.cpu_s_per_checkout is None else 1000.0 * s.cpu_s_per_checkout
                ),
            )
        )
    keys = _request_keys(a)
    fit = None
    if a.fit is not None and a.steps:
        top = max(s.users for s in a.steps)
        span = max(top * 1.25, a.fit.peak_users or 0.0) if not a.fit.extrapolated else top * 1.25
        xs = tuple(1.0 + (span - 1.0) * i / (FIT_POINTS - 1) for i in range(FIT_POINTS))
        fit = FitView(
            lambda_rps=a.fit.lambda_rps,
            sigma=a.fit.sigma,
            kappa=a.fit.kappa,
            r_squared=a.fit.r_squared,
            peak_users=a.fit.peak_users,
            peak_rate=a.fit.peak_rps,
            ceiling_rate=a.fit.ceiling_rps,
            extrapolated=a.fit.extrapolated,
            curve_users=xs,
            curve_rate=tuple(a.fit.predict(x) for x in xs),
        )
    return CapacityContext(
        title=title,
        sentence=a.sentence,
        facts=tuple(facts),
        unit=a.unit,
        capacity_users=None if held is None else held.users,
        capacity_rate=a.capacity_rate,
        capacity_requests_rps=None if held is None else held.throughput_rps,
        first_broken_users=None if broke is None else broke.users,
        first_broken=() if broke is None else tuple(str(b) for b in broke.broken),
        saturation_reached=a.saturation.reached,
        knee_users=None if knee is None else knee.users,
        plateau_rate=a.saturation.rate,
        saturation_note=a.saturation.note,
        fit=fit,
        expected_peak=a.expected_peak_rps,
        headroom=a.headroom,
        lower_bound=a.is_lower_bound,
        stop_text=None if a.stop is None else f"{a.stop.reason}: {a.stop.message}",
        notes=a.notes,
        steps=tuple(rows),
        latency=_latency_series(a, keys, budgets),
        percentile_keys=keys,
        percentile_rows=tuple(
            (k, tuple(s.percentiles_ms.get(k, {}).get("p95") for s in a.steps)) for k in keys
        ),
        has_cost=any(r.cpu_ms_per_checkout is not None for r in rows),
    )


def _request_keys(a: CapacityAnalysis) -> tuple[str, ...]:
    """Request keys with a latency in some step: the checkout first, then by name."""
    seen = {k for s in a.steps for k in s.percentiles_ms if k != AGGREGATE_KEY}
    ordered = sorted(seen, key=lambda k: (k != CHECKOUT_KEY, k.startswith(FLOW_TYPE + " "), k))
    return tuple(ordered)


def _p95_budget(budgets: Budgets | None, key: str) -> tuple[float, str] | None:
    if budgets is None:
        return None
    for b in budgets.budgets:
        if b.metric == "p95" and b.op in ("<", "<=") and _selects(b.selector, key):
            return b.limit, b.text
    return None


def _selects(selector: str, key: str) -> bool:
    if selector == key:
        return True
    if "*" in selector or "?" in selector:
        # brackets in our request names are literal, not character classes
        return fnmatchcase(key, selector.replace("[", "[[]"))
    return False


def _latency_series(
    a: CapacityAnalysis, keys: Sequence[str], budgets: Budgets | None
) -> tuple[LatencySeries, ...]:
    """The names worth a line: those with a p95 budget, the checkout first, at most six."""
    budgeted = {k for k in keys if _p95_budget(budgets, k) is not None}
    chosen = [k for k in keys if k == CHECKOUT_KEY or k in budgeted][:MAX_LATENCY_SERIES]
    if not chosen:
        chosen = list(keys[:MAX_LATENCY_SERIES])
    series = []
    for k in chosen:
        budget = _p95_budget(budgets, k)
        series.append(
            LatencySeries(
                request_key=k,
                label=plain_name(k),
                p95_ms=tuple(s.percentiles_ms.get(k, {}).get("p95") for s in a.steps),
                budget_ms=None if budget is None else budget[0],
                budget_text=None if budget is None else budget[1],
            )
        )
    return tuple(series)


# --------------------------------------------------------------------------- charts


@dataclass(frozen=True)
class CapacityChart:
    id: str
    title: str
    svg: str | None
    note: str | None = None


def capacity_charts(ctx: CapacityContext) -> tuple[CapacityChart, ...]:
    return (_throughput_chart(ctx), _latency_chart(ctx))


def _figure() -> Figure:
    return new_figure((9.0, 3.8))


def _throughput_chart(ctx: CapacityContext) -> CapacityChart:
    cid, title = "chart-capacity-throughput", f"Throughput against users ({ctx.unit})"
    if not ctx.steps:
        return CapacityChart(cid, title, None, "No data: no step was measured.")
    users = [s.users for s in ctx.steps]
    rates = [s.checkout_rps if ctx.unit == "checkouts/s" else s.throughput_rps for s in ctx.steps]
    with matplotlib.rc_context(RC_PARAMS):
        fig = _figure()
        ax = fig.add_subplot()
        if ctx.fit is not None:
            ax.plot(
                ctx.fit.curve_users,
                ctx.fit.curve_rate,
                color=FIT_COLOR,
                lw=1.2,
                ls="-.",
                label=f"USL fit (R² {ctx.fit.r_squared:.2f})",
            )
        held = [(u, r) for u, r, s in zip(users, rates, ctx.steps, strict=True) if s.held]
        broke = [(u, r) for u, r, s in zip(users, rates, ctx.steps, strict=True) if not s.held]
        ax.plot(users, rates, color=RATE_COLOR, lw=1.4, label=f"measured {ctx.unit}")
        if held:
            ax.plot(*zip(*held, strict=True), "o", color=HELD_COLOR, ms=5, label="budgets held")
        if broke:
            ax.plot(*zip(*broke, strict=True), "X", color=BUDGET_COLOR, ms=7, label="budget broken")
        if ctx.capacity_users is not None and ctx.capacity_rate is not None:
            ax.plot(
                [ctx.capacity_users],
                [ctx.capacity_rate],
                "*",
                color=HELD_COLOR,
                ms=15,
                mec="black",
                label=f"capacity {fmt_rps(ctx.capacity_rate)}",
            )
        if ctx.knee_users is not None:
            ax.axvline(ctx.knee_users, color=KNEE_COLOR, ls="--", lw=1.1, label="knee")
        if ctx.plateau_rate is not None:
            ax.axhline(ctx.plateau_rate, color=KNEE_COLOR, ls=":", lw=1.0, label="plateau")
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
        ax.set_xlabel("users")
        ax.set_ylabel(ctx.unit)
        ax.set_title(title)
        # The expected peak is every request (requests/s): with checkouts as the basis it
        # gets the right-hand axis, beside the requests/s that were served.
        other = ax
        if ctx.unit == "checkouts/s":
            other = ax.twinx()
            other.grid(False)
            other.plot(
                users,
                [s.throughput_rps for s in ctx.steps],
                color=REQUESTS_COLOR,
                lw=1.0,
                marker=".",
                label="requests/s (right axis)",
            )
            other.set_ylabel("requests/s")
        if ctx.expected_peak is not None:
            other.axhline(
                ctx.expected_peak,
                color=BUDGET_COLOR,
                ls="--",
                lw=1.1,
                label=f"expected peak {fmt_rps(ctx.expected_peak)} requests/s",
            )
        other.set_ylim(bottom=0)
        handles, labels = ax.get_legend_handles_labels()
        if other is not ax:
            h2, l2 = other.get_legend_handles_labels()
            handles, labels = handles + h2, labels + l2
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.08, 1.0))
        return CapacityChart(cid, title, inline_svg(fig, cid, title))


def _latency_chart(ctx: CapacityContext) -> CapacityChart:
    cid, title = "chart-capacity-latency", "p95 latency against users, with the p95 budgets"
    if not ctx.steps or not ctx.latency:
        return CapacityChart(cid, title, None, "No data: no step recorded a latency.")
    users = [s.users for s in ctx.steps]
    cmap = matplotlib.colormaps["tab10"]
    with matplotlib.rc_context(RC_PARAMS):
        fig = _figure()
        ax = fig.add_subplot()
        top = 0.0
        for i, series in enumerate(ctx.latency):
            color = matplotlib.colors.to_hex(cmap(i % cmap.N))
            values = [math.nan if v is None else v for v in series.p95_ms]
            top = max([top, *[v for v in values if not math.isnan(v)]])
            ax.plot(users, values, color=color, lw=1.4, marker="o", ms=3, label=series.label)
            if series.budget_ms is not None:
                ax.axhline(
                    series.budget_ms,
                    color=color,
                    ls="--",
                    lw=1.0,
                    label=f"budget {series.budget_text} ({series.label})",
                )
        if ctx.capacity_users is not None:
            ax.axvline(ctx.capacity_users, color=HELD_COLOR, ls=":", lw=1.1, label="capacity")
        if ctx.first_broken_users is not None:
            ax.axvline(
                ctx.first_broken_users, color=BUDGET_COLOR, ls=":", lw=1.1, label="first break"
            )
        ax.set_xlim(left=0)
        # A budget far above the data would flatten the curves: show it only when near.
        near = [s.budget_ms for s in ctx.latency if s.budget_ms and s.budget_ms <= 3 * top]
        ax.set_ylim(0, max([top * 1.15, *[b * 1.08 for b in near], 0.001]))
        ax.set_xlabel("users")
        ax.set_ylabel("p95 (ms)")
        ax.set_title(title)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
        return CapacityChart(cid, title, inline_svg(fig, cid, title))


# --------------------------------------------------------------------------- rendering


def render_capacity_html(ctx: CapacityContext, charts: Sequence[CapacityChart]) -> str:
    """The self-contained capacity page (inline CSS and SVG; nothing is fetched)."""
    return environment().get_template("capacity.html.j2").render(ctx=ctx, charts=list(charts))


def render_capacity_markdown(ctx: CapacityContext) -> str:
    """capacity.md: the sentence, the answer, the step table (for a review or a PR)."""
    return environment().get_template("capacity.md.j2").render(ctx=ctx)


def write_capacity_reports(
    run_dir: Path,
    analysis: CapacityAnalysis,
    *,
    budgets: Budgets | None,
    facts: Sequence[tuple[str, str]] = (),
    title: str = "paybench capacity",
) -> tuple[Path, Path]:
    """Write capacity.html and capacity.md into the run folder; returns their paths."""
    ctx = build_capacity_context(analysis, budgets=budgets, facts=facts, title=title)
    html = write_atomic(run_dir / CAPACITY_HTML, render_capacity_html(ctx, capacity_charts(ctx)))
    md = write_atomic(run_dir / CAPACITY_MD, render_capacity_markdown(ctx))
    return html, md
