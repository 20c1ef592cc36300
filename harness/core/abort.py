"""Abort rules: stop a run early once its answer is no (pure: figures in, decisions out).

A rule (budgets.yaml ``abort:``, parsed by ``harness.core.abort_rules``) watches one metric
(``error_rate``, ``avg`` or ``p95``) of a request name or glob, or of the whole run, over a
trailing window of whole intervals that slides by one interval:

- a window is judged only when it lies wholly after the steady state began plus the
  rule's grace, and every interval in it is known (no half-filled window, no cold start);
- a judged window needs ``min_samples`` requests, else it says nothing (too few samples
  never fire);
- the rule fires when ``windows`` judged windows in a row breach; a window that holds,
  has too few samples or misses an interval starts the count again.

What is exact. The live progress line (``paybench.live.jsonl``) gives, per request name and
interval, the count, the failures, the mean and the p95 of the master's merged interval
histogram, not the histogram. Counts and failures add up exactly, and so do means (sum =
mean x count). A window's p95 is not the mean of its intervals' p95s; what they prove is a
lower bound. An interval's p95 is the value at rank ``r = rank(0.95, n)``, so at least
``n - r + 1`` of its samples lie at or above it; taking the intervals from the highest p95
down until those samples reach the window's own ``N - rank(0.95, N) + 1``, the window's p95
(the same rank rule, ``harness.core.stats.histogram``) is at least the p95 reached. A p95
rule fires on that bound, so it never fires on a window whose p95 holds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from harness.core import catalogue
from harness.core import metrics as registry
from harness.core.budgets import selector_matches
from harness.core.format import fmt_seconds, fmt_value
from harness.core.model import AGGREGATE_KEY, Budget, BudgetResult, Operator, Verdict
from harness.core.stats.histogram import _target_rank
from harness.errors import FormatError

AbortOp = Literal[">", ">="]
# What the live progress line carries per interval: the count, the failures, avg and p95.
ABORT_METRICS = ("error_rate", "avg", "p95")
_P95 = 95.0
_FLOW_PREFIX = catalogue.FLOW_CHECKOUT[0] + " "  # journeys are not requests: not in the run's


@dataclass(frozen=True)
class AbortRule:
    """One rule: ``abort.run.error_rate: "> 50%"`` with its window settings.

    ``limit`` is in the metric's unit (percent, ms); ``budget_factor`` is set when the
    rule was written as a multiple of the budget (``"> 5x budget"``).
    """

    key_path: str
    selector: str  # a request key, a glob, or AGGREGATE_KEY for the whole run
    metric: str  # one of ABORT_METRICS
    op: AbortOp
    limit: float
    text: str  # as written: "> 50%", "> 5x budget"
    window_s: float = 30.0
    windows: int = 3
    min_samples: int = 20
    grace_s: float = 0.0
    budget_factor: float | None = None

    def breached_by(self, value: float) -> bool:
        return value > self.limit if self.op == ">" else value >= self.limit

    def window_intervals(self, interval_s: float) -> int:
        """The window in whole intervals, rounded up (a window is never shorter than asked)."""
        return max(1, math.ceil(self.window_s / interval_s - 1e-9))

    @property
    def unit(self) -> str:
        return registry.unit_of(self.metric)

    @property
    def condition(self) -> str:
        """``> 50%``; ``> 5x budget (15,000 ms)`` for a multiple of the budget."""
        if self.budget_factor is None:
            return self.text
        return f"{self.text} ({fmt_value(self.limit, self.unit)})"


@dataclass(frozen=True)
class AbortRules:
    """A profile's rules, and the names no rule watches (``"name": off``)."""

    rules: tuple[AbortRule, ...] = ()
    excluded: tuple[str, ...] = ()

    def watches(self, key: str) -> bool:
        return not any(selector_matches(s, key) for s in self.excluded)


