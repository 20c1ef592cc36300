"""Server budgets judged on the scraped samples over the steady-state window (pure).

The samples are what ``harness.server`` scraped into server.jsonl: per source, one sample
per scrape, each the values of the series the budgets read (``series_text`` keys), or the
error of a scrape that failed. The window is the request budgets' steady state, in epochs.

How a value is taken (docs/budgets.md, "Server metrics"):

- a counter enters a formula only as its change: ``Increase`` (delta) or ``Rate`` between
  consecutive samples, and over the window between its first and last sample in it. A
  counter that goes down was reset (a restart) and counts from zero again;
- a gauge is its value at each sample, and over the window the mean of its samples;
- a ratio of two is the ratio of their values over the window (``avg``) and at each sample.

The budget's statistic is the window's value (``avg``), or the min, max or a percentile
(nearest rank) of the per-sample values; ``run`` is the value over the whole run instead,
from the scrape before the load to the one after Locust exited (an invariant such as one
email per completed payment: nothing is in flight at either end, while at the steady
state's edges an email may trail its payment by a scrape). A source whose samples do not
cover the window (it stopped answering, or was never scraped) gives its budgets no value:
"no data", which fails the run; a series the source never gave is "no data" too. A formula
that has no value on samples that are there (what it divides by did not change: no
activity) is "no samples", as a request budget whose request never ran.

Results are ``BudgetResult`` objects like the request budgets', so the verdict table,
summary.json, the reports and JUnit show them as they are; ``with_server_results`` adds
them to the request verdict.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from harness.core.evaluate import margin_pct
from harness.core.format import fmt_seconds, fmt_value
from harness.core.model import BudgetResult, Outcome, Status, Verdict
from harness.core.server_budgets import (
    TARGET_PROCESS_SOURCE,
    TARGET_SOURCE,
    Complement,
    Expr,
    Gauge,
    Increase,
    Rate,
    Ratio,
    Scale,
    Selector,
    ServerBudget,
    ServerSection,
    SourceSpec,
    Sum,
    parse_series_text,
    series_names,
)

# A source may miss single scrapes (a timeout on a busy machine); a gap between answers of
# more than this many intervals means it stopped answering, and its window has no value.
MAX_GAP_INTERVALS = 2.5


def server_request_key(source: str) -> str:
    """The verdict table's first column for a source's budgets: ``redis (server)``."""
    return f"{source} (server)"


@dataclass(frozen=True)
class Sample:
    """One scrape of one source: the values of its series, or why it failed."""

    epoch: float
    values: Mapping[str, float] | None  # None: the scrape failed
    error: str | None = None


@dataclass(frozen=True)
class SourceData:
    """What was scraped from one source during the run (server.jsonl)."""

    name: str
    kind: str
    where: str
    samples: tuple[Sample, ...]  # in epoch order
    series: tuple[str, ...] | None = None  # the series names chosen at preflight, if known


@dataclass(frozen=True)
class Window:
    """The steady state in epochs, and the scrape interval."""

    start_epoch: float
    end_epoch: float
    interval_s: float

    @property
    def duration_s(self) -> float:
        return self.end_epoch - self.start_epoch


# --- evaluating expressions ------------------------------------------------------------------


@dataclass(frozen=True)
class _Values:
    """An expression over the window: at each sample index, and the window's value."""

    points: Mapping[int, float]
    window: float | None


