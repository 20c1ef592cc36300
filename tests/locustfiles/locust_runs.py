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
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAYMENTS = ROOT / "locustfiles" / "payments.py"
PROFILES = ROOT / "locustfiles" / "profiles"
LOCUST_TIMEOUT_S = 60.0
UNTIL_TIMEOUT_S = 180.0  # a run_locust_until run: the bound, not the expected length
STOP_TIMEOUT_S = 60.0  # from Ctrl-C to Locust's exit, outputs written
POLL_S = 0.2


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
    return _outputs(prefix, proc.returncode, log)


def _outputs(prefix: Path, returncode: int, log: str) -> LocustRun:
    entries: dict[tuple[str, str], dict] = {}
    json_path = Path(f"{prefix}.json")  # Locust appends .json to --json-file
    if json_path.exists():
        entries = {(e["method"], e["name"]): e for e in json.loads(json_path.read_text())}
    return LocustRun(returncode, log, entries, _csv_rows(Path(f"{prefix}_failures.csv")))


def _csv_rows(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def run_locust_until(
    host: str,
    out_dir: Path,
    *args: str,
    until: Callable[[LocustRun], bool],
    what: str,
    profile: str | None = "smoke",
    timeout_s: float = UNTIL_TIMEOUT_S,
    env: dict[str, str] | None = None,
) -> LocustRun:
    """Plain ``locust --headless`` on payments.py until ``until`` holds, then Ctrl-C.

    A count-based end instead of a run time: a run that needs some requests (a failed
    initiate, enough samples for a median) lasts until Locust has recorded them, however
    slow the machine is. ``until`` sees what Locust itself has written so far: its
    ``_stats.csv`` (requests and failures per name, as ``count``/``failed``) and
    ``_failures.csv``, which Locust rewrites every second; whatever they hold is in the
    final outputs too. ``timeout_s`` bounds the run (as its ``--run-time`` and as our wait):
    the condition not holding by then fails the test, naming ``what``.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    prefix = out_dir / "locust"
    command = [sys.executable, "-m", "locust", "--headless", "-f", str(PAYMENTS)]
    if profile:
        command += ["--config", str(PROFILES / f"{profile}.conf")]
    command += ["--host", host, "--json-file", str(prefix), "--csv", str(prefix)]
    command += ["--only-summary", *args, "--run-time", f"{timeout_s:g}s"]
    log_path = out_dir / "locust.log"
    # The log goes to a file: a pipe nobody reads while we poll could fill and stall Locust.
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            command,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    try:
        held = _poll(proc, prefix, until, timeout_s)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # Locust stops its users and writes its outputs
        proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise AssertionError(
            f"locust did not stop within {STOP_TIMEOUT_S:g} s of Ctrl-C:\n"
            f"{log_path.read_text()[-3000:]}"
        ) from None
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    log_text = log_path.read_text()
    if not held:
        raise AssertionError(
            f"locust never recorded {what} within {timeout_s:g} s:\n{log_text[-3000:]}"
        )
    return _outputs(prefix, proc.returncode, log_text)


def _poll(
    proc: subprocess.Popen[str], prefix: Path, until: Callable[[LocustRun], bool], timeout_s: float
) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        if until(_so_far(prefix)):
            return True
        time.sleep(POLL_S)  # Locust rewrites its CSV files once a second
    return until(_so_far(prefix))


def _so_far(prefix: Path) -> LocustRun:
    """What Locust's CSV files hold now, as a LocustRun (``count`` and ``failed`` only)."""
    entries: dict[tuple[str, str], dict] = {}
    try:
        for row in _csv_rows(Path(f"{prefix}_stats.csv")):
            if row.get("Name") != "Aggregated":
                key = (row["Type"], row["Name"])
                entries[key] = {
                    "num_requests": int(row["Request Count"]),
                    "num_failures": int(row["Failure Count"]),
                }
        failures = _csv_rows(Path(f"{prefix}_failures.csv"))
    except (KeyError, TypeError, ValueError, csv.Error):
        return LocustRun(0, "", {}, [])  # caught mid-rewrite: ask again at the next poll
    return LocustRun(0, "", entries, failures)
