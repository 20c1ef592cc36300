"""The run lifecycle shared by `paybench run` and `paybench capacity`: run.json at each step."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.commands.capacity import SCENARIO_DEFAULTS, capacity_spec
from harness.errors import TargetError
from harness.lifecycle import RunSpec, execute
from harness.locust_run import free_loopback_port
from harness.profiles import DEFAULT_LOCUSTFILE
from harness.runfolder import BUDGETS_SNAPSHOT, load_run_record, new_run_id

BUDGETS = 'version: 1\nrequests:\n  "POST /api/payments/v2/initiate":\n    p95: "< 5s"\n'


def _budgets(tmp_path: Path) -> Path:
    path = tmp_path / "budgets.yaml"
    path.write_text(BUDGETS, encoding="utf-8")
    return path


@pytest.mark.e2e
def test_a_capacity_run_stopped_at_its_deadline_is_marked_incomplete(tmp_path: Path) -> None:
    """Regression: a capacity run that Locust had not ended by its deadline was stopped but
    its run.json said it finished."""
    spec = capacity_spec(
        run_id=new_run_id(),
        out=tmp_path / "reports",
        budgets_path=_budgets(tmp_path),
        start_users=1,
        step_users=1,
        step_time_s=60.0,
        max_users=2,
        expected_peak_rps=None,
        knobs=SCENARIO_DEFAULTS,
        deadline_s=5.0,  # far below the two steps of a minute each
    )
    finished = execute(spec)
    assert finished.outcome.timed_out
    record = load_run_record(finished.run_dir)
    assert record is not None and record.kind == "capacity"
    assert record.status == "incomplete"
    assert record.incomplete_reason == (
        "Locust had not stopped 5 s after it started (its deadline); it was stopped"
    )
    assert record.locust_command and record.ended_at is not None


def test_a_failed_preflight_is_recorded_in_run_json(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_loopback_port()}"
    spec = RunSpec(
        kind="run",
        run_id=new_run_id(),
        out=tmp_path / "reports",
        budgets_path=_budgets(tmp_path),
        locustfile=DEFAULT_LOCUSTFILE,
        profile=None,
        users=1,
        spawn_rate=1.0,
        run_time_s=5.0,
        scenario_version="1",
        host=url,
    )
    with pytest.raises(TargetError, match="did not answer"):
        execute(spec)
    (run_dir,) = (tmp_path / "reports" / "runs").iterdir()
    record = load_run_record(run_dir)
    assert record is not None and record.status == "failed"
    assert record.incomplete_reason is not None and url in record.incomplete_reason
    assert (run_dir / BUDGETS_SNAPSHOT).read_text() == BUDGETS
