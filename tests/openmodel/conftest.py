"""Open-model runs of the real CLI against the reference target with a known capacity.

The target serves ``POST /api/payments/v2/initiate`` with ``SLOTS`` slots of a fixed
``SERVICE_MS`` (the target sleeps: capacity ``SLOTS / SERVICE_MS`` holds however busy the
CPU is); every other route keeps its small default times. Each run is made once per test
session and shared by the tests that read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.recording import HDR_FILE, Recording, load_recording
from tests.e2e.helpers import load_summary, only_run_dir, paybench

SLOTS = 2
SERVICE_MS = 100.0
CAPACITY_PER_S = SLOTS * 1000.0 / SERVICE_MS  # 20 checkouts/s
RUN_TIME_S = 10
CLOSED_USERS = 40
INITIATE = "POST /api/payments/v2/initiate"
SERVICE_INITIATE = "FLOW service time: POST /api/payments/v2/initiate"
BUDGETS = """\
version: 1
steady_state: {warmup: 1s}
requests:
  "POST /api/payments/v2/initiate": {p95: "< 30s"}
run: {error_rate: "< 5%"}
"""


def target_yaml(slots: int = SLOTS, service_ms: float = SERVICE_MS) -> str:
    return (
        f"capacity: {{checkout: {slots}}}\n"
        f"routes: {{initiate: {{median_ms: {service_ms:g}, p99_ms: {service_ms:g}}}}}\n"
        "phonepe: {pay: {median_ms: 0, p99_ms: 0}}\n"
    )


@dataclass(frozen=True)
class Run:
    exit_code: int
    stdout: str
    stderr: str
    run_dir: Path

    @property
    def recording(self) -> Recording:
        return load_recording(self.run_dir / HDR_FILE)

    @property
    def summary(self) -> dict:
        return load_summary(self.run_dir)


def run_paybench(
    where: Path, *options: str, target: str | None = None, run_time_s: int | None = RUN_TIME_S
) -> Run:
    """``paybench run`` on the target; ``run_time_s`` None: no --run-time (the stages')."""
    where.mkdir(parents=True, exist_ok=True)
    (where / "budgets.yaml").write_text(BUDGETS, encoding="utf-8")
    (where / "target.yaml").write_text(target or target_yaml(), encoding="utf-8")
    r = paybench(
        "run",
        "--budgets",
        str(where / "budgets.yaml"),
        "--target-config",
        str(where / "target.yaml"),
        *(("--run-time", f"{run_time_s}s") if run_time_s is not None else ()),
        "--out",
        str(where / "reports"),
        "--no-history",
        *options,
        env={"PAYBENCH_INTERVAL": "1"},
        timeout=240,
    )
    assert "Traceback" not in r.stdout + r.stderr, r.stderr[-3000:]
    return Run(r.returncode, r.stdout, r.stderr, only_run_dir(where / "reports"))


@pytest.fixture(scope="session")
def light_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """0.5x capacity: the generator keeps up and the target never queues for long."""
    rate = CAPACITY_PER_S / 2
    return run_paybench(tmp_path_factory.mktemp("light"), "--arrival-rate", f"{rate:g}/s")


@pytest.fixture(scope="session")
def overload_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """1.2x capacity: arrivals keep coming, the target's queue grows all run."""
    rate = CAPACITY_PER_S * 1.2
    return run_paybench(
        tmp_path_factory.mktemp("overload"), "--arrival-rate", f"{rate:g}/s", run_time_s=12
    )


@pytest.fixture(scope="session")
def closed_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """Closed loop: checkout users enough to keep the slots busy, all started at once."""
    users = str(CLOSED_USERS)
    where = tmp_path_factory.mktemp("closed")
    return run_paybench(where, "--users", users, "--spawn-rate", users, run_time_s=6)
