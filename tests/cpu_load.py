"""Other CPU-heavy processes on the machine, for tests of how the generator is judged.

`cpu_burners(n)` starts ``n`` Python processes that spin the CPU flat out, waits until each
one is running, and kills them (by PID) when the block ends, whatever happens inside it.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest

# `while True: pass`, checking now and then (every ~20 ms of spinning) that the test that
# started it still runs: a burner never outlives a test process that was killed itself.
BURNER = (
    "import os\n"
    "parent = os.getppid()\n"
    "while os.getppid() == parent:\n"
    "    for _ in range(1_000_000):\n"
    "        pass\n"
)
STARTUP_TIMEOUT_S = 30.0

# Where the kernel keeps scheduler statistics, a starved generator can be told apart from
# an idle one; elsewhere only its CPU % is recorded.
HAS_SCHEDSTAT = Path("/proc/self/schedstat").is_file()
needs_schedstat = pytest.mark.skipif(
    not HAS_SCHEDSTAT, reason="needs /proc/<pid>/schedstat (Linux) to see a process's CPU demand"
)


@contextmanager
def cpu_burners(count: int) -> Iterator[tuple[int, ...]]:
    """``count`` processes that each want a whole core; yields their PIDs."""
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(count):
            procs.append(subprocess.Popen([sys.executable, "-c", BURNER]))
        _wait_until_spinning(procs)
        yield tuple(p.pid for p in procs)
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait()


def _wait_until_spinning(procs: list[subprocess.Popen[bytes]]) -> None:
    """Until each burner has spent CPU time in its loop (past the interpreter's start-up)."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    watched = [psutil.Process(p.pid) for p in procs]
    started = [w.cpu_times().user for w in watched]
    waiting = set(range(len(procs)))
    while waiting:
        for i in list(waiting):
            if procs[i].poll() is not None:
                raise RuntimeError(f"CPU burner {procs[i].pid} exited with {procs[i].returncode}")
            if watched[i].cpu_times().user - started[i] >= 0.1:
                waiting.discard(i)
        if time.monotonic() > deadline:
            raise RuntimeError(f"CPU burners did not start spinning in {STARTUP_TIMEOUT_S} s")
        time.sleep(0.05)
