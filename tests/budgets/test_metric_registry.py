"""The metric registry (harness.core.metrics) and what budgets.yaml may say about metrics."""

from __future__ import annotations

import pytest

from harness.core import metrics as registry
from harness.core.budgets import parse_budgets
from harness.core.catalogue import REQUEST_KEYS
from harness.core.model import RequestStats
from harness.errors import ConfigError


def parse(text: str):
    return parse_budgets(text, "budgets.yaml", known_keys=REQUEST_KEYS)


def test_a_regression_budget_on_a_percentile_the_history_does_not_keep_is_refused() -> None:
    """Regression: a ``p75`` regression budget was accepted, then skipped on every run,
    because the history stores no p75 to build a baseline from."""
    text = 'version: 1\nregressions:\n  requests:\n    "GET /api/plans": {p75: "+10%"}\n'
    with pytest.raises(ConfigError) as caught:
        parse(text)
    assert caught.value.message == (
        'budgets.yaml: regressions.requests."GET /api/plans".p75: no regression budget for '
        "p75: the history keeps no p75 of earlier runs; use avg, min, max, median, p50, p90, "
        'p95, p99, p99.9 or error_rate, or an absolute budget such as p75: "< 800ms"'
    )


@pytest.mark.parametrize("name", ["p75", "p97.5", "p99.99", "p66"])
def test_every_unstored_percentile_is_refused_in_regressions(name: str) -> None:
    with pytest.raises(ConfigError, match=rf"regressions\.run\.{name}: no regression budget"):
        parse(f'version: 1\nregressions:\n  run: {{{name}: "+10%"}}\n')


@pytest.mark.parametrize("name", ["p75", "p97.5", "p99.99", "p66"])
def test_the_same_percentile_is_a_valid_absolute_budget(name: str) -> None:
    (b,) = parse(f'version: 1\nrun: {{{name}: "< 800ms"}}\n').budgets
    assert (b.metric, b.limit, b.unit) == (name, 800.0, "ms")


@pytest.mark.parametrize("name", registry.regression_names())
def test_every_metric_the_registry_allows_is_a_valid_regression_budget(name: str) -> None:
    rise = '"+0.5 points"' if name == "error_rate" else '"+10% significant"'
    (r,) = parse(f"version: 1\nregressions:\n  run: {{{name}: {rise}}}\n").regressions
    assert r.metric == name
    assert registry.metric(name).column is not None


def test_regression_metrics_are_exactly_the_stored_ones_that_may_drift() -> None:
    stored = {m.name for m in registry.stored_metrics()}
    assert set(registry.regression_names()) == stored - {"rps", "count"}
    assert registry.REGRESSION_HELP == (
        "use avg, min, max, median, p50, p90, p95, p99, p99.9 or error_rate"
    )


def test_lookup_gives_one_spelling_per_metric() -> None:
    assert registry.lookup("p95.0") == registry.lookup("p95")
    assert registry.metric("p95.0").name == "p95"
    assert registry.metric("p99.90").name == "p99.9"
    for name in ("p0", "p100", "p100.5", "P95", "avgg", "p", "p-5"):
        assert registry.lookup(name) is None, name
    with pytest.raises(KeyError, match="unknown metric 'avgg'; use avg, min, max"):
        registry.metric("avgg")


def test_what_each_metric_is() -> None:
    rows = {
        name: (m.unit, m.better, m.column, m.percentile, m.phrase)
        for name in ("avg", "median", "p99.9", "p75", "error_rate", "rps", "count")
        for m in [registry.metric(name)]
    }
    assert rows == {
        "avg": ("ms", "lower", "avg_ms", None, "average"),
        "median": ("ms", "lower", "p50_ms", 50.0, "median"),
        "p99.9": ("ms", "lower", "p99_9_ms", 99.9, "p99.9"),
        "p75": ("ms", "lower", None, 75.0, "p75"),
        "error_rate": ("%", "lower", "error_rate_pct", None, "error rate"),
        "rps": ("req/s", "higher", "rps", None, "throughput"),
        "count": ("requests", "higher", "count", None, "request count"),
    }
    assert registry.same_quantity("median", "p50") and not registry.same_quantity("p50", "p95")


def test_a_metric_measures_request_stats() -> None:
    s = RequestStats("GET", "/api/plans", 200, 3, 10.0, 12.5, 1.0, 90.0)
    assert registry.metric("avg").measure(s) == 12.5
    assert registry.metric("max").measure(s) == 90.0
    assert registry.metric("error_rate").measure(s) == 1.5
    assert registry.metric("rps").measure(s) == 20.0
    assert registry.metric("count").measure(s) == 200.0
    # Without a histogram only Locust's own percentiles exist: none here.
    assert registry.metric("p95").measure(s) is None


def test_suggestions_for_misspelt_metrics() -> None:
    assert registry.suggest("P95") == "p95"
    assert registry.suggest("mean") == "avg"
    assert registry.suggest("avgg") == "avg"
    assert registry.suggest("throughput") == "rps"
    assert registry.suggest("zzz") is None
