"""RunResult x Verdict (x Budgets) -> ReportContext: everything the reports show (pure).

The templates and charts only lay out what is here; every number, every choice of what to
show and every cap on rows is made in this module, so it is tested with literal data.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import numpy as np

from harness.core import metrics as registry
from harness.core.evaluate import headline
from harness.core.format import (
    DASH,
    fmt_interval,
    fmt_limit,
    fmt_margin,
    fmt_number,
    fmt_seconds,
    fmt_value,
)
from harness.core.model import (
    AGGREGATE_KEY,
    Budget,
    BudgetResult,
    Budgets,
    IntervalPoint,
    RequestStats,
    RunResult,
    Verdict,
    metric_unit,
)
from harness.core.stats import NS_PER_MS, Histogram, bucket_layout, merge_histograms
from harness.core.stats.histogram import PercentileTable, TablePercentiles

FLOW_TYPE = "FLOW"  # request type of the end-to-end flows the scenarios time (catalogue)
TABLE_PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)
MAX_TIMELINE_POINTS = 400  # more intervals than this are merged: keeps the SVG small
MAX_FAILURE_ROWS = 50
CURVE_POINTS_PER_DECADE = 12
CURVE_MAX_X = 1e6  # 1/(1-q) of 99.9999 %
FLOW_BINS = 40

RowStatus = Literal[
    "PASS", "FAIL", "MARGINAL", "NO SAMPLES", "NO DATA", "SKIPPED", "INCONCLUSIVE"
]


@dataclass(frozen=True)
class Fact:
    label: str
    value: str


@dataclass(frozen=True)
class BudgetRow:
    """One judged budget, as the tables, the headline and the JUnit test cases show it."""

    request_key: str
    metric: str
    kind: Literal["limit", "regression"]
    condition: str  # "p95 < 300 ms", or for a regression "p95 vs baseline +10% significant"
    unit: str  # of measured, limit and the confidence interval
    measured: float | None
    limit: float
    limit_text: str  # "< 300 ms"
    margin_pct: float | None
    ci_low: float | None
    ci_high: float | None
    status: RowStatus
    marginal: bool
    broken: bool
    key_path: str
    baseline: str | None = None
    message: str = ""

    @property
    def name(self) -> str:
        """``GET /api/plans p95 < 300 ms``: a JUnit test case's name, a list item."""
        return f"{self.request_key} {self.condition}"

    @property
    def status_label(self) -> str:
        return f"{self.status} (marginal)" if self.broken and self.marginal else self.status

    @property
    def measured_text(self) -> str:
        return fmt_value(self.measured, self.unit)

    @property
    def margin_text(self) -> str:
        return fmt_margin(self.margin_pct)

    @property
    def ci_text(self) -> str:
        return fmt_interval(self.ci_low, self.ci_high, self.unit)


@dataclass(frozen=True)
class RequestRow:
    key: str
    count: int
    failures: int
    cut_off: int
    rps: float
    error_rate_pct: float | None
    avg_ms: float | None
    p50_ms: float | None
    p90_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    p999_ms: float | None
    max_ms: float | None
    is_flow: bool = False
    is_total: bool = False


@dataclass(frozen=True)
class FailureRow:
    request_key: str
    message: str
    count: int
    first_seen_s: float | None
    last_seen_s: float | None


@dataclass(frozen=True)
class SeriesLine:
    label: str  # "p95"
    values_ms: tuple[float | None, ...]  # one per timeline point


@dataclass(frozen=True)
class LatencySeries:
    request_key: str
    lines: tuple[SeriesLine, ...]


@dataclass(frozen=True)
class Timeline:
    """The run over time; ``mid_s`` is each point's middle in seconds since the start."""

    mid_s: tuple[float, ...]
    users: tuple[int, ...]
    rps: tuple[float, ...]
    error_rate_pct: tuple[float | None, ...]  # None where no request ended
    latency: tuple[LatencySeries, ...]
    intervals_per_point: int = 1  # > 1 when long runs were merged to MAX_TIMELINE_POINTS


