"""`paybench capacity` through the real CLI: a short staircase that stops by itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.helpers import ROOT, only_run_dir, paybench

pytestmark = pytest.mark.e2e


def _budgets(tmp_path: Path) -> str:
    """The shipped budgets with a throughput floor two users meet on a busy machine (the
    shipped 5 requests/s they may not: these tests are about the command, not the machine)."""
    shipped = (ROOT / "budgets.yaml").read_text(encoding="utf-8")
    floor = 'rps: ">= 5"'
    assert shipped.count(floor) == 1, "the shipped throughput floor moved: update this test"
    path = tmp_path / "budgets.yaml"
    path.write_text(shipped.replace(floor, 'rps: ">= 0.5"'), encoding="utf-8")
    return str(path)


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
        "--budgets",
        _budgets(tmp_path),
        "--out",
        str(out),
    )
    assert r.returncode == 0, r.stdout + r.stderr
    run_dir = only_run_dir(out)
    assert "One instance holds the budgets" in r.stdout
    assert "x the expected peak of 1 requests/s" in r.stdout
    assert (run_dir / "capacity.html").is_file() and (run_dir / "capacity.md").is_file()


def test_a_capacity_run_json_has_the_fields_of_a_run_json(tmp_path: Path) -> None:
    """Regression: capacity runs built their run.json apart from `paybench run` and left out
    locust_version and git_commit."""
    capacity_out, run_out = tmp_path / "capacity", tmp_path / "run"
    r = paybench(
        "capacity",
        *("--start-users", "2", "--step-users", "2", "--max-users", "4", "--step-time", "3s"),
        *("--expected-peak-rps", "1", "--budgets", _budgets(tmp_path), "--out", str(capacity_out)),
    )
    assert r.returncode == 0, r.stdout + r.stderr
    r = paybench("run", "--run-time", "5s", "--out", str(run_out), "--no-history")
    assert r.returncode == 0, r.stdout + r.stderr
    capacity = json.loads((only_run_dir(capacity_out) / "run.json").read_text())
    run = json.loads((only_run_dir(run_out) / "run.json").read_text())

    assert sorted(capacity) == sorted(run)
    assert (capacity["kind"], run["kind"]) == ("capacity", "run")
    for doc in (capacity, run):
        assert doc["format"] == "paybench-run" and doc["format_version"] == 1
        assert doc["status"] == "finished" and doc["incomplete"] is False
        assert doc["locust_version"] == run["locust_version"] is not None
        assert doc["git_commit"] == run["git_commit"]
        assert doc["target"] == "reference" and doc["host"].startswith("http://127.0.0.1:")
    assert capacity["extra"]["capacity"]["steps"] == [2, 4]


def test_capacity_refuses_a_step_time_too_short(tmp_path: Path) -> None:
    r = paybench("capacity", "--step-time", "1s", "--out", str(tmp_path / "reports"), timeout=30)
    assert r.returncode == 2
    assert "step" in r.stderr and "3" in r.stderr and "Traceback" not in r.stderr
