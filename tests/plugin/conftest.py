"""Fixtures for the plugin's real-Locust tests: a loopback server and a bounded Locust run."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
LOCUST_TIMEOUT_S = 90.0


@dataclass
class Loopback:
    url: str
    proc: subprocess.Popen[str]

    def served(self) -> int:
        with urllib.request.urlopen(self.url + "/__count", timeout=5) as response:
            return int(json.load(response)["total"])


def start_loopback(*args: str) -> Loopback:
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "loopback_server.py"), "--parent-pid", str(os.getpid()), *args],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline() if proc.stdout else ""
    if not line.startswith("PORT "):
        proc.kill()
        proc.wait()
        raise RuntimeError(f"loopback server did not start: {line!r}")
    return Loopback(f"http://127.0.0.1:{int(line.split()[1])}", proc)


def stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


@pytest.fixture
def loopback_factory() -> Iterator:
    started: list[Loopback] = []

    def start(*args: str) -> Loopback:
        server = start_loopback(*args)
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            stop_process(server.proc)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def locust_command(
    locustfile: Path,
    host: str,
    run_dir: Path | None,
    users: int,
    run_time: str,
    processes: int = 0,
    extra: tuple[str, ...] = (),
) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(locustfile),
        "--headless",
        "--host",
        host,
        "-u",
        str(users),
        "-r",
        str(users),
        "-t",
        run_time,
        "--only-summary",
        "--exit-code-on-error",
        "0",
    ]
    if run_dir is not None:
        cmd += ["--paybench-dir", str(run_dir)]
    if processes:
        port = str(free_port())
        # The forked workers connect to --master-port: it must match the bind port.
        cmd += ["--processes", str(processes), "--master-bind-host", "127.0.0.1"]
        cmd += ["--master-bind-port", port, "--master-port", port]
    return cmd + list(extra)


def locust_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAYBENCH_", "LOCUST_"))}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def run_locust(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    result = subprocess.run(
        cmd,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=LOCUST_TIMEOUT_S,
        start_new_session=True,  # the forked workers go with it if it has to be killed
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def wait_for(condition, timeout_s: float, what: str, interval_s: float = 0.1):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def terminate_group(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
