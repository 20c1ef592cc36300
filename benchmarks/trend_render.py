"""Benchmark: the trend report over 1,000 stored runs must render in under 10 seconds.

Fills a temporary history (SQLite, through HistoryStore) with 1,000 synthetic runs of every
request name of the scenarios (real HDR histograms, 3 % run-to-run noise, a +15 % step in
payment initiation at run 600, a brief error burst), then times ``trend_report`` with
``--last 1000``: reading the history, change-point detection on every series, the charts
and both files. Run:

    .venv/bin/python benchmarks/trend_render.py [--runs 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from harness.commands.trend import trend_report
from harness.config import load_budgets
from harness.core import stats
from harness.core.catalogue import ALL, INITIATE
from harness.core.model import AGGREGATE_KEY, RequestStats, RunMeta, RunResult, request_key
from harness.store import HistoryStore

TARGET_S = 10.0
ROOT = Path(__file__).resolve().parents[1]
INTERVALS = 5
PER_INTERVAL = 40
INTERVAL_S = 2.0


def _request(
    key: str, rtype: str, name: str, chunks: list[np.ndarray], failures: int
) -> RequestStats:
    hists = tuple(stats.histogram_from_ms(c) for c in chunks)
    values = np.concatenate(chunks)
    return RequestStats(
        request_type=rtype,
        name=name,
        count=int(values.size),
        failures=failures,
        duration_s=len(chunks) * INTERVAL_S,
        avg_ms=float(values.mean()),
        min_ms=float(values.min()),
        max_ms=float(values.max()),
        histogram=stats.merge_histograms(hists),
        interval_histograms=hists,
    )


def synthetic_run(i: int, rng: np.random.Generator) -> RunResult:
    """Run ``i`` of the series: every request name, one step and one error burst."""
    requests = []
    all_chunks: list[list[np.ndarray]] = [[] for _ in range(INTERVALS)]
    total_failures = 0
    run_factor = 1.0 + 0.03 * rng.standard_normal()
    for n, (rtype, name) in enumerate(ALL):
        median = 20.0 + 25.0 * n
        if (rtype, name) == INITIATE and i >= 600:
            median *= 1.15
        chunks = [
            median * run_factor * rng.lognormal(0.0, 0.3, PER_INTERVAL) for _ in range(INTERVALS)
        ]
        failures = int(rng.poisson(8.0)) if 300 <= i < 305 else 0
        total_failures += failures
        requests.append(_request(request_key(rtype, name), rtype, name, chunks, failures))
        for k, c in enumerate(chunks):
            all_chunks[k].append(c)
    total = _request(
        AGGREGATE_KEY, "", AGGREGATE_KEY, [np.concatenate(c) for c in all_chunks], total_failures
    )
    day, hour = divmod(i, 24)
    meta = RunMeta(
        run_id=f"2025{1 + day // 28:02d}{1 + day % 28:02d}T{hour:02d}0000Z-{i:06x}",
        profile="nightly",
        host="http://127.0.0.1:8089",
        target="reference",
        users=50,
        spawn_rate=10.0,
        run_time_s=INTERVALS * INTERVAL_S,
        workers=2,
        started_at=f"2025-{1 + day // 28:02d}-{1 + day % 28:02d}T{hour:02d}:00:00Z",
        ended_at=None,
        locust_version="2.47.0",
        paybench_version="0.1.0",
        git_commit=f"{i:040x}",
        scenario_version="1",
    )
    return RunResult(
        meta=meta, requests=tuple(requests), total=total, steady_end_s=INTERVALS * INTERVAL_S
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    budgets = load_budgets(ROOT / "budgets.yaml", profile="nightly")
    with tempfile.TemporaryDirectory(prefix="paybench-bench-") as tmp:
        history = Path(tmp) / "history.sqlite"
        store = HistoryStore(history)
        rng = np.random.default_rng(1)
        start = time.perf_counter()
        for i in range(args.runs):
            store.add_run(synthetic_run(i, rng), None)
        fill_s = time.perf_counter() - start
        size_mb = history.stat().st_size / 1e6
        print(
            f"history: {args.runs} runs x {len(ALL) + 1} request names, {size_mb:.1f} MB, "
            f"filled in {fill_s:.1f} s"
        )
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            html, md = trend_report(
                out_dir=Path(tmp) / "trend", history=history, last=args.runs, budgets=budgets
            )
            times.append(time.perf_counter() - start)
        best, worst = min(times), max(times)
        print(
            f"trend report over {args.runs} runs: best {best:.2f} s, worst {worst:.2f} s "
            f"of {args.repeat} (target < {TARGET_S:.0f} s); "
            f"trend.html {html.stat().st_size / 1e6:.2f} MB, trend.md "
            f"{md.stat().st_size / 1e3:.0f} kB"
        )
    return 0 if worst < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
