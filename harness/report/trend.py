"""The trend report (``paybench trend``): trend.html and trend.md over the stored runs.

``build_trend_context`` is pure (stored rows in, a TrendContext out: series, change points,
latest vs baseline, budget use); ``write_trend_report`` draws the charts (matplotlib
Figures drawn by the SVG canvas, no pyplot) and renders the two templates. The command
behind it, which reads the history, is ``harness.commands.trend``.

Latest vs baseline: the baseline is the median of the runs the judge would compare the
latest with (``harness.core.levels.select_baseline``: the last ``baseline_runs`` runs before
it that broke no regression budget, since the level accepted or pinned last). The change
is significant when the latest run lies outside the 95 % prediction interval of those runs
(Hahn and Meeker, "Statistical Intervals" (1991), 4.6): the test the judge uses for
regression budgets, ``harness.core.stats.above_baseline``, read on both sides here, so a
fall in rps counts too; the history keeps no run's own interval, so the judge's widening
by it is left out. The p-value shown is the two-sided one of t = (latest - mean) / (sd *
sqrt(1 + 1/n)) with n - 1 degrees of freedom; it needs at least 3 baseline runs.
"rising"/"falling" is the Mann-Kendall test over the last ``TREND_RUNS`` runs
(``harness.core.trends.mann_kendall``). Change points come from
``harness.core.trends.detect_change_points`` over each whole series.

Accepted levels are the history's ``paybench baseline accept|pin`` decisions, drawn at the
first run of the level they accepted. A change point to a worse level counts as accepted
when a decision's level starts at it (or at the run before it, as a change point can land
one run late) or later; ``unaccepted_change`` is the one rule, which the nightly's summary
asks too.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from harness.core import levels, stats
from harness.core import metrics as registry
from harness.core.budgets import selector_matches
from harness.core.format import fmt_change
from harness.core.model import (
    AGGREGATE_KEY,
    BaselineDecision,
    Budget,
    Budgets,
    RegressionBudget,
    metric_unit,
)
from harness.core.trends import ChangePoint, detect_change_points, mann_kendall
from harness.errors import ConfigError
from harness.report.charts import inline_svg
from harness.report.render import environment
from harness.runfolder import write_atomic
from harness.store import RequestMetrics, RunRow, ServerMetric

TREND_METRICS = ("p50", "p95", "p99", "error_rate", "rps")
LATENCY_METRICS = ("p50", "p95", "p99")
TREND_RUNS = 10  # runs the rising/falling test looks at
HTML_FILE = "trend.html"
MD_FILE = "trend.md"

_COLORS = {
    "p50": "#2a9d8f",
    "p95": "#e9a23b",
    "p99": "#8e44ad",
    "error_rate": "#c0392b",
    "rps": "#1f77b4",
}
_WORSE_COLOR, _BETTER_COLOR, _BUDGET_COLOR = "#c0392b", "#2a9d8f", "#555555"


@dataclass(frozen=True)
class RunPoint:
    """A run on the x axis: its position (1-based) and what identifies it."""

    number: int
    run_id: str
    started_at: str | None
    git_commit: str | None
    outcome: str | None


@dataclass(frozen=True)
class ChangeMark:
    """A change point of one metric of one request name, mapped back to its run."""

    request_key: str
    metric: str
    index: int  # position in the runs (0-based): the first run of the new level
    run_id: str
    p_value: float
    mean_before: float
    mean_after: float
    change: float | None  # percent of mean_before; percentage points for error_rate
    change_unit: str
    worse: bool
    accepted_by: LevelMark | None = None  # the decision that accepted a worse level

    @property
    def run_number(self) -> int:
        return self.index + 1


@dataclass(frozen=True)
class LevelMark:
    """A level somebody accepted (``paybench baseline accept|pin``), mapped to its first run."""

    kind: str  # accept or pin
    index: int  # position in the runs (0-based) of the level's first run
    run_id: str  # the level's first run
    named_run_id: str  # the run the decision named
    decided_at: str
    reason: str | None

    @property
    def run_number(self) -> int:
        return self.index + 1

    @property
    def label(self) -> str:
        """``accepted 2025-11-27 09:12 UTC: fraud check adds 8 ms``, ``pinned 2025-...``."""
        when = self.decided_at[:16].replace("T", " ") + " UTC"
        verb = "accepted" if self.kind == "accept" else "pinned"
        return f"{verb} {when}" + (f": {self.reason}" if self.reason else "")


@dataclass(frozen=True)
class BudgetUse:
    """How much of one budget the latest run uses (``used_pct``: 100 = at the limit)."""

    text: str  # the budget as written, with its kind: "< 450ms", "+10% significant"
    limit: float | None  # for the chart's dashed line (absolute budgets only)
    used_pct: float | None
    regression: bool


@dataclass(frozen=True)
class MetricTrend:
    """One metric of one request name across the runs, and the latest run against its baseline."""

    request_key: str
    metric: str
    unit: str
    values: tuple[float | None, ...]
    change_points: tuple[ChangeMark, ...]
    latest: float | None
    baseline: float | None  # median of the baseline runs
    baseline_n: int
    change: float | None  # percent (percentage points for error_rate)
    change_unit: str
    p_value: float | None
    significant: bool | None
    direction: str  # rising, falling, steady
    budgets: tuple[BudgetUse, ...]

    @property
    def significant_worse(self) -> bool:
        """Significantly slower, more errors, or fewer requests/s than the baseline (a
        server metric: by its direction, a lower cache hit rate is worse)."""
        if not self.significant or self.change is None:
            return False
        return self.change > 0 if _higher_is_worse(self.metric) else self.change < 0

    @property
    def budget_line(self) -> float | None:
        limits = [b.limit for b in self.budgets if b.limit is not None]
        return limits[0] if limits else None

    @property
    def summary(self) -> str:
        """``p95 at 87 % of its budget, rising``: the tightest budget, and the direction."""
        used = [b for b in self.budgets if b.used_pct is not None]
        if not used:
            return f"{self.metric} {self.direction}"
        tight = max(used, key=lambda b: b.used_pct or 0.0)
        kind = "regression budget" if tight.regression else "budget"
        return f"{self.metric} at {tight.used_pct:.0f} % of its {kind}, {self.direction}"


@dataclass(frozen=True)
class RequestTrend:
    request_key: str
    anchor: str
    metrics: tuple[MetricTrend, ...]

    def metric(self, name: str) -> MetricTrend | None:
        return next((m for m in self.metrics if m.metric == name), None)


@dataclass(frozen=True)
class TrendContext:
    title: str
    profile: str | None
    runs: tuple[RunPoint, ...]
    requests: tuple[RequestTrend, ...]
    change_points: tuple[ChangeMark, ...]
    baseline_runs: int
    p_value: float
    min_magnitude: float
    left_out: tuple[str, ...] = ()
    settings: str = ""  # what the runs share: users, scenario version, target
    levels: tuple[LevelMark, ...] = ()  # accepted and pinned levels, oldest first

    @property
    def unaccepted(self) -> tuple[ChangeMark, ...]:
        """Change points to a worse level that nobody has accepted."""
        return tuple(m for m in self.change_points if m.worse and m.accepted_by is None)

    @property
    def anchors(self) -> dict[str, str]:
        return {rt.request_key: rt.anchor for rt in self.requests}

    @property
    def first(self) -> RunPoint:
        return self.runs[0]

    @property
    def latest(self) -> RunPoint:
        return self.runs[-1]


# ---------------------------------------------------------------------------------------
# Context (pure)
# ---------------------------------------------------------------------------------------


def _key_order(keys: set[str]) -> list[str]:
    from harness.core.catalogue import REQUEST_KEYS

    known = [k for k in REQUEST_KEYS if k in keys]
    rest = sorted(k for k in keys if k not in REQUEST_KEYS and k != AGGREGATE_KEY)
    return ([AGGREGATE_KEY] if AGGREGATE_KEY in keys else []) + known + rest


def _anchor(key: str, used: set[str]) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", key.lower()).strip("-") or "request"
    anchor, i = base, 2
    while anchor in used:
        anchor, i = f"{base}-{i}", i + 1
    used.add(anchor)
    return anchor


def _same_metric(budget_metric: str, metric: str) -> bool:
    return registry.same_quantity(budget_metric, metric)


def _absolute_use(b: Budget, latest: float | None) -> BudgetUse:
    used = None
    if latest is not None:
        if b.op in ("<", "<="):
            used = 100.0 * latest / b.limit if b.limit > 0 else None
        elif latest > 0:
            # A floor (rps > 5): the share of the floor's room the run uses up.
            used = 100.0 * b.limit / latest
    return BudgetUse(text=b.text, limit=b.limit, used_pct=used, regression=False)


def _regression_use(rb: RegressionBudget, latest: float | None, base: float | None) -> BudgetUse:
    used = None
    if latest is not None and base is not None and rb.max_increase > 0:
        # As harness.core.evaluate judges it: percent of the baseline, or absolute units/points.
        if rb.relative:
            rise = 100.0 * (latest / base - 1.0) if base > 0 else None
        else:
            rise = latest - base
        used = None if rise is None else 100.0 * rise / rb.max_increase
    return BudgetUse(text=rb.text, limit=None, used_pct=used, regression=True)


def _budget_uses(
    budgets: Budgets | None, key: str, metric: str, latest: float | None, base: float | None
) -> tuple[BudgetUse, ...]:
    if budgets is None:
        return ()
    out = []
    for b in budgets.budgets:
        if _same_metric(b.metric, metric) and _covers(b.selector, key):
            out.append(_absolute_use(b, latest))
    for rb in budgets.regressions:
        if _same_metric(rb.metric, metric) and _covers(rb.selector, key):
            out.append(_regression_use(rb, latest, base))
    # The tightest absolute budget first: its limit is the chart's dashed line.
    out.sort(key=lambda u: (u.regression, -(u.used_pct or 0.0)))
    return tuple(out)


def _covers(selector: str, key: str) -> bool:
    if key == AGGREGATE_KEY or selector == AGGREGATE_KEY:
        return selector == key
    return selector_matches(selector, key)


def _baseline_positions(
    runs: Sequence[RunRow], decisions: Sequence[BaselineDecision], n: int
) -> tuple[int, ...]:
    """Which of the runs before the latest are its baseline, as the judge picks them.

    ``harness.core.levels.select_baseline``: no regression runs, since the level in force.
    A run's regressions are one flag here: which budget it broke does not change the pick.
    """
    said = frozenset({("", "")})
    level_runs = [
        levels.LevelRun(
            r.run_id,
            r.seq,
            said if r.regression else frozenset(),
            said if r.rose else frozenset(),
        )
        for r in runs
    ]
    chosen = levels.select_baseline(level_runs[:-1], decisions, n).run_ids
    position = {r.run_id: i for i, r in enumerate(runs)}
    return tuple(position[run_id] for run_id in chosen)


def _latest_vs_baseline(
    values: Sequence[float | None], positions: Sequence[int], metric: str
) -> tuple[float | None, float | None, int, float | None, float | None, bool | None]:
    """(latest, baseline median, baseline runs, change, p-value, significant)."""
    latest = values[-1] if values else None
    prior = [v for i in positions if (v := values[i]) is not None]
    if latest is None or not prior:
        return latest, None, len(prior), None, None, None
    base = statistics.median(prior)
    change: float | None
    if metric == "error_rate":
        change = latest - base
    else:
        change = 100.0 * (latest / base - 1.0) if base else None
    # The history keeps no interval of a run's own samples: with fewer baseline runs than
    # stats.MIN_PREDICTION_RUNS the significance is unknown.
    sig = stats.above_baseline(prior, latest)
    return latest, base, len(prior), change, sig.p_value, sig.outside


def level_marks(
    run_ids: Sequence[str], decisions: Sequence[BaselineDecision]
) -> tuple[LevelMark, ...]:
    """The decisions whose level starts at one of ``run_ids``, by position, oldest first."""
    position = {run_id: i for i, run_id in enumerate(run_ids)}
    marks = [
        LevelMark(d.kind, position[d.from_run_id], d.from_run_id, d.run_id, d.decided_at, d.reason)
        for d in decisions
        if d.from_run_id in position
    ]
    return tuple(sorted(marks, key=lambda m: m.index))


def _accepting(index: int, levels: Sequence[LevelMark]) -> LevelMark | None:
    """The first level accepted at the change's run (or the one before it) or later."""
    return next((level for level in levels if level.index >= index - 1), None)