class _Evaluator:
    """Evaluates expressions over one source's samples in the window (in epoch order)."""

    def __init__(self, samples: Sequence[Sample]) -> None:
        self.samples = samples
        self.times = [s.epoch for s in samples]
        self._parsed: dict[str, tuple[str, dict[str, str]] | None] = {}

    def _sum(self, selector: Selector, values: Mapping[str, float]) -> float | None:
        total, found = 0.0, False
        for key, value in values.items():
            parsed = self._parsed.get(key)
            if parsed is None and key not in self._parsed:
                parsed = self._parsed[key] = parse_series_text(key)
            if parsed is not None and selector.matches(*parsed):
                total += value
                found = True
        return total if found else None

    def _gauge(self, selector: Selector) -> _Values:
        points = {}
        for i, s in enumerate(self.samples):
            v = self._sum(selector, s.values or {})
            if v is not None and math.isfinite(v):
                points[i] = v
        window = sum(points.values()) / len(points) if points else None
        return _Values(points, window)

    def _increases(self, selector: Selector) -> dict[int, float]:
        # A counter not (yet) exposed is zero: labelled counters appear at their first step.
        counts = [self._sum(selector, s.values or {}) or 0.0 for s in self.samples]
        out = {}
        for i in range(1, len(counts)):
            before, now = counts[i - 1], counts[i]
            out[i] = now - before if now >= before else now  # went down: reset, from zero
        return out

    def value(self, expr: Expr) -> _Values:
        if isinstance(expr, Gauge):
            return self._gauge(expr.selector)
        if isinstance(expr, Increase):
            steps = self._increases(expr.selector)
            return _Values(steps, sum(steps.values()) if steps else None)
        if isinstance(expr, Rate):
            steps = self._increases(expr.selector)
            t = self.times
            points = {i: d / (t[i] - t[i - 1]) for i, d in steps.items() if t[i] > t[i - 1]}
            span = t[-1] - t[0] if len(t) > 1 else 0.0
            return _Values(points, sum(steps.values()) / span if span > 0 else None)
        if isinstance(expr, Ratio):
            a, b = self.value(expr.numerator), self.value(expr.denominator)
            points = {i: a.points[i] / b.points[i] for i in a.points if b.points.get(i)}
            window = None
            if a.window is not None and b.window:
                window = a.window / b.window
            return _Values(points, window)
        if isinstance(expr, Sum):
            parts = [self.value(p) for p in expr.parts]
            common = set.intersection(*(set(p.points) for p in parts))
            points = {i: sum(p.points[i] for p in parts) for i in sorted(common)}
            windows = [p.window for p in parts]
            total = None if any(w is None for w in windows) else sum(w or 0.0 for w in windows)
            return _Values(points, total)
        if isinstance(expr, Scale):
            inner = self.value(expr.inner)
            w = None if inner.window is None else expr.factor * inner.window
            return _Values({i: expr.factor * v for i, v in inner.points.items()}, w)
        if isinstance(expr, Complement):
            inner = self.value(expr.inner)
            w = None if inner.window is None else 1.0 - inner.window
            return _Values({i: 1.0 - v for i, v in inner.points.items()}, w)
        first, fallback = self.value(expr.first), self.value(expr.fallback)
        points = {
            i: first.points[i] if first.points.get(i, 0.0) > 0 else fallback.points[i]
            for i in set(first.points) | set(fallback.points)
            if first.points.get(i, 0.0) > 0 or i in fallback.points
        }
        use_first = first.window is not None and first.window > 0
        return _Values(points, first.window if use_first else fallback.window)


def nearest_rank(values: Sequence[float], percent: float) -> float:
    """The nearest-rank percentile of a few samples (p95 of 20 samples is the 19th)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(percent / 100.0 * len(ordered)))
    return ordered[rank - 1]


def statistic(values: _Values, stat: str) -> float | None:
    if stat in ("avg", "run"):
        return values.window
    points = list(values.points.values())
    if not points:
        return None
    if stat == "min":
        return min(points)
    if stat == "max":
        return max(points)
    return nearest_rank(points, float(stat[1:]))


# --- the window's samples ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Coverage:
    samples: tuple[Sample, ...]
    problem: str | None  # why the window has no value


def _since(window: Window, epoch: float, what: str) -> str:
    offset = epoch - window.start_epoch
    if offset < 0:
        return f"{fmt_seconds(-offset)} before {what}"
    return f"{fmt_seconds(offset)} into {what}"


def run_window(data: SourceData, interval_s: float) -> Window:
    """The whole run as a source saw it: its first scrape (before the load) to its last
    (after Locust exited), for the ``run`` statistic."""
    if not data.samples:
        return Window(0.0, 0.0, interval_s)
    return Window(data.samples[0].epoch, data.samples[-1].epoch, interval_s)


def coverage(data: SourceData, window: Window, what: str = "the steady state") -> _Coverage:
    """The samples a source's budgets are judged on, or why there are none to judge."""
    interval = window.interval_s
    ok = [s for s in data.samples if s.values is not None]
    inside = [s for s in ok if window.start_epoch <= s.epoch <= window.end_epoch]
    if len(inside) < 2:
        # A steady state shorter than two scrapes: the samples just around it.
        before = [
            s for s in ok if window.start_epoch - 1.5 * interval <= s.epoch < window.start_epoch
        ]
        after = [s for s in ok if window.end_epoch < s.epoch <= window.end_epoch + 1.5 * interval]
        inside = before[-1:] + inside + after[:1]
    failed = [
        s
        for s in data.samples
        if s.values is None
        and window.start_epoch - interval <= s.epoch <= window.end_epoch + interval
    ]
    who = f"source {data.name!r} ({data.where})"
    if len(inside) < 2:
        if failed:
            first = failed[0]
            return _Coverage(
                (),
                (
                    f"no data: {who} did not answer from {_since(window, first.epoch, what)} "
                    f"({first.error or 'no answer'})"
                ),
            )
        return _Coverage((), f"no data: {who} has fewer than two samples in {what}")
    last_ok = inside[-1].epoch
    if last_ok < window.end_epoch and any(s.epoch > last_ok for s in failed):
        gone = next(s for s in failed if s.epoch > last_ok)
        if all(s.values is None for s in data.samples if s.epoch > last_ok):
            return _Coverage(
                (),
                (
                    f"no data: {who} stopped answering {_since(window, gone.epoch, what)} "
                    f"({gone.error or 'no answer'}) and did not answer again; its budgets cannot "
                    "be judged"
                ),
            )
    edges = [window.start_epoch, *(s.epoch for s in inside), window.end_epoch]
    gaps = [(b - a, a) for a, b in itertools.pairwise(edges)]
    gap, at = max(gaps)
    if gap > MAX_GAP_INTERVALS * interval:
        after_gap = [s for s in failed if s.epoch >= at]
        error = after_gap[0].error if after_gap else None
        return _Coverage(
            (),
            (
                f"no data: {who} stopped answering {_since(window, at, what)} for "
                f"{fmt_seconds(gap)} ({error or 'no answer'}); its budgets cannot be judged"
            ),
        )
    return _Coverage(tuple(inside), None)


