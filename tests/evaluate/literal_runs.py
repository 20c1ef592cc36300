"""Literal runs for the judge: real histograms filled with known latencies."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from harness.core import stats
from harness.core.model import AGGREGATE_KEY, RequestStats, RunMeta, RunResult

META = RunMeta(
    run_id="20250101T000000Z-abcdef",
    profile="nightly",
    host="http://127.0.0.1:8000",
    target="reference",
    users=10,
    spawn_rate=10.0,
    run_time_s=10.0,
    workers=1,
    started_at=None,
    ended_at=None,
    locust_version="2.47.0",
    paybench_version="0.1.0",
    git_commit=None,
)


def request(
    key: str,
    values_ms: Sequence[float],
    failures: int = 0,
    duration_s: float = 10.0,
    intervals: int = 1,
) -> RequestStats:
    """A request key's steady-state stats holding exactly ``values_ms``."""
    method, _, name = key.partition(" ")
    values = np.asarray(values_ms, dtype=np.float64)
    return RequestStats(
        request_type=method,
        name=name,
        count=len(values),
        failures=failures,
        duration_s=duration_s,
        avg_ms=float(values.mean()) if len(values) else None,
        min_ms=float(values.min()) if len(values) else None,
        max_ms=float(values.max()) if len(values) else None,
        histogram=stats.histogram_from_ms(values),
        interval_histograms=tuple(
            stats.histogram_from_ms(chunk) for chunk in np.array_split(values, intervals)
        ),
    )


def total_of(requests: Sequence[RequestStats], duration_s: float = 10.0) -> RequestStats:
    recorded = [r.histogram for r in requests if isinstance(r.histogram, stats.Histogram)]
    merged = stats.merge_histograms(recorded) if recorded else None
    count = sum(r.count for r in requests)
    sum_ms = sum((r.avg_ms or 0.0) * r.count for r in requests)
    return RequestStats(
        request_type="",
        name=AGGREGATE_KEY,
        count=count,
        failures=sum(r.failures for r in requests),
        duration_s=duration_s,
        avg_ms=sum_ms / count if count else None,
        min_ms=min((r.min_ms for r in requests if r.min_ms is not None), default=None),
        max_ms=max((r.max_ms for r in requests if r.max_ms is not None), default=None),
        histogram=merged,
    )


def run(
    *requests: RequestStats,
    ramp: Sequence[RequestStats] = (),
    incomplete: bool = False,
    incomplete_reason: str | None = None,
    unreliable: Sequence[str] = (),
) -> RunResult:
    return RunResult(
        meta=META,
        requests=tuple(requests),
        total=total_of(requests),
        ramp=tuple(ramp),
        incomplete=incomplete,
        incomplete_reason=incomplete_reason,
        unreliable_reasons=tuple(unreliable),
    )