def _marks(
    key: str,
    metric: str,
    values: Sequence[float | None],
    runs: Sequence[RunPoint],
    p_value: float,
    min_magnitude: float,
    levels: Sequence[LevelMark] = (),
) -> tuple[ChangeMark, ...]:
    present = [i for i, v in enumerate(values) if v is not None]
    series = [float(v) for v in values if v is not None]
    out = []
    for cp in detect_change_points(series, p_value=p_value, min_magnitude=min_magnitude):
        index = present[cp.index]
        mark = _mark(key, metric, index, runs[index].run_id, cp)
        if mark.worse:
            mark = replace(mark, accepted_by=_accepting(index, levels))
        out.append(mark)
    return tuple(out)


def unaccepted_change(
    key: str,
    metric: str,
    values: Sequence[float | None],
    run_ids: Sequence[str],
    decisions: Sequence[BaselineDecision] = (),
    p_value: float = 0.001,
    min_magnitude: float = 0.0,
) -> ChangeMark | None:
    """The series' latest change point, when it is to a worse level nobody accepted.

    ``values`` and ``run_ids`` are one metric of one request name over runs, oldest first
    (None: not measured). A later change point back to a better level ends the matter.
    """
    points = [RunPoint(i + 1, run_id, None, None, None) for i, run_id in enumerate(run_ids)]
    levels = level_marks(run_ids, decisions)
    marks = _marks(key, metric, values, points, p_value, min_magnitude, levels)
    if not marks or not marks[-1].worse or marks[-1].accepted_by is not None:
        return None
    return marks[-1]


