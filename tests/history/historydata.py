"""Literal runs for the history tests: real histograms of synthetic latencies, fixed seeds."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from harness.core import stats
from harness.core.model import AGGREGATE_KEY, RequestStats, RunMeta, RunResult

PLANS = "GET /api/plans"
INITIATE = "POST /api/payments/v2/initiate"
# Median latency (ms) of each request name at scale 1.
MEDIANS_MS = {PLANS: 40.0, INITIATE: 300.0}
INTERVAL_S = 2.0


def request_stats(
    key: str, intervals_ms: list[np.ndarray], failures: int = 0, interval_s: float = INTERVAL_S
) -> RequestStats:
    """A RequestStats whose histograms hold exactly ``intervals_ms``."""
    request_type, name = key.split(" ", 1) if key != AGGREGATE_KEY else ("", AGGREGATE_KEY)
    hists = tuple(stats.histogram_from_ms(v) for v in intervals_ms)
    values = np.concatenate(intervals_ms) if intervals_ms else np.zeros(0)
    return RequestStats(
        request_type=request_type,
        name=name,
        count=int(values.size),
        failures=failures,
        duration_s=len(intervals_ms) * interval_s,
        avg_ms=float(values.mean()) if values.size else None,
        min_ms=float(values.min()) if values.size else None,
        max_ms=float(values.max()) if values.size else None,
        histogram=stats.merge_histograms(hists),
        interval_histograms=hists,
    )


def make_run(
    run_id: str,
    *,
    seed: int,
    started_at: str | None = None,
    profile: str | None = "nightly",
    users: int | None = 10,
    scenario_version: str | None = "1",
    target: str = "reference",
    host: str = "http://127.0.0.1:8089",
    scale: Mapping[str, float] | float = 1.0,
    intervals: int = 10,
    per_interval: int = 60,
    sigma: float = 0.35,
    failures: Mapping[str, int] | None = None,
    incomplete: bool = False,
    git_commit: str | None = "abc1234",
) -> RunResult:
    """A run of two request names; ``scale`` multiplies latencies (a slowdown)."""
    rng = np.random.default_rng(seed)
    requests = []
    per_key: dict[str, list[np.ndarray]] = {}
    for key, median in MEDIANS_MS.items():
        factor = scale if isinstance(scale, float | int) else scale.get(key, 1.0)
        per_key[key] = [
            median * factor * rng.lognormal(0.0, sigma, per_interval) for _ in range(intervals)
        ]
        requests.append(request_stats(key, per_key[key], (failures or {}).get(key, 0)))
    merged = [np.concatenate([per_key[k][i] for k in per_key]) for i in range(intervals)]
    total = request_stats(AGGREGATE_KEY, merged, sum((failures or {}).values()))
    meta = RunMeta(
        run_id=run_id,
        profile=profile,
        host=host,
        target=target,  # type: ignore[arg-type]
        users=users,
        spawn_rate=5.0,
        run_time_s=intervals * INTERVAL_S,
        workers=0,
        started_at=started_at or f"2025-11-{1 + seed % 28:02d}T02:00:{seed % 60:02d}Z",
        ended_at=None,
        locust_version="2.47.0",
        paybench_version="0.1.0",
        git_commit=git_commit,
        scenario_version=scenario_version,
        extra={"note": "synthetic"},
    )
    return RunResult(
        meta=meta,
        requests=tuple(requests),
        total=total,
        steady_start_s=2.0,
        steady_end_s=2.0 + intervals * INTERVAL_S,
        incomplete=incomplete,
        incomplete_reason="interrupted" if incomplete else None,
    )


def nightly_id(i: int) -> str:
    """Run ids sortable like real ones: ``20251101T020000Z-00000i``."""
    return f"202511{1 + i // 24:02d}T{i % 24:02d}0000Z-{i:06x}"


def nightly_start(i: int) -> str:
    return f"2025-11-{1 + i // 24:02d}T{i % 24:02d}:00:00Z"
