"""The Locust master's memory over a real run: early, and late, at a short interval.

    .venv/bin/python benchmarks/master_memory.py [--run-time 600] [--interval 0.1]
        [--users 6] [--workers 1]

``paybench run`` against the reference target on loopback (no ``--host``), with Locust's
master and ``--workers`` worker processes (``--processes``) and ``PAYBENCH_INTERVAL``
set to ``--interval``: 600 s at 0.1 s makes 6,000 intervals, the interval count of 3 h
20 min at the default 2 s, each one merged from the workers' reports by the master,
streamed to disk and forgotten. The master's resident memory (``/proc/<pid>/status``
VmRSS of the ``locust`` process that started the workers) is sampled every 2 s; printed:
its value once the users have been running for 10 % of the run, at 50 % and at 95 %,
and the growth per 1,000 intervals between the first and the last of these. Flat memory
is a growth of a few kB per 1,000 intervals at most. The run's own verdict does not matter
here (a loaded machine may make it unreliable); the recording must be complete.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def find_master(paybench: psutil.Process) -> psutil.Process | None:
    """The locust process among paybench's children that has locust children (workers)."""
    try:
        for child in paybench.children(recursive=True):
            cmd = " ".join(child.cmdline())
            if "locust" in cmd and "--paybench-dir" in cmd and child.children():
                return child
    except psutil.Error:
        return None
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-time", type=int, default=600, help="seconds")
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--users", type=int, default=6)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    print(f"load average before: {' / '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="paybench-master-memory-") as tmp:
        out = Path(tmp) / "reports"
        command = [
            sys.executable, "-m", "harness", "run", "--users", str(args.users),
            "--spawn-rate", str(args.users), "--run-time", f"{args.run_time}s",
            "--workers", str(args.workers), "--out", str(out), "--no-history",
        ]  # fmt: skip
        env = {**os.environ, "PAYBENCH_INTERVAL": f"{args.interval:g}", "COLUMNS": "120"}
        proc = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        paybench = psutil.Process(proc.pid)
        samples: list[tuple[float, float]] = []  # (seconds since the master started, MiB)
        master = None
        started = 0.0
        while proc.poll() is None:
            if master is None:
                master = find_master(paybench)
                started = time.monotonic()
            if master is not None:
                value = rss_mib(master.pid)
                if value is not None:
                    samples.append((time.monotonic() - started, value))
            time.sleep(2.0)
        code = proc.wait()
        runs = sorted((out / "runs").iterdir()) if (out / "runs").is_dir() else []
        if not samples or not runs:
            print(f"no samples (paybench run exited {code}; is the machine able to run it?)")
            return 3
        head = json.loads((runs[0] / "paybench.hdr.json").open().readline())
        lines = sum(1 for _ in (runs[0] / "paybench.hdr.json").open())
        summary = runs[0] / "summary.json"
        outcome = (
            json.loads(summary.read_text())["verdict"]["outcome"] if summary.is_file() else "-"
        )
    intervals = args.run_time / args.interval
    print(
        f"paybench run: {args.users} users, {args.workers} worker(s), {args.run_time} s at "
        f"{head['interval_s']:g} s intervals ({intervals:,.0f} intervals, as many as "
        f"{intervals * 2 / 3600:.1f} h at 2 s); exit {code} ({outcome}); "
        f"paybench.hdr.json: {lines:,} lines"
    )
    print("| point of the run | seconds | intervals so far | master RSS |")
    print("|---|--:|--:|--:|")
    marks = []
    for share in (0.10, 0.50, 0.95):
        at = share * args.run_time
        second, value = min(samples, key=lambda s: abs(s[0] - at))
        marks.append((second, value))
        print(f"| {share:.0%} | {second:.0f} | {second / args.interval:,.0f} | {value:.1f} MiB |")
    (t0, m0), (t1, m1) = marks[0], marks[-1]
    per_1000 = (m1 - m0) * 1024 / max(1.0, (t1 - t0) / args.interval / 1000)
    print(f"growth from 10 % to 95 %: {m1 - m0:+.1f} MiB, {per_1000:+.1f} KiB per 1,000 intervals")
    print(f"load average after: {' / '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
