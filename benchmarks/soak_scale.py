"""How judging, reporting and recording grow with the length of a run: 10 s to 24 h.

    .venv/bin/python benchmarks/soak_scale.py [--cases 10s,5m,30m,4h,24h,4h:14:650]
        [--repeat 3] [--users 2700] [--master-intervals 43200] [--skip-master]

1. Judging and reporting. For each case, a synthetic run folder
   (``tests/scale/synthetic.py``: seeded, written through the plugin's own writer in the
   streamed format, 2 s intervals, at PhonePe's real timing with all users started at
   once): a length alone means the scenarios' 14 request names and one more, 15 in all,
   with ``--users`` users (2,700 make about 50 million requests a day); ``LENGTH:14:USERS``
   the 14 names with USERS users (``4h:14:650`` is 2 million requests in 4 h). Then the
   real CLI on it, each command in a child process, ``--repeat`` times: ``paybench check
   RUN`` (read, judge, summary.json and the reports) and ``paybench report RUN`` (read,
   judge, the reports again). The best wall time of the repeats, that child's CPU time and
   the highest peak resident memory (``os.wait4``'s rusage, per child), the file's size,
   the build time and the load average are printed as a table; then each length's cost
   above the shortest run's (start-up, imports and the charts: the same for any length)
   per thousand intervals more: the same for every length when the cost grows linearly
   with the intervals.
2. The Locust master's memory over a run. ``--master-intervals`` intervals of the same 15
   keys at the same load fed through the plugin's own `Aggregator` as its tick does (apply,
   a progress line's figures, flush to the streamed file) in a child process, which
   reports its resident memory (``/proc/self/statm``) after 1 %, 10 %, 50 % and all of the
   intervals.

Every run builds the same data; the machine it ran on is printed before and after.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.profiles import parse_duration  # noqa: E402

USERS = 2700
INTERVAL_S = 2.0
# One request name more than the scenarios send, so that a soak records 15: a second
# subscription read, a little busier than the webhooks.
EXTRA_NAME = ("GET", "/api/subscriptions/history", 50.0, 0.4, 0.01)


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


def timed_child(args: list[str]) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, peak RSS MiB) of one ``paybench`` child process."""
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
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024.0


def shapes() -> tuple:
    from tests.scale.synthetic import RequestShape, scenario_shapes

    request_type, name, median_ms, sigma, per_user = EXTRA_NAME
    return (
        *scenario_shapes(),
        RequestShape(request_type, name, median_ms, sigma, rps_per_user=per_user),
    )


def parse_case(text: str, users: int) -> tuple[str, float, int, int]:
    """``LENGTH`` or ``LENGTH:NAMES:USERS`` -> (label, seconds, names, users)."""
    length, *rest = text.split(":")
    seconds = parse_duration(length, "--cases")
    if not rest:
        return length, seconds, 15, users
    if len(rest) != 2 or rest[0] not in ("14", "15") or not rest[1].isdigit():
        raise SystemExit(f"--cases: {text!r} is not LENGTH or LENGTH:14:USERS (or :15:)")
    return (
        f"{length} ({rest[0]} names, {int(rest[1]):,} users)",
        seconds,
        int(rest[0]),
        int(rest[1]),
    )


def best(runs: list[tuple[float, float, float]]) -> tuple[float, float, float]:
    """The fastest run's wall and CPU time, and the highest peak memory of all runs."""
    wall, cpu, _ = min(runs)
    return wall, cpu, max(r[2] for r in runs)


def judging(cases: list[tuple[str, float, int, int]], repeat: int) -> None:
    from tests.scale.synthetic import build_run, scenario_shapes

    print(
        "| run | intervals | interval histograms | requests | paybench.hdr.json | build "
        "| check: wall (CPU) | check: peak RSS | report: wall (CPU) | report: peak RSS | load |"
    )
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|")
    rows = []
    with tempfile.TemporaryDirectory(prefix="paybench-soak-scale-") as tmp:
        for number, (label, seconds, names, users) in enumerate(cases):
            run_dir = Path(tmp) / "runs" / f"20251126T090000Z-{number:06x}"
            started = time.perf_counter()
            run = build_run(
                run_dir,
                duration_s=seconds,
                users=users,
                spawn_rate=users,
                shapes=shapes() if names == 15 else scenario_shapes(),
            )
            build_s = time.perf_counter() - started
            size_mib = (run_dir / "paybench.hdr.json").stat().st_size / 2**20
            budgets = str(run_dir / "budgets.yaml")
            load_before = os.getloadavg()[0]
            check = best(
                [timed_child(["check", str(run_dir), "--budgets", budgets]) for _ in range(repeat)]
            )
            report = best([timed_child(["report", str(run_dir)]) for _ in range(repeat)])
            load = f"{load_before:.1f}-{os.getloadavg()[0]:.1f}"
            if names == 15 and users == cases[0][3]:
                rows.append((label, run.intervals, check[0], report[0], check[1], report[1]))
            print(
                f"| {label} | {run.intervals:,} | {run.histograms:,} | {run.requests:,} "
                f"| {size_mib:.1f} MiB | {build_s:.1f} s | {check[0]:.1f} s ({check[1]:.1f} s) "
                f"| {check[2]:.0f} MiB | {report[0]:.1f} s ({report[1]:.1f} s) "
                f"| {report[2]:.0f} MiB | {load} |",
                flush=True,
            )
            # A day's folder is about 150 MiB: one at a time on the disk.
            for path in sorted(run_dir.rglob("*"), reverse=True):
                path.unlink() if path.is_file() else path.rmdir()
            run_dir.rmdir()
    if len(rows) > 1:
        # Over the shortest run (start-up, imports and the charts: the same for any length).
        print()
        print(
            f"cost above the {rows[0][0]} run, per 1,000 intervals more than it "
            "(linear in the intervals: the same for every length), wall (CPU)"
        )
        print("| run length | check | report |")
        print("|---|--:|--:|")
        _, base, check_0, report_0, check_cpu_0, report_cpu_0 = rows[0]
        for text, intervals, check_s, report_s, check_cpu, report_cpu in rows[1:]:
            more = (intervals - base) / 1000.0
            print(
                f"| {text} | {(check_s - check_0) / more:.2f} s "
                f"({(check_cpu - check_cpu_0) / more:.2f} s) "
                f"| {(report_s - report_0) / more:.2f} s "
                f"({(report_cpu - report_cpu_0) / more:.2f} s) |"
            )


