"""Accuracy of paybench's percentiles against the exact percentiles of the raw samples.

    .venv/bin/python benchmarks/accuracy.py [--quick]

For each case a loopback server (tests/plugin/loopback_server.py) answers after a seeded
lognormal delay (or at once), and one headless Locust process runs the plugin's test
locustfile with ``RAW_SAMPLES_DIR`` set: every response time Locust reports is recorded by
paybench (HDR histograms) *and* written raw, from the same events. The exact percentile is
the raw sample at HdrHistogram's rank ``max(1, int(p * n / 100 + 0.5))``; paybench's must be
within 0.1 % of it. Locust's own figure (its ``_stats.csv``, Aggregated row) is printed
beside it. Exit status 1 when a paybench error exceeds 0.1 %.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.recording import HDR_FILE, load_recording  # noqa: E402

SERVER = ROOT / "tests" / "plugin" / "loopback_server.py"
LOCUSTFILE = ROOT / "tests" / "plugin" / "locustfile_basic.py"
PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)
LOCUST_COLUMNS = {50.0: "50%", 90.0: "90%", 95.0: "95%", 99.0: "99%", 99.9: "99.9%"}
TOLERANCE = 0.001


@dataclass(frozen=True)
class Case:
    label: str
    server_args: tuple[str, ...]
    users: int
    run_time_s: int


def _lognormal(median_ms: str, sigma: str) -> tuple[str, ...]:
    return ("--latency-median-ms", median_ms, "--latency-sigma", sigma)


CASES = (
    Case("server delay lognormal, median 150 ms, sigma 0.6", _lognormal("150", "0.6"), 100, 20),
    Case("server delay lognormal, median 5 ms, sigma 1.0", _lognormal("5", "1.0"), 10, 10),
    Case("no server delay: the loopback round trip (sub-ms)", (), 1, 10),
)


def run_case(
    case: Case, work: Path, run_time_s: int
) -> list[tuple[float, float, float, float | None]]:
    """(percent, exact ms, paybench ms, Locust ms) for one case."""
    run_dir = work / "run"
    raw_dir = work / "raw"
    raw_dir.mkdir(parents=True)
    server = subprocess.Popen(
        [
            sys.executable,
            str(SERVER),
            "--seed",
            "1",
            "--parent-pid",
            str(os.getpid()),
            *case.server_args,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        port = int(server.stdout.readline().split()[1])
        env = {**os.environ, "RAW_SAMPLES_DIR": str(raw_dir), "PYTHONPATH": str(ROOT)}
        cmd = [
            sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
            "--host", f"http://127.0.0.1:{port}", "-u", str(case.users), "-r", str(case.users),
            "-t", f"{run_time_s}s", "--only-summary", "--csv", str(work / "locust"),
            "--paybench-dir", str(run_dir), "--exit-code-on-error", "0",
        ]  # fmt: skip
        subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=run_time_s + 60)
    finally:
        server.terminate()
        server.wait(10)
        server.stdout.close()
    lines = [line for p in raw_dir.glob("samples-*.txt") for line in p.read_text().splitlines()]
    samples = np.sort(np.array([float(line.split("\t")[2]) for line in lines]))
    total = load_recording(run_dir / HDR_FILE).aggregate()
    assert total.count == samples.size, (total.count, samples.size)
    with open(work / "locust_stats.csv", newline="") as f:
        locust_row = next(r for r in csv.DictReader(f) if r["Name"] == "Aggregated")
    rows = []
    for percent in PERCENTILES:
        exact = float(samples[max(int(percent * samples.size / 100 + 0.5), 1) - 1])
        locust = (
            float(locust_row[LOCUST_COLUMNS[percent]])
            if locust_row[LOCUST_COLUMNS[percent]] != "N/A"
            else None
        )
        rows.append((percent, exact, total.percentile_ms(percent), locust))
    print(f"\n{case.label}: {samples.size} samples, {case.users} users, {run_time_s} s")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="half the run time per case")
    args = parser.parse_args(argv)
    worst = 0.0
    for case in CASES:
        with tempfile.TemporaryDirectory(prefix="paybench-accuracy-") as tmp:
            run_time_s = max(5, case.run_time_s // 2) if args.quick else case.run_time_s
            rows = run_case(case, Path(tmp), run_time_s)
        print(
            f"  {'pct':>6} {'exact ms':>12} {'paybench ms':>12} {'error':>9}"
            f" {'Locust ms':>10} {'Locust error':>13}"
        )
        for percent, exact, ours, locust in rows:
            error = (ours - exact) / exact
            worst = max(worst, abs(error))
            locust_text = (
                f"{locust:10.0f} {(locust - exact) / exact:+12.1%}"
                if locust is not None
                else f"{'n/a':>10} {'':>13}"
            )
            print(f"  p{percent:<5g} {exact:12.4f} {ours:12.4f} {error:+9.4%} {locust_text}")
    print(f"\nworst paybench error {worst:.4%} (limit {TOLERANCE:.1%})")
    return 0 if worst <= TOLERANCE else 1


if __name__ == "__main__":
    sys.exit(main())