@dataclass(frozen=True)
class KeyFigures:
    """One request key over one interval, as the live line gives it."""

    count: int
    failures: int = 0
    avg_ms: float | None = None
    p95_ms: float | None = None


@dataclass(frozen=True)
class IntervalFigures:
    """Every request key's figures of one interval (``index``: floor(epoch / interval_s))."""

    index: int
    keys: Mapping[str, KeyFigures]


# --- the value of a window ------------------------------------------------------------------


def p95_lower_bound(figures: Sequence[KeyFigures]) -> float | None:
    """A value the p95 of the union of ``figures``' samples is at least (module doc); None
    when their p95s prove nothing."""
    total = sum(f.count for f in figures)
    if total == 0:
        return None
    needed = total - _target_rank(_P95, total) + 1
    ranked = sorted(
        ((f.p95_ms, f.count - _target_rank(_P95, f.count) + 1) for f in figures if f.count),
        key=lambda pair: -(pair[0] if pair[0] is not None else -math.inf),
    )
    at_or_above = 0
    for p95_ms, samples in ranked:
        if p95_ms is None:
            break
        at_or_above += samples
        if at_or_above >= needed:
            return p95_ms
    return None


def window_value(metric: str, figures: Sequence[KeyFigures]) -> tuple[int, float | None]:
    """The requests of a window and its metric (None: unknown); exact but for p95, which is
    a lower bound (``p95_lower_bound``)."""
    count = sum(f.count for f in figures)
    if count == 0:
        return 0, None
    if metric == "error_rate":
        return count, 100.0 * sum(f.failures for f in figures) / count
    if metric == "avg":
        if any(f.count and f.avg_ms is None for f in figures):
            return count, None
        return count, sum(f.avg_ms * f.count for f in figures if f.avg_ms is not None) / count
    if metric == "p95":
        return count, p95_lower_bound(figures)
    raise ValueError(f"abort rules judge {', '.join(ABORT_METRICS)}, not {metric!r}")


# --- watching a run -------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleReport:
    """What one rule saw over the run."""

    rule: AbortRule
    full_windows: int  # windows wholly after the steady state plus grace, every interval known
    judged: int  # (request, window) pairs with min_samples requests
    breaching: int
    most_samples: int
    keys_seen: int  # request keys the rule matched (1 for the run)
    no_data: str | None  # why the rule could never have fired, when it could not


@dataclass(frozen=True)
class Abort:
    """A rule that fired: on which request, from which value, when."""

    rule: AbortRule
    request_key: str  # AGGREGATE_KEY for the whole run
    value: float  # the least of the breaching windows' values (a lower bound for p95)
    at_s: float  # seconds since the run started, when paybench decided
    interval_index: int  # the last interval of the last breaching window
    window_s: float  # the window as judged (whole intervals)

    @property
    def message(self) -> str:
        return abort_message(self.rule, self.request_key, self.value, self.at_s, self.window_s)


def abort_message(
    rule: AbortRule, request_key: str, value: float, at_s: float, window_s: float
) -> str:
    """``aborted at 1 min 42 s: error rate 63.2 % over 3 windows of 30.0 s (> 50%)``."""
    label = registry.metric(rule.metric).label
    if rule.metric == "p95":
        label += " at least"
    who = "" if request_key == AGGREGATE_KEY else f"{request_key} "
    return (
        f"aborted at {fmt_seconds(at_s)}: {who}{label} {fmt_value(value, rule.unit)} over "
        f"{rule.windows} window{'s' if rule.windows != 1 else ''} of {fmt_seconds(window_s)} "
        f"({rule.key_path}: {rule.condition})"
    )


@dataclass
class _Track:
    """One rule on one request key (or on the run)."""

    streak: list[float] = field(default_factory=list)  # breaching windows in a row
    judged: int = 0
    breaching: int = 0
    most_samples: int = 0


