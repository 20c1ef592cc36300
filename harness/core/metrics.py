"""The metrics paybench knows, in one registry (pure; imports nothing of ours).

A metric is what a budget names (``p95``, ``avg``, ``error_rate``, ``rps`` ...): its unit,
which direction is better, how a limit on it is written, whether the history stores it (and
in which column), and how reports and sentences call it. budgets.yaml parsing, the judge,
the history, comparisons, trends, capacity and the reports all ask this module instead of
keeping their own tables.

The rule that ties them together: a budget may name any metric here and is judged on it;
a regression budget may name only a metric the history stores (``Metric.regression``),
because its baseline comes from the stored runs. Anything else is refused when
budgets.yaml is parsed, never skipped later.

Percentiles are a family: ``pNN`` / ``pNN.N`` for any percent strictly between 0 and 100
(``p95.0`` is ``p95``). The history stores the percentiles of ``STORED_PERCENTILES``.

A metric from another source (a server's CPU %, a cache hit rate) is one more entry in
``_SERVER`` with ``source="server"``; the rest follows from its kind and direction. Server
metrics are budgeted under budgets.yaml's ``server:`` section only (their formulas over each
source's series are ``harness.core.server_budgets``'); each may carry a statistic over the
window's samples (``cpu_percent.max``, ``memory_percent.p95``), and a raw expression over a
source's series (``rate(redis_evicted_keys_total{})``) is a server metric too, a bare number
in the series' own unit.
"""

from __future__ import annotations

import difflib
import functools
import re
from dataclasses import dataclass
from typing import Any, Literal

# How a limit on the metric is written and checked:
#   latency  a time, "< 800ms" / "< 2s", stored in ms
#   percent  a share, "< 1%", between 0 and 100
#   rate     per second, a bare number: ">= 5"
#   count    a whole number: ">= 100"
#   number   a bare number, whole or not: ">= 0.99" (server metrics only)
#   size     memory, "< 512MiB" / "< 2GiB", stored in MiB (server metrics only)
Kind = Literal["latency", "percent", "rate", "count", "number", "size"]
Better = Literal["lower", "higher"]
Source = Literal["client", "server"]

KIND_UNITS: dict[str, str] = {
    "latency": "ms",
    "percent": "%",
    "rate": "req/s",
    "count": "requests",
    "number": "",
    "size": "MiB",
}
_EXAMPLES: dict[str, str] = {
    "latency": '"< 800ms"',
    "percent": '"< 1%"',
    "rate": '">= 5"',
    "count": '">= 100"',
    "number": '">= 0.99"',
    "size": '"< 512MiB"',
}

# The percentiles every run keeps in the history (request_metrics columns); a new one here
# needs a schema migration in harness.store.
STORED_PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)

_PERCENTILE = re.compile(r"p(\d+(?:\.\d+)?)")


@dataclass(frozen=True)
class Metric:
    """One metric, as budgets name it.

    ``field`` is the ``RequestStats`` attribute that holds it (None for percentiles, read
    through ``percentile_ms``); ``column`` the history column (None: not stored).
    """

    name: str
    kind: Kind
    better: Better
    label: str  # short, for table headers and legends: "p95", "avg", "error rate"
    phrase: str  # in a sentence: "p95 of payment initiation", "average of ..."
    column: str | None = None
    field: str | None = None
    percentile: float | None = None
    # Whether a regression budget may name it: needs a stored column, and a metric that
    # does not simply follow the load (rps and count follow the users and wait times).
    regressable: bool = True
    source: Source = "client"

    @property
    def unit(self) -> str:
        return KIND_UNITS[self.kind]

    @property
    def higher_is_worse(self) -> bool:
        return self.better == "lower"

    @property
    def stored(self) -> bool:
        return self.column is not None

    @property
    def regression(self) -> bool:
        """A regression budget may name it: the history stores it and it may drift."""
        return self.regressable and self.stored

    @property
    def is_percentile(self) -> bool:
        return self.percentile is not None

    @property
    def example(self) -> str:
        """A budget on this metric as budgets.yaml writes it: ``p95: "< 800ms"``."""
        return f"{self.name}: {_EXAMPLES[self.kind]}"

    def measure(self, stats: Any) -> float | None:
        """The metric of a ``RequestStats`` (None: no sample, or the data lacks it)."""
        if self.percentile is not None:
            return stats.percentile_ms(self.percentile)
        value = getattr(stats, self.field or self.name)
        return None if value is None else float(value)


