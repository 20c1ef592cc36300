"""How judging and reporting grow with the length of a run: 10 s, 5 min, 30 min and 4 h.

    .venv/bin/python benchmarks/judge_scale.py [--lengths 10s,5m,30m,4h] [--repeat 1]

For each length, builds a synthetic run folder (``tests/scale/synthetic.py``: seeded, the
plugin's own format, 2 s intervals, the 14 request names of the scenarios at PhonePe's
real timing with 100 users, all of them started within a second) and times the real CLI
on it, each in a child process: ``paybench check RUN`` (read, judge, summary.json and the
reports) and ``paybench report RUN`` (read, judge, the reports again). Wall time and the
child's peak resident memory (``os.wait4``'s rusage, per child) are printed as a table
with the machine it ran on. Every run builds the same data.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.profiles import parse_duration  # noqa: E402
from tests.scale.synthetic import build_run, scenario_shapes  # noqa: E402

USERS = 100


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{os.cpu_count()} cores ({model}), Python {sys.version.split()[0]}, load {load}"


def timed_child(args: list[str]) -> tuple[float, float, int]:
    """(wall seconds, peak RSS MiB, exit code) of one child process."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "COLUMNS": "120"},
    )
    # wait4 gives this child's own rusage (RUSAGE_CHILDREN would be the max over all).
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    if proc.returncode not in (0, 1):
        raise SystemExit(f"paybench {' '.join(args)} exited {proc.returncode}: {stderr[-2000:]}")
    return wall, usage.ru_maxrss / 1024.0, proc.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="10s,5m,30m,4h")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each command (median)")
    args = parser.parse_args()
    lengths = [(text, parse_duration(text, "--lengths")) for text in args.lengths.split(",")]
    shapes = scenario_shapes()

    print(f"machine: {machine()}")
    header = (
        "| run length | intervals | interval histograms | requests | paybench.hdr.json | build "
        "| check: wall | check: peak RSS | report: wall | report: peak RSS |"
    )
    print(header)
    print("|---" * 10 + "|")
    with tempfile.TemporaryDirectory(prefix="paybench-judge-scale-") as tmp:
        for text, seconds in lengths:
            run_dir = Path(tmp) / "runs" / f"20251126T090000Z-{int(seconds):06x}"
            started = time.perf_counter()
            run = build_run(
                run_dir, duration_s=seconds, users=USERS, spawn_rate=USERS, shapes=shapes
            )
            build_s = time.perf_counter() - started
            size_mib = (run_dir / "paybench.hdr.json").stat().st_size / 2**20
            budgets = str(run_dir / "budgets.yaml")
            checks = [timed_child(["check", str(run_dir), "--budgets", budgets])]
            checks += [
                timed_child(["check", str(run_dir), "--budgets", budgets])
                for _ in range(args.repeat - 1)
            ]
            reports = [timed_child(["report", str(run_dir)]) for _ in range(args.repeat)]
            check_s = statistics.median(c[0] for c in checks)
            check_mib = max(c[1] for c in checks)
            report_s = statistics.median(r[0] for r in reports)
            report_mib = max(r[1] for r in reports)
            print(
                f"| {text} | {run.intervals:,} | {run.histograms:,} | {run.requests:,} "
                f"| {size_mib:.1f} MiB | {build_s:.1f} s | {check_s:.1f} s | {check_mib:.0f} MiB "
                f"| {report_s:.1f} s | {report_mib:.0f} MiB |",
                flush=True,
            )
    print(f"machine after: {machine()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