class AbortWatch:
    """Feeds intervals to the rules, in order, until one fires (no IO, no clock).

    ``begin_steady(epoch)`` once the steady state has begun (the first moment every user
    runs, plus the warm-up); ``observe(interval, elapsed_s)`` for each interval the live
    file reports complete, oldest first. An interval seen again is ignored, and so is
    everything after a rule fired.
    """

    def __init__(self, rules: AbortRules, interval_s: float) -> None:
        if not interval_s > 0:
            raise ValueError(f"interval_s must be positive, got {interval_s}")
        self.rules = rules
        self.interval_s = interval_s
        self.steady_epoch: float | None = None
        self.fired: Abort | None = None
        self._intervals: dict[int, IntervalFigures] = {}
        self._last: int | None = None
        self._keep = max((r.window_intervals(interval_s) for r in rules.rules), default=1)
        self._full = [0 for _ in rules.rules]
        self._tracks: list[dict[str, _Track]] = [{} for _ in rules.rules]

    def begin_steady(self, epoch: float) -> None:
        if self.steady_epoch is None:
            self.steady_epoch = epoch

    def observe(self, interval: IntervalFigures, elapsed_s: float) -> Abort | None:
        """Judge every rule on the windows ending with ``interval``; the abort, if one fires."""
        if self.fired is not None or (self._last is not None and interval.index <= self._last):
            return None
        self._last = interval.index
        self._intervals[interval.index] = interval
        for old in [i for i in self._intervals if i <= interval.index - self._keep]:
            del self._intervals[old]
        if self.steady_epoch is None:
            return None
        for number, rule in enumerate(self.rules.rules):
            fired = self._judge(number, rule, interval.index, elapsed_s)
            if fired is not None:
                self.fired = fired
                return fired
        return None

    def _judge(self, number: int, rule: AbortRule, last: int, elapsed_s: float) -> Abort | None:
        assert self.steady_epoch is not None
        size = rule.window_intervals(self.interval_s)
        first = last - size + 1
        tracks = self._tracks[number]
        # 1 ms of slack: interval starts are index * interval_s, computed in floating point.
        if first * self.interval_s < self.steady_epoch + rule.grace_s - 1e-3:
            return None  # not yet: the window would reach into the ramp, warm-up or grace
        window = [self._intervals.get(i) for i in range(first, last + 1)]
        if any(w is None for w in window):
            for track in tracks.values():
                track.streak.clear()  # an interval nobody reported: the window is not whole
            return None
        self._full[number] += 1
        groups = self._groups(rule, [w for w in window if w is not None])
        for key, track in tracks.items():
            if key not in groups:
                track.streak.clear()  # no request in the window: too few samples
        for key, figures in groups.items():
            track = tracks.setdefault(key, _Track())
            count, value = window_value(rule.metric, figures)
            track.most_samples = max(track.most_samples, count)
            if count < rule.min_samples:
                track.streak.clear()
                continue
            track.judged += 1
            if value is None or not rule.breached_by(value):
                track.streak.clear()
                continue
            track.breaching += 1
            track.streak.append(value)
            if len(track.streak) >= rule.windows:
                least = min(track.streak[-rule.windows :])
                return Abort(rule, key, least, elapsed_s, last, size * self.interval_s)
        return None

    def _groups(
        self, rule: AbortRule, window: Sequence[IntervalFigures]
    ) -> dict[str, list[KeyFigures]]:
        """Request key -> its figures over the window; one group for a rule on the run."""
        groups: dict[str, list[KeyFigures]] = {}
        for interval in window:
            for key, figures in interval.keys.items():
                if not self.rules.watches(key):
                    continue
                if rule.selector == AGGREGATE_KEY:
                    if not key.startswith(_FLOW_PREFIX):
                        groups.setdefault(AGGREGATE_KEY, []).append(figures)
                elif selector_matches(rule.selector, key):
                    groups.setdefault(key, []).append(figures)
        return groups

    def reports(self) -> tuple[RuleReport, ...]:
        out = []
        for number, rule in enumerate(self.rules.rules):
            tracks = self._tracks[number].values()
            report = RuleReport(
                rule=rule,
                full_windows=self._full[number],
                judged=sum(t.judged for t in tracks),
                breaching=sum(t.breaching for t in tracks),
                most_samples=max((t.most_samples for t in tracks), default=0),
                keys_seen=sum(1 for t in tracks if t.most_samples),
                no_data=None,
            )
            no_data = _no_data(report, self.interval_s, self.steady_epoch is not None)
            out.append(replace(report, no_data=no_data))
        return tuple(out)

    def facts(self) -> AbortFacts:
        """What run.json keeps of the watch (``extra.abort``)."""
        fired = self.fired
        no_data = tuple(r.no_data for r in self.reports() if r.no_data is not None)
        if fired is None:
            return AbortFacts(aborted=False, no_data=no_data)
        return AbortFacts(
            aborted=True,
            message=fired.message,
            rule=fired.rule.key_path,
            request=fired.request_key,
            metric=fired.rule.metric,
            condition=fired.rule.condition,
            op=fired.rule.op,
            limit=fired.rule.limit,
            value=fired.value,
            at_s=fired.at_s,
            interval_index=fired.interval_index,
            no_data=no_data,
        )


