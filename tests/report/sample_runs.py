"""Literal runs for the report tests: real histograms filled from a seeded generator.

The histograms are ``harness.core.stats.Histogram``, what ``paybench run`` records and the
only type ``RequestStats.histogram`` holds.
"""

from __future__ import annotations

import random

from harness.core import catalogue, stats
from harness.core.model import (
    AGGREGATE_KEY,
    Budget,
    BudgetResult,
    Budgets,
    FailureRecord,
    IntervalPoint,
    RequestStats,
    RunMeta,
    RunResult,
    Verdict,
    request_key,
)

SCRIPT = "<script>alert(1)</script>"

# (request type, name, median ms, lognormal sigma, requests in the steady state)
SHAPES = (
    (*catalogue.PLANS, 40.0, 0.5, 900),
    (*catalogue.INITIATE, 380.0, 0.35, 400),
    (*catalogue.STATUS, 120.0, 0.4, 1200),
    (*catalogue.WEBHOOK_COMPLETED, 70.0, 0.4, 380),
    (*catalogue.HEALTH, 2.5, 0.3, 600),
    (*catalogue.FLOW_CHECKOUT, 2600.0, 0.25, 380),
)


def new_histogram() -> stats.Histogram:
    return stats.new_histogram()


def histogram_of(latencies_us: list[int]) -> stats.Histogram:
    h = new_histogram()
    h.record_ms_array([us / 1000.0 for us in latencies_us])
    return h


def stats_from(
    request_type: str,
    name: str,
    latencies_us: list[int],
    failures: int,
    duration_s: float,
    cut_off: int = 0,
) -> RequestStats:
    h = histogram_of(latencies_us)
    n = len(latencies_us)
    return RequestStats(
        request_type=request_type,
        name=name,
        count=n,
        failures=failures,
        duration_s=duration_s,
        avg_ms=sum(latencies_us) / n / 1000.0 if n else None,
        min_ms=min(latencies_us) / 1000.0 if n else None,
        max_ms=max(latencies_us) / 1000.0 if n else None,
        cut_off=cut_off,
        histogram=h,
    )


def meta(**changes) -> RunMeta:
    fields = {
        "run_id": "20250301T020000Z-a1b2c3",
        "profile": "nightly",
        "host": "http://127.0.0.1:8321",
        "target": "reference",
        "users": 20,
        "spawn_rate": 5.0,
        "run_time_s": 60.0,
        "workers": 0,
        "started_at": "2025-03-01T02:00:00Z",
        "ended_at": "2025-03-01T02:01:00Z",
        "locust_version": "2.47.0",
        "paybench_version": "0.1.0",
        "git_commit": "0123456789abcdef0123456789abcdef01234567",
        "scenario_version": "1",
    }
    fields.update(changes)
    return RunMeta(**fields)


def budget(selector: str, metric: str, op: str, limit: float, text: str) -> Budget:
    return Budget(
        key_path=f'requests."{selector}".{metric}',
        selector=selector,
        metric=metric,
        op=op,
        limit=limit,
        text=text,
    )