@dataclass(frozen=True)
class PercentileCurve:
    """An HDR percentile distribution: ``values_ms[i]`` at ``percentiles[i]``."""

    request_key: str
    count: int
    percentiles: tuple[float, ...]
    values_ms: tuple[float, ...]

    @property
    def x(self) -> tuple[float, ...]:
        """The plot position 1/(1-q) of each percentile (Gil Tene's HdrHistogram plotter)."""
        return tuple(1.0 / (1.0 - p / 100.0) for p in self.percentiles)


@dataclass(frozen=True)
class DistributionBins:
    """Counts of ``request_key`` durations between ``edges_ms[i]`` and ``edges_ms[i+1]``."""

    request_key: str
    edges_ms: tuple[float, ...]
    counts: tuple[int, ...]
    log_x: bool
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


@dataclass(frozen=True)
class BudgetLine:
    """A limit to draw as a dashed line on the charts that show its metric."""

    request_key: str
    metric: str
    limit: float
    unit: str
    label: str  # "p95 < 300 ms"
    percentile: float | None  # for pNN / median / avg-less metrics: where on the HDR plot


@dataclass(frozen=True)
class WorkerRow:
    """One remote worker of a `run --master` (the master's paybench.distributed.json)."""

    name: str
    status: str  # accepted, refused, handshaking
    requests: int
    cut_off: int
    cpu_mean_pct: float | None
    cpu_max_pct: float | None
    clock_offset_ms: float | None
    joined: str  # UTC clock time, "13:02:41Z"
    left: str  # its final data's arrival, or why it has none


@dataclass(frozen=True)
class ReportContext:
    title: str
    run_id: str
    profile: str | None
    outcome: str  # PASS / FAIL / UNRELIABLE / INCOMPLETE
    headline: str  # "2 of 14 budgets broken"
    reasons: tuple[str, ...]  # why UNRELIABLE / INCOMPLETE, and other doubts
    broken: tuple[BudgetRow, ...]
    marginal: tuple[BudgetRow, ...]  # passed, but the confidence interval straddles the limit
    facts: tuple[Fact, ...]
    budgets: tuple[BudgetRow, ...]
    requests: tuple[RequestRow, ...]  # steady state
    total: RequestRow
    ramp: tuple[RequestRow, ...]
    ramp_total: RequestRow | None
    locust_requests: tuple[RequestRow, ...]
    failures: tuple[FailureRow, ...]
    failures_omitted: int
    steady_start_s: float
    steady_end_s: float
    timeline: Timeline
    latency_curves: tuple[PercentileCurve, ...]  # request names, flows apart
    flow_curves: tuple[PercentileCurve, ...]
    flow_bins: tuple[DistributionBins, ...]
    budget_lines: tuple[BudgetLine, ...]
    expected_peak_rps: float | None
    exact: bool
    notes: tuple[str, ...]
    paybench_version: str
    history_notes: tuple[str, ...] = ()  # Verdict.notes: what the history says, e.g. a new level
    workers: tuple[WorkerRow, ...] = ()  # remote workers, for a `run --master`

    @property
    def steady_text(self) -> str:
        span = self.steady_end_s - self.steady_start_s
        return (
            f"{fmt_seconds(self.steady_start_s)} to {fmt_seconds(self.steady_end_s)} "
            f"({fmt_seconds(span)})"
        )


