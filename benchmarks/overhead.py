"""What paybench's recording costs the load generator: requests/s with and without it.

    .venv/bin/python benchmarks/overhead.py [--pairs 5] [--seconds 10] [--users 50]

A bare FastHttpUser (one GET, no wait) against a fast loopback server
(tests/plugin/loopback_server.py, no delay), one Locust process, so the generator's CPU is
the limit. The same locustfile runs without the plugin and with it (imported, and
``--paybench-dir`` set); the two runs of a pair are back to back and their order alternates
from pair to pair (ABBA), so drifts of the machine cancel out. Requests/s come from Locust's
own ``--json-file`` (requests / (last request - start)). Prints every pair and the median
ratio with/without; the target is at least 0.97. Exit status 1 below it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
SERVER = ROOT / "tests" / "plugin" / "loopback_server.py"
TARGET_RATIO = 0.97

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
    locustfile: Path, url: str, work: Path, with_paybench: bool, seconds: int, users: int
) -> tuple[float, float]:
    """(requests/s, Locust's average CPU %) of one run."""
    work.mkdir(parents=True)
    json_file = work / "locust.json"  # Locust adds the ".json" to --json-file itself
    cmd = [
        sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "--host", url,
        "-u", str(users), "-r", str(users), "-t", f"{seconds}s", "--only-summary",
        "--json-file", str(work / "locust"), "--exit-code-on-error", "0",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYBENCH_")}
    env["PYTHONPATH"] = str(ROOT)
    if with_paybench:
        cmd += ["--paybench-dir", str(work / "run")]
        env["OVERHEAD_WITH_PAYBENCH"] = "1"
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Locust's CPU over the middle of the run (its own startup and shutdown left out).
    probe = psutil.Process(proc.pid)
    started = time.monotonic()
    time.sleep(1.0)
    first = sum(probe.cpu_times()[:2]), time.monotonic()
    time.sleep(max(0.5, seconds - 2.0))
    last = sum(probe.cpu_times()[:2]), time.monotonic()
    cpu = 100.0 * (last[0] - first[0]) / (last[1] - first[1])
    while proc.poll() is None and time.monotonic() - started < seconds + 60:
        time.sleep(0.2)
    if proc.poll() is None:
        proc.kill()
        proc.wait()
        raise RuntimeError("locust did not stop in time")
    entries = json.loads(json_file.read_text())
    requests = sum(e["num_requests"] for e in entries)
    start = min(e["start_time"] for e in entries)
    last = max(e["last_request_timestamp"] for e in entries)
    return requests / (last - start), cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--users", type=int, default=50)
    args = parser.parse_args(argv)
    server = subprocess.Popen(
        [sys.executable, str(SERVER), "--parent-pid", str(os.getpid())],
        stdout=subprocess.PIPE,
        text=True,
    )
    ratios = []
    try:
        url = f"http://127.0.0.1:{int(server.stdout.readline().split()[1])}"
        with tempfile.TemporaryDirectory(prefix="paybench-overhead-") as tmp:
            locustfile = Path(tmp) / "bare_locustfile.py"
            locustfile.write_text(LOCUSTFILE)
            print(f"{args.pairs} pairs, {args.users} users, {args.seconds} s per run, {url}")
            print(f"{'pair':>4} {'order':>8} {'without req/s':>14} {'with req/s':>11} {'ratio':>7}")
            for pair in range(args.pairs):
                order = (False, True) if pair % 2 == 0 else (True, False)
                result = {}
                for with_paybench in order:
                    work = Path(tmp) / f"pair{pair}-{'with' if with_paybench else 'without'}"
                    result[with_paybench] = one_run(
                        locustfile, url, work, with_paybench, args.seconds, args.users
                    )
                ratio = result[True][0] / result[False][0]
                ratios.append(ratio)
                print(
                    f"{pair + 1:>4} {'AB' if pair % 2 == 0 else 'BA':>8}"
                    f" {result[False][0]:14.0f} {result[True][0]:11.0f} {ratio:7.3f}"
                    f"   (Locust CPU {result[False][1]:.0f} % / {result[True][1]:.0f} %)"
                )
    finally:
        server.terminate()
        server.wait(10)
        server.stdout.close()
    median = statistics.median(ratios)
    print(f"median ratio with/without: {median:.3f} (range {min(ratios):.3f}-{max(ratios):.3f});")
    print(f"target >= {TARGET_RATIO}")
    return 0 if median >= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
