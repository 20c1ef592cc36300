"""A master and its workers as separate `paybench` processes on 127.0.0.1, stopped by PID."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import psutil

from harness.locust_run import free_loopback_port
from harness.runfolder import LIVE_FILE

ROOT = Path(__file__).resolve().parents[2]
BOUND_S = 120.0  # no process of a test lives longer


class Cluster:
    """`paybench run --master` against ``host`` and `paybench worker`s that join it."""

    def __init__(self, tmp: Path, host: str, bind: str = "127.0.0.1") -> None:
        self.tmp = tmp
        self.host = host
        self.bind = bind  # where the master listens (tests/distributed/netns.py: another)
        self.port = free_loopback_port()
        self.out = tmp / "reports"
        self.master: subprocess.Popen[str] | None = None
        self.workers: list[subprocess.Popen[str]] = []
        self._files: list[IO[str]] = []

    def _file(self, name: str) -> IO[str]:
        f = open(self.tmp / name, "w", encoding="utf-8")  # closed in stop()
        self._files.append(f)
        return f

    def _env(self, extra: dict[str, str] | None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PAYBENCH_TEST_")}
        return {**env, "COLUMNS": "120", **(extra or {})}

    def start_master(
        self, *args: str, expect: int = 2, timeout: str = "60s", env: dict[str, str] | None = None
    ) -> None:
        cmd = [
            sys.executable, "-m", "harness", "run", "--master",
            "--master-bind", f"{self.bind}:{self.port}",
            "--expect-workers", str(expect), "--expect-workers-timeout", timeout,
            "--host", self.host, "--out", str(self.out), "--no-history", *args,
        ]  # fmt: skip
        self.master = subprocess.Popen(
            cmd, cwd=ROOT, env=self._env(env), text=True,
            stdout=self._file("master.out"), stderr=self._file("master.err"),
        )  # fmt: skip

    def start_worker(
        self, env: dict[str, str] | None = None, namespace: str | None = None
    ) -> subprocess.Popen[str]:
        n = len(self.workers)
        master = f"{self.bind}:{self.port}"
        command = [sys.executable, "-m", "harness", "worker", "--master", master]
        if namespace is not None:
            command = ["ip", "netns", "exec", namespace, *command]
        proc = subprocess.Popen(
            command,
            cwd=ROOT, env=self._env(env), text=True,
            stdout=self._file(f"worker{n}.out"),
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.workers.append(proc)
        return proc

    def wait_master(self) -> int:
        assert self.master is not None
        return self.master.wait(timeout=BOUND_S)

    def wait_workers(self) -> list[int]:
        return [w.wait(timeout=BOUND_S) for w in self.workers]

    def text(self, name: str) -> str:
        return (self.tmp / name).read_text(encoding="utf-8", errors="replace")

    def run_dir(self) -> Path:
        runs = sorted((self.out / "runs").iterdir())
        assert len(runs) == 1, runs
        return runs[0]

    def wait_for_requests(self) -> None:
        """Until the master's live progress shows requests (bounded)."""
        deadline = time.monotonic() + BOUND_S
        while time.monotonic() < deadline:
            if _any_requests(list((self.out / "runs").glob(f"*/{LIVE_FILE}"))):
                return
            time.sleep(0.2)
        raise AssertionError("the master never reported a request")

    def stop(self) -> None:
        for proc in [*self.workers, *([self.master] if self.master else [])]:
            kill_tree(proc.pid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        for f in self._files:
            f.close()


def _any_requests(lives: list[Path]) -> bool:
    for live in lives:
        for line in live.read_text().splitlines():
            with contextlib.suppress(ValueError):
                if json.loads(line).get("requests", 0) > 0:
                    return True
    return False


def locust_child(proc: subprocess.Popen[str]) -> int:
    """The PID of the Locust process a `paybench worker` started (bounded wait)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(psutil.NoSuchProcess):
            children = psutil.Process(proc.pid).children()
            if children:
                return children[0].pid
        time.sleep(0.05)
    raise AssertionError("the worker started no Locust process")


def kill_tree(pid: int) -> None:
    """SIGKILL a process we started and everything it started (they have own sessions)."""
    with contextlib.suppress(psutil.NoSuchProcess):
        parent = psutil.Process(pid)
        for child in parent.children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                child.send_signal(signal.SIGKILL)
        parent.send_signal(signal.SIGKILL)


@contextlib.contextmanager
def cluster(tmp: Path, host: str, bind: str = "127.0.0.1") -> Iterator[Cluster]:
    c = Cluster(tmp, host, bind)
    try:
        yield c
    finally:
        c.stop()
