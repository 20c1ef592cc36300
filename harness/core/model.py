"""Frozen dataclasses shared by every module of the harness.

Units are in the names: ``_ms`` milliseconds, ``_s`` seconds, ``_pct`` percent, ``rps``
requests per second. Latency histograms are ``harness.core.stats.Histogram`` (nanosecond
buckets, read in milliseconds), imported only when a RequestStats is made, so that this
module (imported by the locustfiles through ``catalogue``) imports nothing heavy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from harness.core import metrics

if TYPE_CHECKING:
    from harness.core.abort import AbortRules
    from harness.core.server_budgets import ServerSection
    from harness.core.stats import Histogram

# The aggregate of every request name, as Locust calls it.
AGGREGATE_KEY = "Aggregated"

Operator = Literal["<", "<=", ">", ">="]
# "skipped": a regression budget with no baseline yet (the first comparable run): not broken.
# "inconclusive": a regression budget the run has too few samples to judge: not broken either,
# and not a pass.
# "no data": a server budget whose source stopped answering (or gave no samples in the
# window): broken, as "no samples" is for a request budget.
Status = Literal["pass", "fail", "no samples", "no data", "skipped", "inconclusive"]
Outcome = Literal["PASS", "FAIL", "UNRELIABLE", "INCOMPLETE"]


def request_key(request_type: str, name: str) -> str:
    """The name a budget uses for a request: ``"POST /api/payments/v2/initiate"``."""
    return f"{request_type} {name}" if request_type else name


@dataclass(frozen=True)
class RequestStats:
    """What one request name (or the aggregate) did over one window of the run.

    ``count`` counts completed requests, failures included; ``cut_off`` counts requests
    that were sent but still in flight when the run stopped (not in ``count``).
    ``histogram`` holds the exact latencies of the completed requests (a
    ``harness.core.stats.Histogram``: nanosecond buckets, read in ms) and
    ``interval_histograms`` the same per interval of the window; without them (a plain
    Locust CSV folder) only ``locust_percentiles_ms`` are known.
    """

    request_type: str
    name: str
    count: int
    failures: int
    duration_s: float
    avg_ms: float | None
    min_ms: float | None
    max_ms: float | None
    cut_off: int = 0
    histogram: Histogram | None = None
    interval_histograms: tuple[Histogram, ...] = ()
    locust_percentiles_ms: Mapping[float, float] = field(default_factory=dict)
    source: Literal["paybench", "locust"] = "paybench"

    def __post_init__(self) -> None:
        # One histogram type crosses module boundaries; another one (an hdrh HdrHistogram
        # of microseconds, say) would be read in the wrong unit without an error.
        if self.histogram is None and not self.interval_histograms:
            return
        from harness.core.stats import Histogram

        for h in (self.histogram, *self.interval_histograms):
            if h is not None and not isinstance(h, Histogram):
                raise TypeError(
                    f"RequestStats of {self.key!r}: histograms must be "
                    f"harness.core.stats.Histogram, not {type(h).__name__}"
                )

    @property
    def key(self) -> str:
        if self.name == AGGREGATE_KEY:
            return AGGREGATE_KEY
        return request_key(self.request_type, self.name)

    @property
    def rps(self) -> float:
        return self.count / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def error_rate_pct(self) -> float | None:
        return 100.0 * self.failures / self.count if self.count else None

    def percentile_ms(self, percent: float) -> float | None:
        """The ``percent`` percentile in ms; None when no sample or the data lacks it."""
        if self.count == 0:
            return None
        if self.histogram is not None:
            return self.histogram.percentile_ms(percent)
        return self.locust_percentiles_ms.get(percent)


@dataclass(frozen=True)
class IntervalPoint:
    """One interval of the run's timeline (for progress and the report's charts)."""

    start_s: float  # seconds since the run started
    duration_s: float
    users: int
    requests: int
    failures: int
    percentiles_ms: Mapping[str, Mapping[str, float]]  # request key -> {"p50": .., "p95": ..}


@dataclass(frozen=True)
class FailureRecord:
    request_key: str
    message: str
    count: int
    first_seen_s: float | None = None  # seconds since start, when known
    last_seen_s: float | None = None


@dataclass(frozen=True)
class RunMeta:
    run_id: str
    profile: str | None
    host: str
    target: Literal["reference", "external", "unknown"]
    users: int | None = None
    spawn_rate: float | None = None
    run_time_s: float | None = None  # as planned
    workers: int = 0
    started_at: str | None = None  # ISO-8601 UTC
    ended_at: str | None = None
    locust_version: str | None = None
    paybench_version: str = ""  # "" for a folder paybench did not write (plain Locust)
    git_commit: str | None = None
    scenario_version: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunResult:
    """A run read from its folder: the steady-state window that budgets judge, and the rest."""

    meta: RunMeta
    requests: tuple[RequestStats, ...]  # steady state, per request name
    total: RequestStats  # steady state, every request name together
    ramp: tuple[RequestStats, ...] = ()  # before the steady state, reported apart
    steady_start_s: float = 0.0
    steady_end_s: float = 0.0
    timeline: tuple[IntervalPoint, ...] = ()
    failures: tuple[FailureRecord, ...] = ()
    locust_requests: tuple[RequestStats, ...] = ()  # Locust's own figures, for reference
    incomplete: bool = False
    incomplete_reason: str | None = None
    unreliable_reasons: tuple[str, ...] = ()
    exact: bool = True  # False when only Locust's rounded figures were available
    whole_run: RequestStats | None = None  # every request name together, ramp included

    def find(self, key: str) -> RequestStats | None:
        if key == AGGREGATE_KEY:
            return self.total
        return next((r for r in self.requests if r.key == key), None)


@dataclass(frozen=True)
class Budget:
    """One limit: ``requests."GET /api/plans".p95: "< 300ms"``.

    ``selector`` is a request key, a glob over request keys, or ``AGGREGATE_KEY`` for the
    whole run. ``limit`` is in the metric's canonical unit: ms for times, percent for
    ``error_rate``, requests/s for ``rps``, requests for ``count``.
    """

    key_path: str
    selector: str
    metric: str  # avg, min, max, median, pNN / pNN.N, error_rate, rps, count
    op: Operator
    limit: float
    text: str  # as written, e.g. "< 2s"

    @property
    def unit(self) -> str:
        return metric_unit(self.metric)


@dataclass(frozen=True)
class RegressionBudget:
    """How far a metric may move against the baseline: ``p95: "+10% significant"``."""

    key_path: str
    selector: str
    metric: str
    max_increase: float  # percent of the baseline, or points for error_rate
    relative: bool  # True: percent of baseline; False: absolute points/units
    significant_only: bool
    text: str


@dataclass(frozen=True)
class PreflightCheck:
    """One request the target must answer before any load: ``GET url`` -> ``status``."""

    url: str  # a path on the target ("/healthz"), or a whole URL
    status: int = 200
    # The payments contract too: a JSON body whose "status" is healthy, ok or up.
    healthy_json: bool = False
    key_path: str = ""  # where budgets.yaml declared it, for messages ("" when built in)


@dataclass(frozen=True)
class Preflight:
    """budgets.yaml ``preflight:``: what the target must answer before a run."""

    checks: tuple[PreflightCheck, ...]
    timeout_s: float | None = None  # the whole preflight; None: paybench's default


@dataclass(frozen=True)
class Budgets:
    source: str  # the file the budgets came from, for messages
    budgets: tuple[Budget, ...]
    regressions: tuple[RegressionBudget, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    warmup_s: float = 0.0
    baseline_runs: int = 5
    expected_peak_rps: float | None = None
    profile: str | None = None
    preflight: Preflight | None = None  # None: not declared
    server: ServerSection | None = None  # sources: and server: (None: neither is written)
    abort: AbortRules | None = None  # abort: (harness.core.abort; None: no rules written)


@dataclass(frozen=True)
class BudgetResult:
    budget: Budget | RegressionBudget
    request_key: str  # the matched request key, or AGGREGATE_KEY
    status: Status
    measured: float | None
    limit: float
    margin_pct: float | None  # headroom left, in percent of the limit; negative when broken
    ci_low: float | None = None
    ci_high: float | None = None
    marginal: bool = False  # the confidence interval straddles the limit
    baseline: str | None = None  # for regression budgets: what the baseline was
    message: str = ""

    @property
    def passed(self) -> bool:
        """Not broken: held, skipped (no baseline yet) or inconclusive (too few samples)."""
        return self.status in ("pass", "skipped", "inconclusive")


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    results: tuple[BudgetResult, ...]
    reasons: tuple[str, ...] = ()  # why UNRELIABLE / INCOMPLETE
    # What the history says beside the budgets (a new level nobody accepted); never an outcome.
    notes: tuple[str, ...] = ()

    @property
    def broken(self) -> tuple[BudgetResult, ...]:
        return tuple(r for r in self.results if not r.passed)

    @property
    def marginal(self) -> tuple[BudgetResult, ...]:
        return tuple(r for r in self.results if r.marginal)

    @property
    def inconclusive(self) -> tuple[BudgetResult, ...]:
        return tuple(r for r in self.results if r.status == "inconclusive")


# What a metric is (unit, percentile, stored column ...) lives in harness.core.metrics;
# these names stay for the modules that ask the model.
TIME_METRICS = tuple(m.name for m in metrics.NAMED.values() if m.kind == "latency")


def is_percentile_metric(metric: str) -> bool:
    """``p95``, ``p99.9``: a ``pNN`` percentile (``median`` is named, not ``pNN``)."""
    return metric not in metrics.NAMED and metrics.is_percentile(metric)


def percentile_of(metric: str) -> float:
    """``"median"`` -> 50.0, ``"p99.9"`` -> 99.9."""
    return metrics.percentile_of(metric)


def metric_unit(metric: str) -> str:
    return metrics.unit_of(metric)


@dataclass(frozen=True)
class OpenRegression:
    """A regression budget broken by the latest comparable runs and accepted by nobody.

    ``since_run_id`` is the first run of the regression, ``values`` the metric in each of
    its runs, oldest first: the level the judge holds a later run against until it is
    accepted or the metric is back.
    """

    since_run_id: str
    values: tuple[float, ...]


@dataclass(frozen=True)
class Baseline:
    """What regression budgets compare against: earlier comparable runs from the history."""

    description: str  # e.g. "median of the last 5 runs of profile nightly"
    run_ids: tuple[str, ...]
    # request key -> metric name (as in budgets: "p95", "avg", "error_rate", ...) -> the
    # value of that metric in each baseline run, oldest first
    values: Mapping[str, Mapping[str, tuple[float, ...]]] = field(default_factory=dict)
    # request key -> metric name -> the regression still open there
    open_regressions: Mapping[str, Mapping[str, OpenRegression]] = field(default_factory=dict)
    # request key -> metric name -> the latest runs that rose beyond the budget in a row
    # without the rise being significant (values oldest first): judged with the next run
    rising: Mapping[str, Mapping[str, tuple[float, ...]]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()  # what the history says beside the budgets (Verdict.notes)


@dataclass(frozen=True)
class BaselineDecision:
    """``paybench baseline accept|pin``: a level someone accepted, recorded in the history.

    ``run_id`` is the run named; ``from_run_id`` the first run of the accepted level (for
    accept, the first run of the regression the named run belongs to; for pin, the run
    itself). ``recorded_through`` is the history's last run sequence number when the
    decision was taken: the runs up to it that broke a regression budget are accepted.
    """

    decision_id: int
    kind: Literal["accept", "pin"]
    run_id: str
    from_run_id: str
    reason: str | None
    decided_at: str  # ISO-8601 UTC
    recorded_through: int