def make_sample() -> tuple[RunResult, Verdict, Budgets]:
    """A 60 s nightly run: 6 request names, a ramp, a timeline, failures, 7 budgets."""
    rng = random.Random(1)
    steady_s = 50.0
    requests, ramp = [], []
    for rtype, name, median_ms, sigma, n in SHAPES:
        lat = [max(1, int(rng.lognormvariate(0, sigma) * median_ms * 1000)) for _ in range(n)]
        failures = 3 if name == catalogue.INITIATE[1] else 0
        requests.append(stats_from(rtype, name, lat, failures, steady_s))
        ramp_lat = [
            max(1, int(rng.lognormvariate(0, sigma) * median_ms * 900)) for _ in range(n // 10)
        ]
        ramp.append(stats_from(rtype, name, ramp_lat, 0, 10.0))
    total_h = new_histogram()
    for s in requests:
        if s.request_type != "FLOW":
            total_h.add(s.histogram)
    plain = [s for s in requests if s.request_type != "FLOW"]
    count = sum(s.count for s in plain)
    total = RequestStats(
        request_type="",
        name=AGGREGATE_KEY,
        count=count,
        failures=sum(s.failures for s in plain),
        duration_s=steady_s,
        avg_ms=sum(s.avg_ms * s.count for s in plain) / count,
        min_ms=min(s.min_ms for s in plain),
        max_ms=max(s.max_ms for s in plain),
        histogram=total_h,
    )
    timeline = []
    for i in range(30):
        users = min(20, 4 * (i + 1))
        pcts = {}
        for rtype, name, median_ms, _sigma, _n in SHAPES:
            wobble = 1.0 + 0.15 * rng.random() + (0.4 if i == 20 else 0.0)
            pcts[request_key(rtype, name)] = {
                "p50": median_ms * wobble,
                "p95": median_ms * 1.9 * wobble,
                "p99": median_ms * 2.6 * wobble,
            }
        timeline.append(
            IntervalPoint(
                start_s=2.0 * i,
                duration_s=2.0,
                users=users,
                requests=users * 6,
                failures=2 if i in (12, 13) else 0,
                percentiles_ms=pcts,
            )
        )
    initiate = request_key(*catalogue.INITIATE)
    failures = (
        FailureRecord(initiate, "HTTPError('502 Server Error: Bad Gateway')", 2, 24.1, 26.9),
        FailureRecord(initiate, SCRIPT, 1, 25.0, 25.0),
    )
    locust_rows = tuple(
        RequestStats(
            request_type=s.request_type,
            name=s.name,
            count=s.count + r.count,
            failures=s.failures,
            duration_s=60.0,
            avg_ms=s.avg_ms,
            min_ms=s.min_ms,
            max_ms=s.max_ms,
            locust_percentiles_ms={
                50.0: round(s.percentile_ms(50)),
                95.0: round(s.percentile_ms(95)),
            },
            source="locust",
        )
        for s, r in zip(requests, ramp, strict=True)
    )
    result = RunResult(
        meta=meta(),
        requests=tuple(requests),
        total=total,
        ramp=tuple(ramp),
        steady_start_s=10.0,
        steady_end_s=60.0,
        timeline=tuple(timeline),
        failures=failures,
        locust_requests=locust_rows,
    )
    b = {
        "plans": budget(request_key(*catalogue.PLANS), "p95", "<", 300.0, "< 300ms"),
        "initiate": budget(initiate, "avg", "<", 2000.0, "< 2s"),
        "status": budget(request_key(*catalogue.STATUS), "p95", "<", 250.0, "< 250ms"),
        "webhook": budget(request_key(*catalogue.WEBHOOK_COMPLETED), "p95", "<", 150.0, "< 150ms"),
        "health": budget(request_key(*catalogue.HEALTH), "p95", "<", 100.0, "< 100ms"),
        "flow": budget(request_key(*catalogue.FLOW_CHECKOUT), "p95", "<", 5000.0, "< 5s"),
        "errors": budget(AGGREGATE_KEY, "error_rate", "<", 1.0, "< 1%"),
    }
    results = (
        BudgetResult(b["plans"], b["plans"].selector, "pass", 91.3, 300.0, 69.6, 85.0, 97.0),
        BudgetResult(b["initiate"], initiate, "pass", 402.0, 2000.0, 79.9, 390.0, 415.0),
        BudgetResult(
            b["status"], b["status"].selector, "fail", 231.0 * 1.2, 250.0, -10.9, 262.0, 291.0
        ),
        BudgetResult(
            b["webhook"],
            b["webhook"].selector,
            "pass",
            139.0,
            150.0,
            7.3,
            131.0,
            152.0,
            marginal=True,
        ),
        BudgetResult(b["health"], b["health"].selector, "pass", 4.1, 100.0, 95.9, 3.9, 4.3),
        BudgetResult(b["flow"], b["flow"].selector, "pass", 3900.0, 5000.0, 22.0, 3700.0, 4100.0),
        BudgetResult(b["errors"], AGGREGATE_KEY, "pass", 0.086, 1.0, 91.4),
    )
    verdict = Verdict(outcome="FAIL", results=results)
    budgets = Budgets(
        source="budgets.yaml", budgets=tuple(b.values()), warmup_s=5.0, expected_peak_rps=150.0
    )
    return result, verdict, budgets