# -- the master's memory ---------------------------------------------------------------------


def rss_mib() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def feed(intervals: int, users: int) -> None:
    """The child: ``intervals`` intervals of 15 keys through the plugin's Aggregator, as
    its tick does, streamed to a file; one JSON line per memory sample on stdout."""
    import numpy as np

    from harness.core import stats
    from harness.plugin import FLUSH_AFTER_S
    from harness.recording import HDR_FILE, Aggregator

    rng = np.random.default_rng(1)
    # Seeded pools of interval histograms per key, each of the samples a 2 s interval of
    # the soak holds (``--users`` users): drawing new ones every interval would time the
    # drawing. Some are empty, as the health checks' often are.
    pools = {
        (s.request_type, s.name): [
            stats.histogram_from_ms(np.exp(rng.normal(math.log(s.median_ms), s.sigma, n)))
            for n in rng.poisson((s.rps_per_user * users + s.fixed_rps) * INTERVAL_S, 32)
        ]
        for s in shapes()
    }
    marks = {max(1, intervals // 100), max(1, intervals // 10), intervals // 2, intervals}
    lag = math.ceil(FLUSH_AFTER_S / INTERVAL_S)
    first = 882_000_000
    with tempfile.TemporaryDirectory(prefix="paybench-master-feed-") as tmp:
        agg = Aggregator(INTERVAL_S)
        agg.stream_to(Path(tmp) / HDR_FILE)
        started = time.perf_counter()
        for i in range(intervals):
            index = first + i
            rows = []
            for (t, n), pool in pools.items():
                h = pool[i % len(pool)]
                if h.count:
                    sum_ns = int((h.mean_ms or 0.0) * 1e6) * h.count
                    rows.append([t, n, index, h.count, 0, 0, sum_ns, h.min_ns, h.max_ns, h.copy()])
            agg.apply(
                {
                    "process": "local",
                    "sent_epoch": (index + 1) * INTERVAL_S,
                    "entries": rows,
                    "cpu": [[(index + 1) * INTERVAL_S, 30.0, None]],
                }
            )
            agg.add_users((index + 1) * INTERVAL_S, users)
            agg.progress(index)
            agg.flush(index - lag)
            if i + 1 in marks:
                sample = {"intervals": i + 1, "rss_mib": round(rss_mib(), 1)}
                sample["seconds"] = round(time.perf_counter() - started, 1)
                print(json.dumps(sample), flush=True)
        times = {
            "test_start_epoch": first * INTERVAL_S,
            "test_stop_epoch": (first + intervals) * INTERVAL_S,
        }
        agg.finish(Path(tmp) / HDR_FILE, times)
        size = (Path(tmp) / HDR_FILE).stat().st_size / 2**20
        print(json.dumps({"file_mib": round(size, 1)}), flush=True)


def master(intervals: int, users: int) -> None:
    out = subprocess.run(
        [sys.executable, __file__, "--feed", str(intervals), "--users", str(users)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    samples = [json.loads(line) for line in out.stdout.splitlines()]
    print()
    print(f"master memory: {intervals:,} intervals of 15 keys through the plugin's Aggregator")
    print("| intervals fed | run length at 2 s | resident memory | seconds |")
    print("|--:|--:|--:|--:|")
    for s in samples:
        if "intervals" in s:
            hours = s["intervals"] * INTERVAL_S / 3600
            print(
                f"| {s['intervals']:,} | {hours:.1f} h | {s['rss_mib']:.0f} MiB | {s['seconds']} |"
            )
        else:
            print(f"streamed file: {s['file_mib']} MiB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="10s,5m,30m,4h,24h,4h:14:650")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each command (best)")
    parser.add_argument("--users", type=int, default=USERS)
    parser.add_argument("--master-intervals", type=int, default=43_200)
    parser.add_argument("--skip-master", action="store_true")
    parser.add_argument("--feed", type=int, help=argparse.SUPPRESS)  # the child of `master`
    args = parser.parse_args()
    if args.feed:
        feed(args.feed, args.users)
        return 0
    cases = [parse_case(text, args.users) for text in args.cases.split(",")]
    print(f"machine: {machine()}")
    print(f"load: {args.users:,} users, 15 request names, {INTERVAL_S:g} s intervals")
    judging(cases, args.repeat)
    if not args.skip_master:
        master(args.master_intervals, args.users)
    print(f"machine after: {machine()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
