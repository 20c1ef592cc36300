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
``_NAMED`` with its own ``source``; the rest follows from its kind and direction.
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
Kind = Literal["latency", "percent", "rate", "count"]
Better = Literal["lower", "higher"]
Source = Literal["client"]

KIND_UNITS: dict[str, str] = {"latency": "ms", "percent": "%", "rate": "req/s", "count": "requests"}
_EXAMPLES: dict[str, str] = {
    "latency": '"< 800ms"',
    "percent": '"< 1%"',
    "rate": '">= 5"',
    "count": '">= 100"',
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
        return None
    percent = float(m.group(1))
    if not 0 < percent < 100:
        return None
    return _percentile_metric(percent)


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
