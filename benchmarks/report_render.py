"""How long rendering the run report takes for a run of one million requests.

    .venv/bin/python benchmarks/report_render.py [--requests 1000000] [--repeat 5]

Builds a RunResult of 10 request names (one of them the checkout flow) with exact
histograms holding ``--requests`` latencies in all, 300 intervals of 2 s with their own
histograms and percentiles, failures and budgets; then times ``write_reports`` (the
context, the charts, report.html, summary.md and junit.xml, written to a temporary
folder). The target is under 1.5 s. Seeded: every run builds the same data.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from harness.core import catalogue
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
from harness.core.stats import merge_histograms, new_histogram

INTERVALS = 300
INTERVAL_S = 2.0
NAMES = (  # (type, name, median ms, lognormal sigma, share of the requests)
    (*catalogue.PLANS, 40.0, 0.5, 0.20),
    (*catalogue.INITIATE, 380.0, 0.35, 0.08),
    (*catalogue.STATUS, 120.0, 0.4, 0.22),
    (*catalogue.SUBSCRIPTION, 60.0, 0.4, 0.08),
    (*catalogue.WEBHOOK_COMPLETED, 70.0, 0.4, 0.06),
    (*catalogue.WEBHOOK_FAILED, 75.0, 0.4, 0.02),
    (*catalogue.HEALTH, 2.5, 0.3, 0.12),
    (*catalogue.HEALTH_DATABASE, 4.0, 0.3, 0.10),
    (*catalogue.HEALTH_REDIS, 3.0, 0.3, 0.06),
    (*catalogue.FLOW_CHECKOUT, 2600.0, 0.25, 0.06),
)


def build_run(total_requests: int, seed: int = 1) -> tuple[RunResult, Verdict, Budgets]:
    rng = np.random.default_rng(seed)
    duration_s = INTERVALS * INTERVAL_S
    requests: list[RequestStats] = []
    pcts_by_interval: list[dict[str, dict[str, float]]] = [{} for _ in range(INTERVALS)]
    per_interval_requests = np.zeros(INTERVALS, dtype=np.int64)
    for rtype, name, median_ms, sigma, share in NAMES:
        n = int(total_requests * share)
        latencies = rng.lognormal(np.log(median_ms), sigma, n)
        chunks = np.array_split(latencies, INTERVALS)
        intervals = []
        key = request_key(rtype, name)
        for i, chunk in enumerate(chunks):
            h = new_histogram()
            h.record_ms_array(chunk)
            intervals.append(h)
            per_interval_requests[i] += chunk.size
            p50, p95, p99 = h.percentiles_ms((50.0, 95.0, 99.0))
            pcts_by_interval[i][key] = {"p50": p50, "p95": p95, "p99": p99}
        requests.append(
            RequestStats(
                request_type=rtype,
                name=name,
                count=n,
                failures=int(n * 0.001),
                duration_s=duration_s,
                avg_ms=float(latencies.mean()),
                min_ms=float(latencies.min()),
                max_ms=float(latencies.max()),
                histogram=merge_histograms(intervals),
                interval_histograms=tuple(intervals),
            )
        )
    plain = [s for s in requests if s.request_type != "FLOW"]
    count = sum(s.count for s in plain)
    total = RequestStats(
        request_type="",
        name=AGGREGATE_KEY,
        count=count,
        failures=sum(s.failures for s in plain),
        duration_s=duration_s,
        avg_ms=sum(s.avg_ms * s.count for s in plain) / count,
        min_ms=min(s.min_ms for s in plain),
        max_ms=max(s.max_ms for s in plain),
        histogram=merge_histograms(s.histogram for s in plain),
    )
    timeline = tuple(
        IntervalPoint(
            start_s=i * INTERVAL_S,
            duration_s=INTERVAL_S,
            users=200,
            requests=int(per_interval_requests[i]),
            failures=int(per_interval_requests[i] // 1000),
            percentiles_ms=pcts_by_interval[i],
        )
        for i in range(INTERVALS)
    )
    failures = tuple(
        FailureRecord(request_key(*catalogue.INITIATE), f"HTTPError('50{i} Server Error')",
                      100 - i, 10.0 * i, duration_s - i)
        for i in range(5)
    )  # fmt: skip
    meta = RunMeta(
        run_id="20250301T020000Z-bench0",
        profile="soak",
        host="http://127.0.0.1:8321",
        target="reference",
        users=200,
        spawn_rate=20.0,
        run_time_s=duration_s,
        workers=2,
        started_at="2025-03-01T02:00:00Z",
        ended_at="2025-03-01T02:10:00Z",
        locust_version="2.47.0",
        paybench_version="0.1.0",
        git_commit="0123456789abcdef0123456789abcdef01234567",
    )
    result = RunResult(
        meta=meta,
        requests=tuple(requests),
        total=total,
        steady_start_s=30.0,
        steady_end_s=duration_s,
        timeline=timeline,
        failures=failures,
    )
    budgets = tuple(
        Budget(f'requests."{s.key}".p95', s.key, "p95", "<", 3 * s.percentile_ms(95), "< ...")
        for s in requests
    )
    results = tuple(
        BudgetResult(b, b.selector, "pass", s.percentile_ms(95), b.limit, 66.7)
        for b, s in zip(budgets, requests, strict=True)
    )
    return result, Verdict("PASS", results), Budgets(source="budgets.yaml", budgets=budgets)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    started = time.perf_counter()
    from harness.report import write_reports  # the import (matplotlib, jinja2) is counted apart

    import_s = time.perf_counter() - started
    result, verdict, budgets = build_run(args.requests)
    recorded = sum(s.histogram.count for s in result.requests)
    print(
        f"run: {recorded:,} requests recorded in {len(result.requests)} names, "
        f"{len(result.timeline)} intervals, "
        f"{sum(len(s.interval_histograms) for s in result.requests):,} interval histograms"
    )
    print(f"import harness.report: {import_s:.2f} s")
    times = []
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as folder:
        for i in range(args.repeat):
            started, cpu = time.perf_counter(), time.process_time()
            files = write_reports(Path(folder), result, verdict, budgets)
            times.append(time.perf_counter() - started)
            cpu = time.process_time() - cpu
            print(f"write_reports #{i + 1}: {times[-1]:.2f} s ({cpu:.2f} s of CPU)")
        sizes = ", ".join(
            f"{p.name} {p.stat().st_size / 1024:,.0f} KiB"
            for p in (files.html, files.markdown, files.junit)
        )
    print(f"files: {sizes}")
    print(
        f"write_reports: best {min(times):.2f} s, median {statistics.median(times):.2f} s "
        f"(target < 1.5 s); load average {load:.2f} before, {os.getloadavg()[0]:.2f} after"
    )


if __name__ == "__main__":
    main()
