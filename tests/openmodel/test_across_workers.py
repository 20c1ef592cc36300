"""Arrivals split across Locust processes: process i of P takes arrivals i, i+P, ...

``--arrival-stages 2s:20/s`` in a 4 s run: the 40 arrivals are all intended by 2 s, so the
count is exact whatever the processes' start skew; the 2 s after let the journeys finish.
Each process logs its share at the stop (locustfiles/arrivals.py).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.core import arrivals
from harness.recording import load_recording
from harness.runfolder import HDR_FILE, LOG_FILE
from harness.target.process import ReferenceTarget
from tests.distributed.cluster import cluster
from tests.openmodel.conftest import BUDGETS, run_paybench

pytestmark = pytest.mark.e2e

STAGES = "2s:20/s"
RUN_TIME_S = 4
INTENDED = 40
PROCESS_LINE = re.compile(
    r"paybench arrivals: process (\d+) of (\d+): (\d+) intended, (\d+) dropped, (\d+) late"
)


def _assert_split(run_dir: Path, log: str) -> None:
    rec = load_recording(run_dir / HDR_FILE)
    counts = {
        c.user_class: (c.intended_iterations, c.achieved_iterations) for c in rec.paced.user_classes
    }
    assert counts[arrivals.DROPPED_CLASS] == (INTENDED, INTENDED)
    assert counts[arrivals.LATE_CLASS] == (INTENDED, INTENDED)
    plans = {f"{s.request_type} {s.name}": s for s in rec.request_stats()}["GET /api/plans"]
    # Every arrival that started made exactly one catalogue request, its first.
    assert plans.count + plans.cut_off == INTENDED
    # Each process carried its half: process 0 and process 1 of 2.
    shares = {int(m[1]): (int(m[2]), int(m[3])) for m in PROCESS_LINE.finditer(log)}
    assert shares == {0: (2, INTENDED // 2), 1: (2, INTENDED // 2)}, log[-3000:]


def test_two_local_workers_together_make_the_intended_rate(tmp_path: Path) -> None:
    run = run_paybench(
        tmp_path, "--arrival-stages", STAGES, "--workers", "2", run_time_s=RUN_TIME_S
    )
    assert run.exit_code == 0, run.stdout[-2000:]
    _assert_split(run.run_dir, (run.run_dir / LOG_FILE).read_text(encoding="utf-8"))


def test_two_remote_workers_together_make_the_intended_rate(tmp_path: Path) -> None:
    (tmp_path / "budgets.yaml").write_text(BUDGETS, encoding="utf-8")
    with ReferenceTarget() as target, cluster(tmp_path, target.url) as c:
        c.start_master(
            "--budgets", str(tmp_path / "budgets.yaml"), "--arrival-stages", STAGES,
            "--run-time", f"{RUN_TIME_S}s",
        )  # fmt: skip
        c.start_worker()
        c.start_worker()
        assert c.wait_master() == 0, c.text("master.out") + c.text("master.err")
        assert c.wait_workers() == [0, 0], c.text("worker0.out")
    _assert_split(c.run_dir(), c.text("worker0.out") + c.text("worker1.out"))
