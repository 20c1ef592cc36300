"""The Locust master's CPU per worker report, for 1, 2, 4, 8 and 16 worker processes.

    .venv/bin/python benchmarks/master_report_cost.py [--rps-per-worker 2000] [--keys 12]

What the master of a distributed run does with every worker report (each worker sends one
every 3 s): harness.plugin's ``_on_worker_report`` merges the payload into the Aggregator
(every row's HDR histogram decoded and added), and harness.distributed counts its rows for
the end-of-run totals. The payloads are the real wire format (``plugin._delta_row`` with
``encode=True``): per worker and report, ``--keys`` request keys over the two 2-s intervals
a 3-s report spans, ``--rps-per-worker`` requests/s of seeded lognormal latencies. Timed
with ``time.process_time`` in this one process, median of ``--cycles`` report cycles; no
Locust process runs. Printed: CPU per report, and the share of one core the master spends
on reports at Locust's 3-s report interval.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness import distributed, plugin  # noqa: E402
from harness.recording import Aggregator  # noqa: E402

REPORT_INTERVAL_S = 3.0  # Locust's WORKER_REPORT_INTERVAL
INTERVAL_S = 2.0


def payload(worker: int, cycle: int, keys: int, rps: float, rng: np.random.Generator) -> dict:
    per_row = max(1, int(rps * REPORT_INTERVAL_S / (keys * 2)))
    first = int(cycle * REPORT_INTERVAL_S / INTERVAL_S)
    rows = []
    for k in range(keys):
        for index in (first, first + 1):
            times = list(rng.lognormal(np.log(150.0), 0.5, per_row))
            rows.append(plugin._delta_row(("GET", f"/key/{k}"), index, [times], 0, 0, True))
    return {
        "process": f"worker-{worker}",
        "sent_epoch": time.time(),
        "entries": rows,
        "paced": [],
        "failures": [],
        "cpu": [[time.time(), 50.0, 55.0]],
        "paced_classes": {},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rps-per-worker", type=float, default=2000.0)
    parser.add_argument("--keys", type=int, default=12)
    parser.add_argument("--cycles", type=int, default=15)
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    print(
        f"{args.keys} keys, {args.rps_per_worker:g} requests/s per worker, "
        f"a report every {REPORT_INTERVAL_S:g} s per worker, median of {args.cycles} cycles"
    )
    print(f"{'workers':>7} {'rows/report':>11} {'CPU/report':>11} {'master CPU on reports':>22}")
    for workers in (1, 2, 4, 8, 16):
        aggregator = Aggregator(INTERVAL_S)
        seen = {f"c{w}": distributed.WorkerSeen(f"c{w}", w, 0.0) for w in range(workers)}
        per_report = []
        rows = 0
        for cycle in range(args.cycles):
            batch = [payload(w, cycle, args.keys, args.rps_per_worker, rng) for w in range(workers)]
            rows = len(batch[0]["entries"])
            start = time.process_time()
            for w, p in enumerate(batch):
                aggregator.apply(p)  # what plugin._on_worker_report does
                count, cut_off = distributed.payload_counts(p)
                seen[f"c{w}"].requests += count
                seen[f"c{w}"].cut_off += cut_off
            per_report.append((time.process_time() - start) / workers)
        cost = statistics.median(per_report)
        share = 100.0 * cost * workers / REPORT_INTERVAL_S
        print(f"{workers:>7} {rows:>11} {cost * 1e3:>8.2f} ms {share:>20.2f} %")


if __name__ == "__main__":
    main()
