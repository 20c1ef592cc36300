"""The Locust master's CPU as workers grow: 1, 2, 4, 8 and 16 worker processes.

    nice -n -15 .venv/bin/python benchmarks/master_report_cost.py [--run-time 20]
        [--users-per-worker 2] [--workers 1,2,4,8,16]
    nice -n -15 .venv/bin/python benchmarks/master_report_cost.py --synthetic

Real processes (the default): for each worker count N, the reference target on loopback,
`paybench run --master --expect-workers N` and N `paybench worker` processes on this
machine, at a light load (``--users-per-worker`` closed-loop users each, the smoke
profile's mix). The master's Locust process is sampled with psutil every 0.25 s; its CPU
is taken from the first request to the stop, so start-up and imports are left out. Printed
per N: the master's CPU per worker report (N workers report every 3 s), per merged
interval (the histogram interval), its share of one core, and a least-squares line of that
share over N, projected to 100 workers. Every process it starts it stops by PID.

``--synthetic``: no Locust process runs; the real wire payloads (``plugin._delta_row`` with
``encode=True``, ``--keys`` request keys, ``--rps-per-worker`` requests/s of seeded
lognormal latencies) go through what the master does with each report
(``Aggregator.apply`` and ``distributed.payload_counts``), timed with
``time.process_time``, median of ``--cycles`` report cycles: the merge cost alone, at
loads this machine could not generate.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness import distributed, plugin  # noqa: E402
from harness.locust_run import free_loopback_port  # noqa: E402
from harness.recording import Aggregator, load_recording  # noqa: E402
from harness.runfolder import HDR_FILE, LIVE_FILE  # noqa: E402
from harness.target.process import ReferenceTarget  # noqa: E402

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


def synthetic(args: argparse.Namespace) -> None:
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


def _locust_master(paybench: psutil.Process) -> psutil.Process | None:
    with contextlib.suppress(psutil.NoSuchProcess):
        for child in paybench.children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                if "locust" in " ".join(child.cmdline()):
                    return child
    return None


def _requests_seen(out: Path) -> bool:
    for live in out.glob(f"runs/*/{LIVE_FILE}"):
        for line in live.read_text().splitlines():
            with contextlib.suppress(ValueError):
                if json.loads(line).get("requests", 0) > 0:
                    return True
    return False


def _kill_tree(pid: int) -> None:
    with contextlib.suppress(psutil.NoSuchProcess):
        parent = psutil.Process(pid)
        for child in parent.children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                child.send_signal(signal.SIGKILL)
        parent.send_signal(signal.SIGKILL)


def one_cluster(workers: int, args: argparse.Namespace, tmp: Path) -> dict:
    """Master CPU of one run with ``workers`` worker processes (a dict of figures)."""
    out = tmp / f"w{workers}"
    port = free_loopback_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYBENCH_TEST_")}
    logs = []
    procs: list[subprocess.Popen] = []
    with ReferenceTarget() as target:
        try:
            log = open(tmp / f"master{workers}.log", "w")  # closed below
            logs.append(log)
            master = subprocess.Popen(
                [sys.executable, "-m", "harness", "run", "--master",
                 "--master-bind", f"127.0.0.1:{port}", "--expect-workers", str(workers),
                 "--expect-workers-timeout", "120s", "--host", target.url,
                 "--out", str(out), "--no-history", "--run-time", f"{args.run_time}s",
                 "--users", str(workers * args.users_per_worker),
                 "--spawn-rate", str(max(10, workers * args.users_per_worker))],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
            procs.append(master)
            for _ in range(workers):
                wlog = open(tmp / f"worker{workers}-{len(procs)}.log", "w")  # closed below
                logs.append(wlog)
                command = [
                    sys.executable,
                    "-m",
                    "harness",
                    "worker",
                    "--master",
                    f"127.0.0.1:{port}",
                ]
                procs.append(
                    subprocess.Popen(
                        command, cwd=ROOT, env=env, stdout=wlog, stderr=subprocess.STDOUT
                    )
                )
            paybench = psutil.Process(master.pid)
            locust = None
            first: tuple[float, float] | None = None
            last: tuple[float, float] | None = None
            deadline = time.monotonic() + args.run_time + 180
            while master.poll() is None and time.monotonic() < deadline:
                locust = locust or _locust_master(paybench)
                if locust is not None:
                    with contextlib.suppress(psutil.NoSuchProcess):
                        t = locust.cpu_times()
                        sample = (time.monotonic(), t.user + t.system)
                        if first is None and _requests_seen(out):
                            first = sample
                        if first is not None:
                            last = sample
                time.sleep(0.25)
            code = master.wait(timeout=60)
            for proc in procs[1:]:
                # A worker still up a minute after its master is stopped in `finally`.
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=60)
        finally:
            for proc in procs:
                if proc.poll() is None:
                    _kill_tree(proc.pid)
            for f in logs:
                f.close()
    run_dir = next(iter(sorted(out.glob("runs/*"))))
    facts = distributed.read_facts(run_dir) or {}
    interval_s = load_recording(run_dir / HDR_FILE).interval_s
    if first is None or last is None or last[0] <= first[0]:
        raise SystemExit(f"{workers} workers: no master CPU window (exit {code}, {run_dir})")
    window_s, cpu_s = last[0] - first[0], last[1] - first[1]
    reports = workers * window_s / REPORT_INTERVAL_S
    requests = sum(w.get("requests", 0) for w in facts.get("workers", []))
    return {
        "workers": workers,
        "exit": code,
        "window_s": window_s,
        "cpu_s": cpu_s,
        "share_pct": 100.0 * cpu_s / window_s,
        "per_report_ms": 1e3 * cpu_s / reports,
        "per_interval_ms": 1e3 * cpu_s / (window_s / interval_s),
        "requests": requests,
        "interval_s": interval_s,
    }


def real(args: argparse.Namespace) -> None:
    counts = [int(n) for n in args.workers.split(",")]
    print(
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; "
        f"{args.users_per_worker} users per worker, {args.run_time:g} s per run"
    )
    print(
        f"{'workers':>7} {'exit':>4} {'requests':>8} {'window s':>8} {'master CPU s':>12} "
        f"{'CPU/report':>11} {'CPU/interval':>12} {'core share':>10}"
    )
    rows = []
    tmp = tempfile.mkdtemp(prefix="paybench-master-cost-")  # kept: the logs of every process
    print(f"logs and run folders in {tmp}")
    for n in counts:
        r = one_cluster(n, args, Path(tmp))
        rows.append(r)
        print(
            f"{n:>7} {r['exit']:>4} {r['requests']:>8} {r['window_s']:>8.1f} "
            f"{r['cpu_s']:>12.2f} {r['per_report_ms']:>8.2f} ms "
            f"{r['per_interval_ms']:>9.1f} ms {r['share_pct']:>9.1f} %",
            flush=True,
        )
    if len(rows) >= 2:
        xs, ys = [r["workers"] for r in rows], [r["share_pct"] for r in rows]
        slope, intercept = np.polyfit(xs, ys, 1)
        print(
            f"core share ~ {intercept:.2f} % + {slope:.3f} % per worker (least squares); "
            f"projected at 100 workers: {intercept + 100 * slope:.1f} % of one core "
            f"({(intercept + 100 * slope) * rows[0]['interval_s'] * 10:.0f} ms per "
            f"{rows[0]['interval_s']:g}-s interval)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synthetic", action="store_true")
    parser.add_argument("--workers", default="1,2,4,8,16")
    parser.add_argument("--run-time", type=float, default=20.0)
    parser.add_argument("--users-per-worker", type=int, default=2)
    parser.add_argument("--rps-per-worker", type=float, default=2000.0)
    parser.add_argument("--keys", type=int, default=12)
    parser.add_argument("--cycles", type=int, default=15)
    args = parser.parse_args()
    if args.synthetic:
        synthetic(args)
    else:
        real(args)


if __name__ == "__main__":
    main()