def _mark(key: str, metric: str, index: int, run_id: str, cp: ChangePoint) -> ChangeMark:
    up = cp.mean_after > cp.mean_before
    change: float | None
    if metric == "error_rate":
        change, unit = cp.mean_after - cp.mean_before, "pts"
    else:
        change, unit = cp.change_pct, "%"
    return ChangeMark(
        request_key=key,
        metric=metric,
        index=index,
        run_id=run_id,
        p_value=cp.p_value,
        mean_before=cp.mean_before,
        mean_after=cp.mean_after,
        change=change,
        change_unit=unit,
        worse=up if _higher_is_worse(metric) else not up,
    )


def _higher_is_worse(metric: str) -> bool:
    found = registry.lookup(metric)
    return True if found is None else found.higher_is_worse


def _server_budget_uses(
    budgets: Budgets | None, source: str, metric: str, latest: float | None
) -> tuple[BudgetUse, ...]:
    """The server budgets on ``metric`` of ``source`` (budgets.yaml's server:)."""
    if budgets is None or budgets.server is None:
        return ()
    out = [
        _absolute_use(b, latest)
        for b in budgets.server.budgets
        if b.selector == source and b.metric == metric
    ]
    out.sort(key=lambda u: -(u.used_pct or 0.0))
    return tuple(out)