def _no_data(report: RuleReport, interval_s: float, steady: bool) -> str | None:
    """Why a rule could not have fired (the verdict says so: it watched nothing)."""
    rule = report.rule
    if report.judged:
        return None
    window = fmt_seconds(rule.window_intervals(interval_s) * interval_s)
    head = f"abort rule {rule.key_path} ({rule.condition}) watched nothing"
    if not steady:
        return f"{head}: the steady state never began (not every planned user ran)"
    if report.full_windows == 0:
        grace = f" plus its grace of {fmt_seconds(rule.grace_s)}" if rule.grace_s else ""
        return f"{head}: the run held no whole {window} window after the steady state began{grace}"
    if report.keys_seen == 0:
        what = "no request" if rule.selector == AGGREGATE_KEY else f"no request {rule.selector!r}"
        return f"{head}: {what} ran in its windows"
    return (
        f"{head}: no {window} window held its {rule.min_samples:,} requests "
        f"(at most {report.most_samples:,})"
    )


def unwatched(rules: AbortRules, why: str) -> AbortFacts:
    """Facts of a run whose rules could not watch at all (``why``: e.g. no interval length)."""
    return AbortFacts(
        aborted=False,
        no_data=tuple(
            f"abort rule {r.key_path} ({r.condition}) watched nothing: {why}" for r in rules.rules
        ),
    )


# --- what the run keeps, and the verdict ---------------------------------------------------------


@dataclass(frozen=True)
class AbortFacts:
    """run.json's ``extra.abort`` (and summary.json's ``abort``): the watch's outcome."""

    aborted: bool
    message: str | None = None
    rule: str | None = None  # the key path of the rule that fired
    request: str | None = None  # its request key, AGGREGATE_KEY for the run
    metric: str | None = None
    condition: str | None = None  # as written, with the limit of a multiple of the budget
    op: AbortOp | None = None
    limit: float | None = None
    value: float | None = None
    at_s: float | None = None
    interval_index: int | None = None
    no_data: tuple[str, ...] = ()  # one line per rule that watched nothing

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"aborted": self.aborted}
        if self.aborted:
            doc.update(
                message=self.message,
                rule=self.rule,
                request=self.request,
                metric=self.metric,
                condition=self.condition,
                op=self.op,
                limit=self.limit,
                value=self.value,
                at_s=self.at_s,
                interval_index=self.interval_index,
            )
        doc["no_data"] = list(self.no_data)
        return doc


ABORT_EXTRA = "abort"  # the key of run.json's extra