def build_report_context(
    result: RunResult, verdict: Verdict, budgets: Budgets | None = None
) -> ReportContext:
    """Everything the three reports show, from the judged run (pure)."""
    rows = tuple(_budget_row(r) for r in verdict.results)
    broken = tuple(r for r in rows if r.broken)
    marginal = tuple(r for r in rows if r.marginal and not r.broken)
    failures = sorted(result.failures, key=lambda f: (-f.count, f.request_key, f.message))
    meta = result.meta
    notes: list[str] = []
    if not result.exact:
        notes.append(
            "Only Locust's own figures were available: its percentiles are nearest-rank on "
            "response times rounded to about two significant digits."
        )
    timeline = _timeline(result.timeline, [r.key for r in result.requests])
    if timeline.intervals_per_point > 1:
        notes.append(
            f"Charts over time merge every {timeline.intervals_per_point} intervals into one "
            "point; a latency point is the highest value of the intervals it merges."
        )
    return ReportContext(
        title=f"paybench run {meta.run_id}",
        run_id=meta.run_id,
        profile=meta.profile,
        outcome=verdict.outcome,
        # The same words as the CLI's first line: one function counts for both.
        headline=headline(verdict),
        reasons=_unique(
            [
                *verdict.reasons,
                *([result.incomplete_reason] if result.incomplete_reason else []),
                *result.unreliable_reasons,
            ]
        ),
        broken=broken,
        marginal=marginal,
        facts=_facts(result, budgets),
        budgets=rows,
        requests=tuple(_request_row(s) for s in result.requests),
        total=_request_row(result.total, is_total=True),
        # Names that sent nothing before the steady state would only fill the ramp table.
        ramp=tuple(_request_row(s) for s in result.ramp if s.count),
        ramp_total=_sum_rows(result.ramp) if len(result.ramp) > 1 else None,
        locust_requests=tuple(_request_row(s) for s in result.locust_requests),
        failures=tuple(
            FailureRow(f.request_key, f.message, f.count, f.first_seen_s, f.last_seen_s)
            for f in failures[:MAX_FAILURE_ROWS]
        ),
        failures_omitted=max(0, len(failures) - MAX_FAILURE_ROWS),
        steady_start_s=result.steady_start_s,
        steady_end_s=result.steady_end_s,
        timeline=timeline,
        latency_curves=tuple(
            c for s in result.requests if not _is_flow(s) and (c := percentile_curve(s)) is not None
        ),
        flow_curves=tuple(
            c for s in result.requests if _is_flow(s) and (c := percentile_curve(s)) is not None
        ),
        flow_bins=tuple(
            b for s in result.requests if _is_flow(s) and (b := distribution_bins(s)) is not None
        ),
        budget_lines=tuple(line for r in verdict.results if (line := _budget_line(r)) is not None),
        expected_peak_rps=budgets.expected_peak_rps if budgets else None,
        exact=result.exact,
        notes=tuple(notes),
        paybench_version=meta.paybench_version,
        history_notes=verdict.notes,
        workers=worker_rows(meta.extra.get("distributed")),
    )


def worker_rows(facts: object) -> tuple[WorkerRow, ...]:
    """The per-worker table from run.json's ``extra.distributed`` (its format_version 1)."""
    if not isinstance(facts, Mapping):
        return ()

    def number(value: object) -> float | None:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return float(value) if ok and math.isfinite(value) else None  # type: ignore[arg-type]

    def clock(value: object) -> str | None:
        epoch = number(value)
        if epoch is None:
            return None
        return datetime.fromtimestamp(epoch, tz=UTC).strftime("%H:%M:%SZ")

    rows = []
    for w in facts.get("workers") or ():
        if not isinstance(w, Mapping):
            continue
        left = clock(w.get("final_epoch"))
        if left is None:
            heard = clock(w.get("last_heard_epoch"))
            left = f"no final data (last heard {heard})" if heard else "no final data"
        rows.append(
            WorkerRow(
                name=str(w.get("name") or w.get("client_id") or "?"),
                status=str(w.get("status") or "?"),
                requests=int(number(w.get("requests")) or 0),
                cut_off=int(number(w.get("cut_off")) or 0),
                cpu_mean_pct=number(w.get("cpu_mean_pct")),
                cpu_max_pct=number(w.get("cpu_max_pct")),
                clock_offset_ms=number(w.get("clock_offset_ms")),
                joined=clock(w.get("joined_epoch")) or "-",
                left=left,
            )
        )
    return tuple(rows)