def build_trend_context(
    runs: Sequence[RunRow],
    metrics: Sequence[RequestMetrics],
    budgets: Budgets | None = None,
    *,
    baseline_runs: int = 5,
    p_value: float = 0.001,
    min_magnitude: float = 0.0,
    left_out: Sequence[str] = (),
    title: str | None = None,
    decisions: Sequence[BaselineDecision] = (),
    server: Sequence[ServerMetric] = (),
) -> TrendContext:
    """The trend report's content from stored runs (oldest first) and their metrics.

    ``decisions``: the history's accepts and pins; those whose level starts at one of the
    runs are shown, and accept the worse change points at or before them. ``server``: the
    runs' server metrics (store.server_metrics), one trend per source (``redis (server)``)
    after the requests, judged as the request metrics are (change points, the latest run
    against its baseline).
    """
    if not runs:
        raise ConfigError("no runs to show a trend of; `paybench history list` shows the history")
    points = tuple(
        RunPoint(i + 1, r.run_id, r.started_at, r.git_commit, r.outcome) for i, r in enumerate(runs)
    )
    position = {r.run_id: i for i, r in enumerate(runs)}
    accepted = level_marks([r.run_id for r in runs], decisions)
    baseline_at = _baseline_positions(runs, decisions, baseline_runs)
    table: dict[str, list[RequestMetrics | None]] = {}
    for m in metrics:
        if m.run_id in position:
            table.setdefault(m.request_key, [None] * len(runs))[position[m.run_id]] = m
    requests = []
    all_marks: list[ChangeMark] = []
    anchors: set[str] = set()
    for key in _key_order(set(table)):
        rows = table[key]
        trends = []
        for metric in TREND_METRICS:
            values = tuple(None if r is None else r.value(metric) for r in rows)
            if all(v is None for v in values):
                continue
            marks = _marks(key, metric, values, points, p_value, min_magnitude, accepted)
            all_marks.extend(marks)
            latest, base, n, change, p, significant = _latest_vs_baseline(
                values, baseline_at, metric
            )
            recent = [v for v in values if v is not None][-TREND_RUNS:]
            trends.append(
                MetricTrend(
                    request_key=key,
                    metric=metric,
                    unit=metric_unit(metric),
                    values=values,
                    change_points=marks,
                    latest=latest,
                    baseline=base,
                    baseline_n=n,
                    change=change,
                    change_unit="pts" if metric == "error_rate" else "%",
                    p_value=p,
                    significant=significant,
                    direction=mann_kendall(recent).direction,
                    budgets=_budget_uses(budgets, key, metric, latest, base),
                )
            )
        requests.append(RequestTrend(key, _anchor(key, anchors), tuple(trends)))
    server_table: dict[tuple[str, str], list[float | None]] = {}
    server_units: dict[tuple[str, str], str] = {}
    for sm in server:
        if sm.run_id in position:
            column = server_table.setdefault((sm.source, sm.metric), [None] * len(runs))
            column[position[sm.run_id]] = sm.value
            server_units[sm.source, sm.metric] = sm.unit
    by_source: dict[str, list[MetricTrend]] = {}
    for (source, metric), column in server_table.items():
        key = f"{source} (server)"
        values = tuple(column)
        marks = _marks(key, metric, values, points, p_value, min_magnitude, accepted)
        all_marks.extend(marks)
        latest, base, n, change, p, significant = _latest_vs_baseline(values, baseline_at, metric)
        recent = [v for v in values if v is not None][-TREND_RUNS:]
        by_source.setdefault(source, []).append(
            MetricTrend(
                request_key=key,
                metric=metric,
                unit=server_units[source, metric],
                values=values,
                change_points=marks,
                latest=latest,
                baseline=base,
                baseline_n=n,
                change=change,
                change_unit="%",
                p_value=p,
                significant=significant,
                direction=mann_kendall(recent).direction,
                budgets=_server_budget_uses(budgets, source, metric, latest),
            )
        )
    for source, trends in by_source.items():
        key = f"{source} (server)"
        requests.append(RequestTrend(key, _anchor(key, anchors), tuple(trends)))
    last = runs[-1]
    settings = (
        f"{last.users if last.users is not None else '?'} users, scenario version "
        f"{last.scenario_version or '?'}, {last.target} target"
    )
    return TrendContext(
        title=title or f"paybench trend: {last.profile or 'runs'}",
        profile=last.profile,
        runs=points,
        requests=tuple(requests),
        change_points=tuple(sorted(all_marks, key=lambda m: (m.index, m.request_key, m.metric))),
        baseline_runs=baseline_runs,
        p_value=p_value,
        min_magnitude=min_magnitude,
        left_out=tuple(left_out),
        settings=settings,
        levels=accepted,
    )