def abort_facts(extra: Mapping[str, Any]) -> AbortFacts | None:
    """``extra.abort`` of run.json, checked; None when the run had no abort rules.

    FormatError naming the field when it is not what paybench writes (a copied folder).
    """
    doc = extra.get(ABORT_EXTRA)
    if doc is None:
        return None
    where = f"run.json: extra.{ABORT_EXTRA}"

    def bad(key: str, what: str) -> FormatError:
        return FormatError(f"{where}.{key}: {what}; the file is damaged or was edited")

    if not isinstance(doc, Mapping):
        raise FormatError(f"{where}: expected an object; the file is damaged or was edited")
    aborted = doc.get("aborted")
    if not isinstance(aborted, bool):
        raise bad("aborted", "expected true or false")
    no_data = doc.get("no_data", [])
    if not isinstance(no_data, list) or not all(isinstance(n, str) for n in no_data):
        raise bad("no_data", "expected a list of texts")
    if not aborted:
        return AbortFacts(aborted=False, no_data=tuple(no_data))

    def text(key: str) -> str:
        value = doc.get(key)
        if not isinstance(value, str) or not value:
            raise bad(key, "expected a text")
        return value

    def number(key: str) -> float:
        value = doc.get(key)
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
        ):
            raise bad(key, "expected a finite number")
        return float(value)

    metric, op = text("metric"), text("op")
    if metric not in ABORT_METRICS:
        raise bad("metric", f"expected one of {', '.join(ABORT_METRICS)}")
    if op not in (">", ">="):
        raise bad("op", "expected > or >=")
    index = doc.get("interval_index")
    if index is not None and (isinstance(index, bool) or not isinstance(index, int)):
        raise bad("interval_index", "expected a whole number")
    return AbortFacts(
        aborted=True,
        message=text("message"),
        rule=text("rule"),
        request=text("request"),
        metric=metric,
        condition=text("condition"),
        op=">" if op == ">" else ">=",
        limit=number("limit"),
        value=number("value"),
        at_s=number("at_s"),
        interval_index=index,
        no_data=tuple(no_data),
    )


def with_abort(verdict: Verdict, extra: Mapping[str, Any]) -> Verdict:
    """The verdict of a run as its abort rules left it (run.json's ``extra.abort``).

    An aborted run FAILs, with the abort as its first reason and as one broken row (its
    own test case in junit.xml), whatever its budgets say of the steady state it had; an
    incomplete run stays incomplete, and a latency abort of an unreliable measurement stays
    unreliable (its latencies are the generator's). Rules that watched nothing are named.
    """
    facts = abort_facts(extra)
    if facts is None:
        return verdict
    if not facts.aborted:
        return (
            replace(verdict, reasons=(*verdict.reasons, *facts.no_data))
            if facts.no_data
            else verdict
        )
    assert facts.limit is not None and facts.value is not None and facts.metric is not None
    holds: Operator = "<=" if facts.op == ">" else "<"  # what the run had to stay within
    row = BudgetResult(
        budget=Budget(
            key_path=facts.rule or "abort",
            selector=facts.request or AGGREGATE_KEY,
            metric=facts.metric,
            op=holds,
            limit=facts.limit,
            text=f"abort {facts.condition}",
        ),
        request_key=facts.request or AGGREGATE_KEY,
        status="fail",
        measured=facts.value,
        limit=facts.limit,
        margin_pct=(facts.limit - facts.value) / facts.limit * 100.0 if facts.limit else None,
        message=facts.message or "",
    )
    outcome = verdict.outcome
    latency = facts.metric != "error_rate"
    if outcome in ("PASS", "FAIL") or (outcome == "UNRELIABLE" and not latency):
        outcome = "FAIL"
    return replace(
        verdict,
        outcome=outcome,
        results=(*verdict.results, row),
        reasons=(facts.message or "aborted", *verdict.reasons, *facts.no_data),
    )