# --- judging -----------------------------------------------------------------------------------


def _holds(op: str, measured: float, limit: float) -> bool:
    return {
        "<": measured < limit,
        "<=": measured <= limit,
        ">": measured > limit,
        ">=": measured >= limit,
    }[op]


def choose_formula(b: ServerBudget, data: SourceData) -> Expr:
    """The first of the budget's formulas whose series the source has (the first if none)."""
    if data.series is not None:
        have = set(data.series)
    else:
        have = set()
        for s in data.samples:
            for key in s.values or {}:
                parsed = parse_series_text(key)
                if parsed is not None:
                    have.add(parsed[0])
    for formula in b.formulas:
        if set(series_names(formula)) <= have:
            return formula
    return b.formulas[0]


def _no_value(b: ServerBudget, formula: Expr, data: SourceData) -> tuple[Status, str]:
    names = series_names(formula)
    seen = {
        parsed[0]
        for s in data.samples
        for key in (s.values or {})
        if (parsed := parse_series_text(key)) is not None
    }
    missing = [n for n in names if n not in seen]
    if missing:
        return (
            "no data",
            f"no data: {data.name!r} gave no {', '.join(missing)} in the steady state, "
            f"so {b.metric} has no value",
        )
    return (
        "no samples",
        f"no samples: {b.metric} has no value in the steady state: what it divides by "
        f"({', '.join(names)}) did not change or is zero (no activity to judge?)"
    )


def _skipped_message(spec: SourceSpec | None, name: str, scraped: bool) -> str:
    if not scraped:
        return (
            "skipped: the run folder has no server.jsonl (server metrics were not scraped: "
            "a run by an older paybench, or plain Locust)"
        )
    what = "its /metrics" if name == TARGET_SOURCE else "its process"
    return (
        f"skipped: {name!r} is the built-in target's source ({what}), which exists only when "
        f"paybench starts the target; with --host, declare sources.{name} to judge it "
        "(docs/budgets.md, Server metrics)"
    )


def judge_server(
    section: ServerSection,
    data: Mapping[str, SourceData] | None,
    window: Window,
    *,
    builtin_target: bool,
) -> tuple[BudgetResult, ...]:
    """Every server budget of ``section`` judged on ``data`` (None: nothing was scraped)."""
    results: list[BudgetResult] = []
    covered: dict[tuple[str, bool], _Coverage] = {}
    for b in section.budgets:
        key = server_request_key(b.selector)
        spec = section.source(b.selector)
        builtin = spec is not None and spec.builtin
        if data is None or (builtin and not builtin_target and b.selector not in data):
            message = _skipped_message(spec, b.selector, data is not None)
            results.append(BudgetResult(b, key, "skipped", None, b.limit, None, message=message))
            continue
        source = data.get(b.selector)
        if source is None:
            message = f"no data: source {b.selector!r} was not scraped in this run"
            results.append(BudgetResult(b, key, "no data", None, b.limit, None, message=message))
            continue
        whole = b.stat == "run"
        if (b.selector, whole) not in covered:
            if whole:
                cover = coverage(source, run_window(source, window.interval_s), "the run")
            else:
                cover = coverage(source, window)
            covered[b.selector, whole] = cover
        cover = covered[b.selector, whole]
        if cover.problem is not None:
            results.append(
                BudgetResult(b, key, "no data", None, b.limit, None, message=cover.problem)
            )
            continue
        formula = choose_formula(b, source)
        measured = statistic(_Evaluator(cover.samples).value(formula), b.stat)
        if measured is None or not math.isfinite(measured):
            status, message = _no_value(b, formula, source)
            results.append(BudgetResult(b, key, status, None, b.limit, None, message=message))
            continue
        held = _holds(b.op, measured, b.limit)
        message = ""
        if not held:
            message = (
                f"{b.metric} {fmt_value(measured, b.unit)} breaks {b.metric} {b.op} "
                f"{fmt_value(b.limit, b.unit)} (over {len(cover.samples)} samples of "
                f"{b.selector!r} in {'the run' if whole else 'the steady state'})"
            )
        results.append(
            BudgetResult(
                b,
                key,
                "pass" if held else "fail",
                measured,
                b.limit,
                margin_pct(b.op, measured, b.limit),
                message=message,
            )
        )
    return tuple(results)


