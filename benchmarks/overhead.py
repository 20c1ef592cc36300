"""What paybench's recording costs the load generator: requests/s with and without it.

    .venv/bin/python benchmarks/overhead.py [--pairs 5] [--seconds 10] [--users 50]

A bare FastHttpUser (one GET, no wait) against a fast loopback server
(tests/plugin/loopback_server.py, no delay), one Locust process, so the generator's CPU is
the limit. The same locustfile runs without the plugin and with it (imported, and
``--paybench-dir`` set); the two runs of a pair are back to back and their order alternates
from pair to pair (ABBA), so drifts of the machine cancel out. Requests/s come from the
server's count over a steady window (a warm-up after the first request, before the
stop); Locust's CPU time in the same window gives requests per CPU-second as well, the
figure that other load on the machine disturbs least. Prints every pair and the median
ratios with/without; the target for requests/s is at least 0.97 (exit status 1 below
it). With two cores or more, Locust is pinned to the first and the server to the second
(less scheduler noise).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
SERVER = ROOT / "tests" / "plugin" / "loopback_server.py"
TARGET_RATIO = 0.97
WARMUP_S = 2.0

LOCUSTFILE = """
import os

from locust import FastHttpUser, task

if os.environ.get("OVERHEAD_WITH_PAYBENCH") == "1":
    from harness import plugin  # noqa: F401


class Bare(FastHttpUser):
    @task
    def root(self):
        self.client.get("/")
"""


def one_run(
    locustfile: Path,
    url: str,
    work: Path,
    with_paybench: bool,
    seconds: int,
    users: int,
    pin: bool,
) -> tuple[float, float, float]:
    """(requests/s, requests per CPU-second of Locust, Locust's CPU %) over a steady window.

    The window starts after a warm-up (users spawned, connections open) and ends before the
    stop; requests are what the server received in it, CPU is Locust's in it.
    """
    work.mkdir(parents=True)
    cmd = [
        sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "--host", url,
        "-u", str(users), "-r", str(users), "-t", f"{math.ceil(seconds + WARMUP_S + 2)}s",
        "--only-summary", "--exit-code-on-error", "0",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYBENCH_")}
    env["PYTHONPATH"] = str(ROOT)
    if with_paybench:
        cmd += ["--paybench-dir", str(work / "run")]
        env["OVERHEAD_WITH_PAYBENCH"] = "1"
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _pin(proc.pid, 0, pin)
        probe = psutil.Process(proc.pid)
        _wait_for_load(url, proc)
        time.sleep(WARMUP_S)
        first = (_served(url), sum(probe.cpu_times()[:2]), time.monotonic())
        time.sleep(seconds)
        last = (_served(url), sum(probe.cpu_times()[:2]), time.monotonic())
        proc.wait(seconds + 60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"locust exited with {proc.returncode}")
    requests = last[0] - first[0]
    cpu_s = last[1] - first[1]
    wall_s = last[2] - first[2]
    return requests / wall_s, requests / cpu_s, 100.0 * cpu_s / wall_s


def _wait_for_load(url: str, proc: subprocess.Popen[bytes]) -> None:
    """Until the server has seen a request: the warm-up counts from there, so that Locust's
    start-up (longer with the plugin's imports, and on a busy machine) stays out of the
    window whatever it takes."""
    before = _served(url)
    deadline = time.monotonic() + 60
    while _served(url) == before:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("locust sent no request within 60 s")
        time.sleep(0.05)


def _served(url: str) -> int:
    with urllib.request.urlopen(url + "/__count", timeout=5) as response:
        return int(json.load(response)["total"])


def _pin(pid: int, core_index: int, enabled: bool) -> None:
    cores = sorted(os.sched_getaffinity(0))
    if enabled and len(cores) >= 2:
        psutil.Process(pid).cpu_affinity([cores[core_index]])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--no-pin", action="store_true", help="leave CPU placement to the OS")
    args = parser.parse_args(argv)
    server = subprocess.Popen(
        [sys.executable, str(SERVER), "--parent-pid", str(os.getpid())],
        stdout=subprocess.PIPE,
        text=True,
    )
    ratios: list[float] = []
    cpu_ratios: list[float] = []
    try:
        _pin(server.pid, 1, not args.no_pin)
        url = f"http://127.0.0.1:{int(server.stdout.readline().split()[1])}"
        with tempfile.TemporaryDirectory(prefix="paybench-overhead-") as tmp:
            locustfile = Path(tmp) / "bare_locustfile.py"
            locustfile.write_text(LOCUSTFILE)
            print(f"{args.pairs} pairs, {args.users} users, {args.seconds} s windows, {url}")
            print(
                f"{'pair':>4} {'order':>5} {'req/s without':>14} {'with':>8} {'ratio':>6}"
                f"   {'req/CPU-s without':>18} {'with':>8} {'ratio':>6}   Locust CPU"
            )
            for pair in range(args.pairs):
                order = (False, True) if pair % 2 == 0 else (True, False)
                result = {}
                for with_paybench in order:
                    work = Path(tmp) / f"pair{pair}-{'with' if with_paybench else 'without'}"
                    result[with_paybench] = one_run(
                        locustfile,
                        url,
                        work,
                        with_paybench,
                        args.seconds,
                        args.users,
                        not args.no_pin,
                    )
                without, with_ = result[False], result[True]
                ratios.append(with_[0] / without[0])
                cpu_ratios.append(with_[1] / without[1])
                print(
                    f"{pair + 1:>4} {'AB' if pair % 2 == 0 else 'BA':>5}"
                    f" {without[0]:14.0f} {with_[0]:8.0f} {ratios[-1]:6.3f}"
                    f"   {without[1]:18.0f} {with_[1]:8.0f} {cpu_ratios[-1]:6.3f}"
                    f"   {without[2]:.0f} % / {with_[2]:.0f} %"
                )
    finally:
        server.terminate()
        server.wait(10)
        server.stdout.close()
    median = statistics.median(ratios)
    print(
        f"median ratio of requests/s with/without: {median:.3f} "
        f"(range {min(ratios):.3f}-{max(ratios):.3f}); target >= {TARGET_RATIO}"
    )
    print(
        f"median ratio of requests per Locust CPU-second: {statistics.median(cpu_ratios):.3f} "
        f"(range {min(cpu_ratios):.3f}-{max(cpu_ratios):.3f})"
    )
    return 0 if median >= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