# ---------------------------------------------------------------------------------------
# Charts
# ---------------------------------------------------------------------------------------


def _label(key: str) -> str:
    return "all requests" if key == AGGREGATE_KEY else key


def _nan(values: Sequence[float | None]) -> list[float]:
    return [math.nan if v is None else v for v in values]


def _plot_marks(ax: Axes, trend: MetricTrend, color: str) -> None:
    for mark in trend.change_points:
        x = mark.run_number
        ax.axvline(
            x - 0.5,
            color=_WORSE_COLOR if mark.worse else _BETTER_COLOR,
            ls=":",
            lw=1.2,
            gid=f"change-point-{trend.metric}-{mark.run_number}",
        )
        y = trend.values[mark.index]
        if y is not None:
            ax.plot(
                [x],
                [y],
                marker="v" if not mark.worse else "^",
                ms=8,
                color=color,
                markeredgecolor="black",
                lw=0,
            )


def _chart(rt: RequestTrend, n_runs: int, levels: Sequence[LevelMark] = ()) -> str:
    panels = [
        [m for m in rt.metrics if m.metric in LATENCY_METRICS],
        [m for m in rt.metrics if m.metric == "error_rate"],
        [m for m in rt.metrics if m.metric == "rps"],
    ]
    panels = [p for p in panels if p]
    height_in = 1.2 + 2.1 * len(panels)
    fig = Figure(figsize=(10.0, height_in))
    # Fixed margins: constrained layout measured every tick label again and cost most of the
    # render time of a 1,000-run report. The right margin holds the legends.
    fig.subplots_adjust(
        left=0.075, right=0.86, top=1 - 0.4 / height_in, bottom=0.55 / height_in, hspace=0.12
    )
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    x = list(range(1, n_runs + 1))
    marker = "o" if n_runs <= 40 else None
    labels = {"ms": "latency (ms)", "%": "error rate (%)", "req/s": "requests/s"}
    for ax, panel in zip(axes, panels, strict=True):
        for trend in panel:
            color = _COLORS[trend.metric]
            label = registry.metric(trend.metric).label
            ax.plot(
                x,
                _nan(trend.values),
                color=color,
                lw=1.3,
                marker=marker,
                ms=3.5,
                label=label,
            )
            if trend.budget_line is not None:
                ax.axhline(
                    trend.budget_line, color=color, ls="--", lw=1.0, label=f"{label} budget"
                )
            _plot_marks(ax, trend, color)
        for level in levels:
            ax.axvline(
                level.run_number - 0.5,
                color=_BUDGET_COLOR,
                ls="-",
                lw=1.4,
                alpha=0.7,
                gid=f"accepted-level-{level.run_number}",
            )
        ax.set_ylabel(labels[panel[0].unit], fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.set_ylim(bottom=0)
        ax.tick_params(labelsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        # Beside the plot, never over the latest runs.
        ax.legend(fontsize=7.5, loc="upper left", bbox_to_anchor=(1.005, 1.0), framealpha=0.85)
    axes[-1].set_xlabel("run (oldest to latest; numbers as in the run table)", fontsize=9)
    axes[-1].set_xlim(0.5, n_runs + 0.5)
    axes[0].set_title(
        _label(rt.request_key),
        fontsize=10,
        fontweight="bold",
        parse_math=False,
    )
    return inline_svg(fig, rt.anchor)


def _server_chart(rt: RequestTrend, n_runs: int, levels: Sequence[LevelMark] = ()) -> str:
    """A server source's metrics across the runs: a panel per metric, its budget dashed."""
    height_in = 1.2 + 2.1 * len(rt.metrics)
    fig = Figure(figsize=(10.0, height_in))
    fig.subplots_adjust(
        left=0.075, right=0.86, top=1 - 0.4 / height_in, bottom=0.55 / height_in, hspace=0.12
    )
    axes = fig.subplots(len(rt.metrics), 1, sharex=True, squeeze=False)[:, 0]
    x = list(range(1, n_runs + 1))
    marker = "o" if n_runs <= 40 else None
    color = _COLORS["p95"]
    for ax, trend in zip(axes, rt.metrics, strict=True):
        values = _nan(trend.values)
        ax.plot(x, values, color=color, lw=1.3, marker=marker, ms=3.5, label=trend.metric)
        if trend.budget_line is not None:
            ax.axhline(trend.budget_line, color=color, ls="--", lw=1.0, label="budget")
        _plot_marks(ax, trend, color)
        for level in levels:
            ax.axvline(level.run_number - 0.5, color=_BUDGET_COLOR, lw=1.4, alpha=0.7)
        ax.set_ylabel(f"{trend.metric} ({trend.unit})" if trend.unit else trend.metric, fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.set_ylim(bottom=0)
        ax.tick_params(labelsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=7.5, loc="upper left", bbox_to_anchor=(1.005, 1.0), framealpha=0.85)
    axes[-1].set_xlabel("run (oldest to latest; numbers as in the run table)", fontsize=9)
    axes[-1].set_xlim(0.5, n_runs + 0.5)
    axes[0].set_title(rt.request_key, fontsize=10, fontweight="bold", parse_math=False)
    return inline_svg(fig, rt.anchor)


def _alt(rt: RequestTrend) -> str:
    marks = [m for t in rt.metrics for m in t.change_points]
    text = f"Trend of {_label(rt.request_key)}"
    if marks:
        text += "; change points: " + "; ".join(
            f"{m.metric} {fmt_change(m.change, m.change_unit)} at run {m.run_number}" for m in marks
        )
    return text


# ---------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------


def write_trend_report(
    out_dir: Path,
    runs: Sequence[RunRow],
    metrics: Sequence[RequestMetrics],
    budgets: Budgets | None = None,
    **options: Any,
) -> tuple[Path, Path]:
    """Write ``trend.html`` and ``trend.md`` into ``out_dir``; returns their paths.

    ``options`` go to `build_trend_context` (baseline_runs, p_value, min_magnitude,
    left_out, title).
    """
    ctx = build_trend_context(runs, metrics, budgets, **options)
    return render_trend_report(out_dir, ctx)


def render_trend_report(out_dir: Path, ctx: TrendContext) -> tuple[Path, Path]:
    charts = {
        rt.anchor: (
            (_server_chart if rt.request_key.endswith(" (server)") else _chart)(
                rt, len(ctx.runs), ctx.levels
            ),
            _alt(rt),
        )
        for rt in ctx.requests
    }
    env = environment()
    html = env.get_template("trend.html.j2").render(ctx=ctx, charts=charts)
    md = env.get_template("trend.md.j2").render(ctx=ctx)
    paths = [
        write_atomic(out_dir / name, text, option="--out")
        for name, text in ((HTML_FILE, html), (MD_FILE, md))
    ]
    return paths[0], paths[1]