def with_server_results(verdict: Verdict, results: Sequence[BudgetResult]) -> Verdict:
    """The request verdict with the server results after its own; a broken server budget
    fails a run that would pass (an unreliable or incomplete run stays what it is)."""
    if not results:
        return verdict
    outcome: Outcome = verdict.outcome
    if outcome == "PASS" and any(not r.passed for r in results):
        outcome = "FAIL"
    return replace(verdict, outcome=outcome, results=(*verdict.results, *results))


# --- over time, for the report ---------------------------------------------------------------


@dataclass(frozen=True)
class ServerTimeline:
    """A server metric over the run, for the report's chart: the per-scrape values of the
    formula its budgets are judged on (a counter's over the interval before each scrape),
    and the limits of those budgets (``("max < 80%", 80.0)``); ``gaps`` are the spans where
    the source did not answer (from its last answer before to its next answer, or to its last
    scrape), which the chart shows as missing."""

    source: str
    quantity: str
    unit: str
    points: tuple[tuple[float, float], ...]  # (epoch, value)
    limits: tuple[tuple[str, float], ...]
    gaps: tuple[tuple[float, float], ...] = ()  # (from epoch, to epoch)


def source_gaps(data: SourceData, interval_s: float) -> tuple[tuple[float, float], ...]:
    """The spans in which ``data``'s source did not answer: a run of failed scrapes (from the
    answer before it to the answer after it, or to the last failed scrape), or two answers
    more than ``MAX_GAP_INTERVALS`` scrape intervals apart."""
    gaps: list[tuple[float, float]] = []
    last_ok: float | None = None
    failed_from: float | None = None
    for s in data.samples:
        if s.values is None:
            if failed_from is None:
                failed_from = s.epoch if last_ok is None else last_ok
            continue
        if failed_from is not None:
            gaps.append((failed_from, s.epoch))
        elif last_ok is not None and s.epoch - last_ok > MAX_GAP_INTERVALS * interval_s:
            gaps.append((last_ok, s.epoch))
        last_ok, failed_from = s.epoch, None
    if failed_from is not None:
        gaps.append((failed_from, data.samples[-1].epoch))
    return tuple(gaps)


def server_timelines(
    section: ServerSection, data: Mapping[str, SourceData], interval_s: float = 2.0
) -> tuple[ServerTimeline, ...]:
    """One timeline per source and metric budgeted on it, in the order of the budgets."""
    groups: dict[tuple[str, str], list[ServerBudget]] = {}
    for b in section.budgets:
        if b.selector in data:
            groups.setdefault((b.selector, b.quantity), []).append(b)
    out = []
    for (source, quantity), budgets in groups.items():
        samples = [s for s in data[source].samples if s.values is not None]
        formula = choose_formula(budgets[0], data[source])
        values = _Evaluator(samples).value(formula) if samples else _Values({}, None)
        points = tuple(
            (samples[i].epoch, v) for i, v in sorted(values.points.items()) if math.isfinite(v)
        )
        limits = tuple(
            (b.text if b.stat == "avg" else f"{b.stat} {b.text}", b.limit) for b in budgets
        )
        gaps = source_gaps(data[source], interval_s)
        out.append(ServerTimeline(source, quantity, budgets[0].unit, points, limits, gaps))
    return tuple(out)


# --- the cost figure, for capacity -------------------------------------------------------------

CPU_SECONDS_SERIES = "process_cpu_seconds_total"


def cpu_seconds(data: Mapping[str, SourceData], window: Window) -> float | None:
    """The CPU seconds the target's process spent in ``window``: the change of
    process_cpu_seconds_total of the first source that has it (the built-in target_process,
    else a declared one), over the samples that cover the window; None without such data."""
    selector = Selector(CPU_SECONDS_SERIES, ())
    for name in sorted(data, key=lambda n: n != TARGET_PROCESS_SOURCE):
        source = data[name]
        if not any(
            (parsed := parse_series_text(key)) is not None and parsed[0] == CPU_SECONDS_SERIES
            for s in source.samples
            for key in (s.values or {})
        ):
            continue
        cover = coverage(source, window)
        if cover.problem is not None:
            return None
        # The rate over the samples that cover the window, over the whole window: the
        # samples' first and last may fall a little inside its edges.
        rate = _Evaluator(cover.samples).value(Rate(selector)).window
        return None if rate is None else rate * window.duration_s
    return None