# --- budgets -------------------------------------------------------------------------


def _budget_row(r: BudgetResult) -> BudgetRow:
    b = r.budget
    if isinstance(b, Budget):
        unit = b.unit
        limit_text = f"{b.op} {fmt_limit(b.limit, unit)}"
        condition = f"{b.metric} {limit_text}"
        kind: Literal["limit", "regression"] = "limit"
    else:
        # A regression budget's limit is the baseline plus the allowed increase, in the
        # metric's own unit; what was allowed is shown as the user wrote it.
        unit = metric_unit(b.metric)
        limit_text = f"<= {fmt_limit(r.limit, unit)}"
        condition = f"{b.metric} vs baseline {b.text}"
        kind = "regression"
    status: RowStatus
    if r.status == "fail":
        status = "FAIL"
    elif r.status == "no samples":
        status = "NO SAMPLES"
    elif r.status == "no data":
        status = "NO DATA"
    elif r.status == "skipped":
        status = "SKIPPED"
    elif r.status == "inconclusive":
        status = "INCONCLUSIVE"
    else:
        status = "MARGINAL" if r.marginal else "PASS"
    return BudgetRow(
        request_key=r.request_key,
        metric=b.metric,
        kind=kind,
        condition=condition,
        unit=unit,
        measured=r.measured,
        limit=r.limit,
        limit_text=limit_text,
        margin_pct=r.margin_pct,
        ci_low=r.ci_low,
        ci_high=r.ci_high,
        status=status,
        marginal=r.marginal,
        broken=not r.passed,
        key_path=b.key_path,
        baseline=r.baseline,
        message=r.message,
    )


def _budget_line(r: BudgetResult) -> BudgetLine | None:
    b = r.budget
    if not isinstance(b, Budget):
        return None  # a regression's limit moves with the baseline: not a fixed line
    percentile = None
    info = registry.lookup(b.metric)
    if info is not None and info.percentile is not None:
        percentile = info.percentile
    return BudgetLine(
        request_key=r.request_key,
        metric=b.metric,
        limit=b.limit,
        unit=b.unit,
        label=f"{b.metric} {b.op} {fmt_limit(b.limit, b.unit)}",
        percentile=percentile,
    )


# --- requests ------------------------------------------------------------------------


def _is_flow(s: RequestStats) -> bool:
    return s.request_type == FLOW_TYPE


def _nan_to_none(v: float) -> float | None:
    return None if math.isnan(v) else v


def _clamp_to_max(values: Sequence[float | None], max_ms: float | None) -> tuple:
    """HDR reports a bucket's highest equivalent value, which can pass the exact maximum by
    up to 0.1 %; a table that shows p99.9 above max would read as an error."""
    if max_ms is None:
        return tuple(values)
    return tuple(None if v is None else min(v, max_ms) for v in values)


def _request_row(s: RequestStats, is_total: bool = False) -> RequestRow:
    pcts = _clamp_to_max(percentiles_ms(s, TABLE_PERCENTILES), s.max_ms)
    return RequestRow(
        key=s.key,
        count=s.count,
        failures=s.failures,
        cut_off=s.cut_off,
        rps=s.rps,
        error_rate_pct=s.error_rate_pct,
        avg_ms=s.avg_ms if s.count else None,
        p50_ms=pcts[0],
        p90_ms=pcts[1],
        p95_ms=pcts[2],
        p99_ms=pcts[3],
        p999_ms=pcts[4],
        max_ms=s.max_ms if s.count else None,
        is_flow=_is_flow(s),
        is_total=is_total,
    )