def percentile_name(percent: float) -> str:
    """``95.0`` -> ``"p95"``, ``99.9`` -> ``"p99.9"``: the one spelling of a percentile."""
    return f"p{percent:g}"


def _column_of(percent: float) -> str | None:
    if percent not in STORED_PERCENTILES:
        return None
    return percentile_name(percent).replace(".", "_") + "_ms"


def _percentile_metric(percent: float) -> Metric:
    name = percentile_name(percent)
    return Metric(
        name=name,
        kind="latency",
        better="lower",
        label=name,
        phrase=name,
        column=_column_of(percent),
        percentile=percent,
    )


_NAMED: tuple[Metric, ...] = (
    Metric("avg", "latency", "lower", "avg", "average", column="avg_ms", field="avg_ms"),
    Metric("min", "latency", "lower", "min", "minimum", column="min_ms", field="min_ms"),
    Metric("max", "latency", "lower", "max", "maximum", column="max_ms", field="max_ms"),
    Metric("median", "latency", "lower", "median", "median", column="p50_ms", percentile=50.0),
    Metric(
        "error_rate",
        "percent",
        "lower",
        "error rate",
        "error rate",
        column="error_rate_pct",
        field="error_rate_pct",
    ),
    Metric("rps", "rate", "higher", "req/s", "throughput", column="rps", regressable=False),
    Metric("count", "count", "higher", "count", "request count", column="count", regressable=False),
)
NAMED: dict[str, Metric] = {m.name: m for m in _NAMED}

# The checklist's server numbers, over the standard names of each kind of source
# (harness.core.server_budgets holds the formulas). Not in the history (no column yet).
_SERVER_ROWS: tuple[tuple[str, Kind, Better, str, str], ...] = (
    ("cpu_percent", "percent", "lower", "CPU", "CPU (percent of one core)"),
    ("memory_percent", "percent", "lower", "memory", "memory (percent of the limit)"),
    ("memory_bytes", "size", "lower", "memory", "resident memory"),
    ("cache_hit_rate", "percent", "higher", "hit rate", "cache hit rate"),
    ("query_time_avg", "latency", "lower", "query time", "average query time"),
    ("pool_usage_percent", "percent", "lower", "pool", "connection pool usage"),
    (
        "emails_per_completed_payment",
        "number",
        "higher",
        "emails/payment",
        "confirmation emails per completed payment",
    ),
    ("host_cpu_percent", "percent", "lower", "host CPU", "host CPU"),
    ("host_memory_percent", "percent", "lower", "host memory", "host memory"),
    ("disk_io_time_avg", "latency", "lower", "disk I/O", "average disk I/O time"),
)
_SERVER = tuple(
    Metric(name, kind, better, label, phrase, regressable=False, source="server")
    for name, kind, better, label, phrase in _SERVER_ROWS
)
SERVER_NAMED: dict[str, Metric] = {m.name: m for m in _SERVER}
# A cost figure over two kinds of data: the target process' CPU time (a server source) per
# request completed in the steady state (the client's count). Judged against the history's
# baseline only (regressions.server, harness.core.server_regressions): its absolute value
# depends on the machine.
PER_REQUEST: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric(
            "cpu_ms_per_request",
            "latency",
            "lower",
            "CPU/request",
            "CPU time per completed request",
            regressable=False,
            source="server",
        ),
    )
}
# A statistic over the window's samples, after the name: cpu_percent.max, memory_percent.p95
# (the bare name is the window's average; .run the whole run's, for an invariant).
_SERVER_NAME = re.compile(r"(?P<base>[a-z][a-z0-9_]*)(?:\.(?P<stat>min|max|run|p\d+(?:\.\d+)?))?")
# A raw expression holds a series selector's braces or a function's parentheses (a bare
# series is written NAME{}), optionally followed by its statistic.
_SERVER_EXPRESSION = re.compile(
    r"(?P<base>[^\s.][^\n]*[)}])(?:\.(?P<stat>min|max|run|p\d+(?:\.\d+)?))?", re.DOTALL
)

# Words people write for a metric we spell differently.
HINTS = {
    "mean": "avg",
    "average": "avg",
    "minimum": "min",
    "maximum": "max",
    "p100": "max",
    "p0": "min",
    "p50": "median",
    "errors": "error_rate",
    "error-rate": "error_rate",
    "errorrate": "error_rate",
    "failure_rate": "error_rate",
    "fail_rate": "error_rate",
    "failures": "error_rate",
    "throughput": "rps",
    "req_per_s": "rps",
    "requests": "count",
    "num_requests": "count",
}


