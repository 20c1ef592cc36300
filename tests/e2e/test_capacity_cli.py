"""`paybench capacity` through the real CLI: a short staircase that stops by itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.helpers import only_run_dir, paybench

pytestmark = pytest.mark.e2e


def test_capacity_command_answers_and_writes_its_reports(tmp_path: Path) -> None:
    out = tmp_path / "reports"
    r = paybench(
        "capacity",
        "--start-users",
        "2",
        "--step-users",
        "2",
        "--max-users",
        "4",
        "--step-time",
        "3s",
        "--expected-peak-rps",
        "1",
        "--out",
        str(out),
    )
    assert r.returncode == 0, r.stdout + r.stderr
    run_dir = only_run_dir(out)
    assert "One instance holds the budgets" in r.stdout
    assert "x the expected peak of 1 requests/s" in r.stdout
    assert (run_dir / "capacity.html").is_file() and (run_dir / "capacity.md").is_file()


def test_capacity_refuses_a_step_time_too_short(tmp_path: Path) -> None:
    r = paybench("capacity", "--step-time", "1s", "--out", str(tmp_path / "reports"), timeout=30)
    assert r.returncode == 2
    assert "step" in r.stderr and "3" in r.stderr and "Traceback" not in r.stderr