def _sum_rows(stats: Sequence[RequestStats]) -> RequestRow:
    """The ramp's total row: every request name together, flows apart (as the aggregate).

    Percentiles need every part's histogram; without them they stay unknown.
    """
    parts = [s for s in stats if not _is_flow(s)]
    count = sum(s.count for s in parts)
    with_samples = [s for s in parts if s.count]
    histograms = [s.histogram for s in with_samples if s.histogram is not None]
    combined = RequestStats(
        request_type="",
        name=AGGREGATE_KEY,
        count=count,
        failures=sum(s.failures for s in parts),
        duration_s=max((s.duration_s for s in parts), default=0.0),
        avg_ms=sum((s.avg_ms or 0.0) * s.count for s in parts) / count if count else None,
        min_ms=min((s.min_ms for s in parts if s.min_ms is not None), default=None),
        max_ms=max((s.max_ms for s in parts if s.max_ms is not None), default=None),
        cut_off=sum(s.cut_off for s in parts),
        histogram=(
            merge_histograms(histograms)
            if histograms and len(histograms) == len(with_samples)
            else None
        ),
    )
    return _request_row(combined, is_total=True)


def percentiles_ms(s: RequestStats, percents: Sequence[float]) -> tuple[float | None, ...]:
    """``s.percentile_ms(p)`` for each p, in one pass over the histogram when there is one."""
    if s.count == 0:
        return tuple(None for _ in percents)
    if s.histogram is None:
        return tuple(s.percentile_ms(p) for p in percents)
    return s.histogram.percentiles_ms(percents)


def curve_percentiles(count: int) -> tuple[float, ...]:
    """Percentiles at even steps of log10(1/(1-q)) up to what ``count`` samples resolve."""
    top = min(CURVE_MAX_X, max(float(count), 10.0))
    steps = math.floor(math.log10(top) * CURVE_POINTS_PER_DECADE + 1e-9)
    return tuple(100.0 * (1.0 - 10.0 ** (-k / CURVE_POINTS_PER_DECADE)) for k in range(steps + 1))


def percentile_curve(s: RequestStats) -> PercentileCurve | None:
    """The HDR-style percentile distribution of one request name; None without samples."""
    if s.count == 0:
        return None
    percents = curve_percentiles(s.count)
    if s.histogram is not None:
        values = _clamp_to_max(s.histogram.percentiles_ms(percents), s.max_ms)
    else:
        # Locust's figures hold a few fixed percentiles only: plot those.
        known = sorted(
            (p, v) for p, v in s.locust_percentiles_ms.items() if p < 100.0 and v is not None
        )
        if not known:
            return None
        percents = tuple(p for p, _ in known)
        values = tuple(float(v) for _, v in known)
    return PercentileCurve(s.key, s.count, percents, values)


def _bucket_values_ms(histogram: Histogram) -> tuple[np.ndarray, np.ndarray]:
    """(highest equivalent value of each used bucket in ms, its count)."""
    index, counts = histogram.buckets()
    values_ms = bucket_layout().highest_ns[index] / NS_PER_MS
    return values_ms, counts.astype(float)


def distribution_bins(s: RequestStats) -> DistributionBins | None:
    """A histogram of durations from the HDR buckets; log-spaced bins for a long tail."""
    if s.count == 0 or s.histogram is None:
        return None
    values_ms, weights = _bucket_values_ms(s.histogram)
    if values_ms.size == 0:
        return None
    low, high = float(values_ms.min()), float(values_ms.max())
    log_x = high > 20.0 * max(low, 0.001)
    if high <= low:
        edges = np.array([low * 0.95, high * 1.05 + 0.001])
    else:
        # Rice's rule (2 n^(1/3) bins), capped: a few flows get a few wide bins.
        n_bins = min(FLOW_BINS, max(5, math.ceil(2.0 * s.count ** (1.0 / 3.0))))
        if log_x:
            edges = np.geomspace(max(low, 0.001), high, n_bins + 1)
        else:
            edges = np.linspace(low, high, n_bins + 1)
    binned, edges = np.histogram(values_ms, bins=edges, weights=weights)
    p50, p95, p99 = _clamp_to_max(percentiles_ms(s, (50.0, 95.0, 99.0)), s.max_ms)
    return DistributionBins(
        request_key=s.key,
        edges_ms=tuple(float(e) for e in edges),
        counts=tuple(round(c) for c in binned),
        log_x=bool(log_x),
        p50_ms=p50,
        p95_ms=p95,
        p99_ms=p99,
    )