def _or_list(names: list[str]) -> str:
    return ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else names[0]


def _help() -> str:
    named = list(NAMED)
    latency = [n for n in named if NAMED[n].kind == "latency"]
    rest = [n for n in named if NAMED[n].kind != "latency"]
    return "use " + _or_list([*latency, "pNN or pNN.N (0 < N < 100)", *rest])


def regression_names() -> tuple[str, ...]:
    """Every metric a regression budget may name, in the order the help lists them."""
    latency = [m.name for m in _NAMED if m.kind == "latency" and m.regression]
    percentiles = [percentile_name(p) for p in STORED_PERCENTILES]
    rest = [m.name for m in _NAMED if m.kind != "latency" and m.regression]
    return (*latency, *percentiles, *rest)


METRICS_HELP = _help()
REGRESSION_HELP = "use " + _or_list(list(regression_names()))


@functools.lru_cache(maxsize=512)
def lookup(name: str) -> Metric | None:
    """The metric ``name`` spells (``p95.0`` is ``p95``); None for anything else.

    ``p0`` and ``p100`` are not metrics: they are ``min`` and ``max``.
    """
    if name in NAMED:
        return NAMED[name]
    m = _PERCENTILE.fullmatch(name)
    if m is None:
        return _server_metric(name)
    percent = float(m.group(1))
    if not 0 < percent < 100:
        return None
    return _percentile_metric(percent)


def _server_metric(name: str) -> Metric | None:
    """``cpu_percent``, ``cpu_percent.max``, ``rate(x{}).p95``: a server metric, or None."""
    m = _SERVER_NAME.fullmatch(name)
    if m is not None and m.group("base") in PER_REQUEST and m.group("stat") is None:
        return PER_REQUEST[m.group("base")]
    if m is not None and m.group("base") in SERVER_NAMED:
        base = SERVER_NAMED[m.group("base")]
    else:
        m = _SERVER_EXPRESSION.fullmatch(name)
        if m is None or not ("(" in m.group("base") or "{" in m.group("base")):
            return None
        expression = m.group("base")
        base = Metric(
            expression,
            "number",
            "lower",
            "expression",
            expression,
            regressable=False,
            source="server",
        )
    stat = m.group("stat")
    if stat is None:
        return base
    pm = _PERCENTILE.fullmatch(stat)
    if pm is not None and not 0 < float(pm.group(1)) < 100:
        return None
    return Metric(
        name,
        base.kind,
        base.better,
        f"{stat} {base.label}",
        f"{stat} {base.phrase}",
        regressable=False,
        source="server",
    )


def metric(name: str) -> Metric:
    """The metric ``name``; KeyError naming the metrics allowed for anything else."""
    found = lookup(name)
    if found is None:
        raise KeyError(f"unknown metric {name!r}; {METRICS_HELP}")
    return found


def suggest(name: str) -> str | None:
    """The metric someone who wrote ``name`` most likely meant, or None."""
    lower = name.lower()
    hint = HINTS.get(lower)
    if hint is None and lower != name and lookup(lower) is not None:
        hint = lower
    if hint is None and not _PERCENTILE.fullmatch(lower):
        common = [*NAMED, *(percentile_name(p) for p in STORED_PERCENTILES)]
        close = difflib.get_close_matches(name, common, n=1, cutoff=0.6)
        hint = close[0] if close else None
    return hint


def same_quantity(a: str, b: str) -> bool:
    """Whether two metric names measure the same thing (``median`` and ``p50``)."""
    if a == b:
        return True
    ma, mb = lookup(a), lookup(b)
    return ma is not None and mb is not None and ma.column is not None and ma.column == mb.column


def stored_metrics() -> tuple[Metric, ...]:
    """Every metric the history keeps per request name and run."""
    percentiles = tuple(_percentile_metric(p) for p in STORED_PERCENTILES)
    return (*percentiles, *(m for m in _NAMED if m.stored))


def unit_of(name: str) -> str:
    """The unit of a metric's values: ms, %, req/s or requests."""
    return metric(name).unit


def is_percentile(name: str) -> bool:
    found = lookup(name)
    return found is not None and found.is_percentile


def percentile_of(name: str) -> float:
    """``"median"`` -> 50.0, ``"p99.9"`` -> 99.9; KeyError for a metric that is none."""
    found = metric(name)
    if found.percentile is None:
        raise KeyError(f"{name!r} is not a percentile")
    return found.percentile
