"""Plain Locust runs of payments.py for the scenario tests, bounded, outputs parsed.

Locust only ever runs in a subprocess: importing it here would monkey-patch the test
process with gevent.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAYMENTS = ROOT / "locustfiles" / "payments.py"
PROFILES = ROOT / "locustfiles" / "profiles"
LOCUST_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class LocustRun:
    returncode: int
    log: str
    entries: dict[tuple[str, str], dict]  # (method, name) -> Locust's --json-file entry
    failures: list[dict[str, str]]  # rows of Locust's _failures.csv

    def count(self, key: tuple[str, str]) -> int:
        return self.entries[key]["num_requests"] if key in self.entries else 0

    def failed(self, key: tuple[str, str]) -> int:
        return self.entries[key]["num_failures"] if key in self.entries else 0

    def median_ms(self, key: tuple[str, str]) -> float:
        """The median of Locust's rounded response-time histogram (enough for 5x changes)."""
        times = self.entries[key]["response_times"]
        total = sum(times.values())
        seen = 0
        for value in sorted(times, key=float):
            seen += times[value]
            if seen * 2 >= total:
                return float(value)
        raise AssertionError(f"no response times for {key}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_locust(
    host: str,
    out_dir: Path,
    *args: str,
    profile: str | None = "smoke",
    timeout_s: float = LOCUST_TIMEOUT_S,
    env: dict[str, str] | None = None,
) -> LocustRun:
    """Plain ``locust --headless`` on payments.py, bounded in time; its outputs parsed."""
    prefix = out_dir / "locust"
    command = [sys.executable, "-m", "locust", "--headless", "-f", str(PAYMENTS)]
    if profile:
        command += ["--config", str(PROFILES / f"{profile}.conf")]
    command += ["--host", host, "--json-file", str(prefix), "--csv", str(prefix)]
    command += ["--only-summary", *args]
    # A session of its own: on a timeout the whole group goes, forked workers included.
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env={**os.environ, **(env or {})},
    )
    try:
        log, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        log, _ = proc.communicate()
        raise AssertionError(
            f"locust did not finish within {timeout_s:g} s:\n{log[-3000:]}"
        ) from None
    entries: dict[tuple[str, str], dict] = {}
    json_path = Path(f"{prefix}.json")  # Locust appends .json to --json-file
    if json_path.exists():
        entries = {(e["method"], e["name"]): e for e in json.loads(json_path.read_text())}
    failures: list[dict[str, str]] = []
    failures_path = Path(f"{prefix}_failures.csv")
    if failures_path.exists():
        with failures_path.open(newline="") as f:
            failures = list(csv.DictReader(f))
    return LocustRun(proc.returncode, log, entries, failures)