# --- timeline ------------------------------------------------------------------------


def _percentile_sort_key(label: str) -> tuple[int, float, str]:
    info = registry.lookup(label)
    if info is not None and info.percentile is not None:
        return (0, info.percentile, label)
    return (1, 0.0, label)


def _timeline(points: Sequence[IntervalPoint], request_order: Sequence[str]) -> Timeline:
    group = max(1, math.ceil(len(points) / MAX_TIMELINE_POINTS))
    groups = [points[i : i + group] for i in range(0, len(points), group)]
    mid_s, users, rps, errors = [], [], [], []
    for g in groups:
        start = g[0].start_s
        end = g[-1].start_s + g[-1].duration_s
        requests = sum(p.requests for p in g)
        failures = sum(p.failures for p in g)
        duration = sum(p.duration_s for p in g)
        mid_s.append((start + end) / 2.0)
        users.append(g[-1].users)
        rps.append(requests / duration if duration > 0 else 0.0)
        errors.append(100.0 * failures / requests if requests else None)

    keys = list(request_order)
    table = _shared_table(points)
    if table is not None:
        return Timeline(
            mid_s=tuple(mid_s),
            users=tuple(users),
            rps=tuple(rps),
            error_rate_pct=tuple(errors),
            latency=_table_latency(table, group, keys),
            intervals_per_point=group,
        )
    labels: dict[str, set[str]] = {}
    # One pass over the points, each read once (a day-long soak has tens of thousands):
    # per key and label, the highest value of each group.
    peaks: dict[tuple[str, str], list[float | None]] = {}
    for number, g in enumerate(groups):
        for p in g:
            for key, pcts in p.percentiles_ms.items():
                if key not in labels:
                    labels[key] = set()
                    if key not in keys:
                        keys.append(key)
                labels[key].update(pcts)
                for label, value in pcts.items():
                    if value is None or (isinstance(value, float) and math.isnan(value)):
                        continue  # as _get reads it
                    line = peaks.setdefault((key, label), [None] * len(groups))
                    peak = line[number]
                    line[number] = float(value) if peak is None else max(peak, float(value))
    latency = []
    for key in keys:
        if key not in labels:
            continue
        lines = [
            SeriesLine(label, tuple(peaks.get((key, label), [None] * len(groups))))
            for label in sorted(labels[key], key=_percentile_sort_key)
        ]
        latency.append(LatencySeries(key, tuple(lines)))
    return Timeline(
        mid_s=tuple(mid_s),
        users=tuple(users),
        rps=tuple(rps),
        error_rate_pct=tuple(errors),
        latency=tuple(latency),
        intervals_per_point=group,
    )


def _shared_table(points: Sequence[IntervalPoint]) -> PercentileTable | None:
    """The table every point's percentiles are read from, in column order (a recording's
    timeline), or None (points made another way)."""
    first = points[0].percentiles_ms if points else None
    if not isinstance(first, TablePercentiles) or first.table.points != len(points):
        return None
    table = first.table
    for column, p in enumerate(points):
        pcts = p.percentiles_ms
        if not isinstance(pcts, TablePercentiles) or pcts.table is not table:
            return None
        if pcts.column != column:
            return None
    return table


def _table_latency(
    table: PercentileTable, group: int, keys: list[str]
) -> tuple[LatencySeries, ...]:
    """The latency lines of `_timeline` from a shared table, all groups at once: what the
    point-by-point pass gives (the same keys in the same order, the same peaks)."""
    peaks, seen = table.group_peaks(group)
    first_seen = [int(np.argmax(row)) if row.any() else -1 for row in table.present]
    # Keys not in the request order come after it, as the points first show them.
    extra = sorted(
        (i for i, key in enumerate(table.keys) if first_seen[i] >= 0 and key not in keys),
        key=lambda i: (first_seen[i], i),
    )
    order = [*keys, *(table.keys[i] for i in extra)]
    labels = sorted(table.labels, key=_percentile_sort_key)
    column = {label: j for j, label in enumerate(table.labels)}
    latency = []
    for key in order:
        i = table.position.get(key)
        if i is None or first_seen[i] < 0:
            continue
        lines = []
        for label in labels:
            values = peaks[i, :, column[label]].tolist()
            line = tuple(v if s else None for v, s in zip(values, seen[i].tolist(), strict=True))
            lines.append(SeriesLine(label, line))
        latency.append(LatencySeries(key, tuple(lines)))
    return tuple(latency)


def _get(pcts: Mapping[str, float] | None, label: str) -> float | None:
    if pcts is None:
        return None
    v = pcts.get(label)
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


# --- facts ---------------------------------------------------------------------------


def _duration_between(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    try:
        a = datetime.fromisoformat(start.replace("Z", "+00:00"))
        b = datetime.fromisoformat(end.replace("Z", "+00:00"))
        return (b - a).total_seconds()
    except (ValueError, TypeError):
        return None


def _facts(result: RunResult, budgets: Budgets | None) -> tuple[Fact, ...]:
    m = result.meta
    measured_s = _duration_between(m.started_at, m.ended_at)
    if measured_s is None and result.steady_end_s > 0:
        measured_s = result.steady_end_s
    duration = fmt_seconds(measured_s)
    if m.run_time_s is not None:
        duration += f" (planned {fmt_seconds(m.run_time_s)})"
    versions = [f"paybench {m.paybench_version}"]
    if m.locust_version:
        versions.append(f"Locust {m.locust_version}")
    if m.scenario_version:
        versions.append(f"scenarios {m.scenario_version}")
    facts = [
        Fact("Run id", m.run_id),
        Fact("Profile", m.profile or DASH),
        Fact("Target", f"{m.host} ({m.target})" if m.target != "unknown" else m.host),
        Fact("Users", fmt_number(m.users) if m.users is not None else DASH),
        Fact(
            "Spawn rate",
            f"{fmt_number(m.spawn_rate)} users/s" if m.spawn_rate is not None else DASH,
        ),
        Fact("Duration", duration),
        Fact(
            "Steady state",
            f"{fmt_seconds(result.steady_start_s)} to {fmt_seconds(result.steady_end_s)}",
        ),
        Fact("Started", m.started_at or DASH),
        Fact("Ended", m.ended_at or DASH),
        Fact(
            "Load generator",
            f"{m.workers} worker processes" if m.workers > 0 else "one Locust process",
        ),
        Fact("Versions", " · ".join(versions)),
        Fact("Git commit", m.git_commit or DASH),
        Fact(
            "Measurement",
            "exact (HDR histograms, 3 significant digits)"
            if result.exact
            else "Locust's rounded figures",
        ),
    ]
    if budgets is not None:
        text = budgets.source
        if budgets.warmup_s:
            text += f" (warm-up {fmt_seconds(budgets.warmup_s)})"
        facts.append(Fact("Budgets", text))
        if budgets.expected_peak_rps is not None:
            facts.append(Fact("Expected peak", f"{fmt_number(budgets.expected_peak_rps)} req/s"))
    if result.incomplete:
        facts.append(Fact("Incomplete", result.incomplete_reason or "yes"))
    return tuple(facts)


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(i for i in items if i))
