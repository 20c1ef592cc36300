"""`paybench capacity` as a library call (harness.commands.capacity) against the reference target.

The target is given a known capacity: the checkout route group (POST
/api/payments/v2/initiate) serves ``servers`` requests at once, each for a fixed
``service_ms`` (PhonePe's simulated pay call set to zero), so it cannot complete more than
servers / service time initiations per second: the truth. Every other route is left
unlimited and fast, so that the checkouts are what saturates.

The service time is long against what the target adds to it while a slot is held (the
order's insert into SQLite, event-loop delays: a few ms), which N / S leaves out.

The budgets written here only limit the initiation's p95 at 1.5 s, 7.5 service times:
the budgets hold while the queue grows past the knee, so the budget capacity (the best
held step) is a saturated step and must meet the truth. With a tight latency budget the
capacity would rightly be lower than the saturation; docs/capacity.md says so.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest

from harness.commands.capacity import CapacityResult, capacity
from harness.core.capacity import CHECKOUT_KEY as CHECKOUT
from harness.core.capacity import BrokenBudget, Step, StopRules, analyse
from harness.errors import ConfigError, TargetError

BUDGETS = """\
version: 1
requests:
  "POST /api/payments/v2/initiate":
    p95: "< 1500ms"
    error_rate: "< 1%"
"""
# Short journeys: PhonePe's schedule 50 times faster and the payer at 0.05-0.15 s, so a
# checkout user makes about one checkout a second and few users saturate the target.
FAST_JOURNEYS = {"time-scale": "0.02", "payer-delay": "5", "think-time": "0.5"}
STEP_TIME_S = 5.0


def _budgets(tmp_path: Path) -> Path:
    path = tmp_path / "budgets.yaml"
    path.write_text(BUDGETS, encoding="utf-8")
    return path


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("servers", "service_ms", "start_users", "step_users"),
    [
        pytest.param(4, 200.0, 10, 10, id="20-checkouts-per-s"),
        pytest.param(10, 200.0, 30, 25, id="50-checkouts-per-s"),
    ],
)
def test_the_capacity_of_a_known_target_is_within_ten_percent(
    tmp_path: Path, servers: int, service_ms: float, start_users: int, step_users: int
) -> None:
    truth = servers / (service_ms / 1000.0)
    max_users = start_users + 11 * step_users  # far past the knee: the run must stop itself
    lines: list[str] = []
    started = time.monotonic()
    result = capacity(
        host=None,
        budgets_path=_budgets(tmp_path),
        start_users=start_users,
        step_users=step_users,
        step_time_s=STEP_TIME_S,
        max_users=max_users,
        expected_peak_rps=None,
        out=tmp_path / "reports",
        target_overrides={
            "capacity.checkout": servers,
            "routes.initiate.median_ms": service_ms,
            "routes.initiate.p99_ms": service_ms,
            "phonepe.pay.median_ms": 0,
            "phonepe.pay.p99_ms": 0,
        },
        scenario_options=FAST_JOURNEYS,
        progress=lines.append,
    )
    elapsed = time.monotonic() - started
    a = result.analysis
    summary = "\n".join([*lines, *(f"{s.users}: {s.checkout_rps:.1f}/s" for s in a.steps)])

    assert a.basis == "checkouts", summary
    assert a.capacity_rate == pytest.approx(truth, rel=0.10), summary
    assert a.saturation.reached, summary
    assert a.saturation.rate == pytest.approx(truth, rel=0.10), summary
    # It stopped by itself, well before the last planned step.
    assert a.stop is not None and a.stop.reason in ("throughput flat", "budgets broken"), summary
    assert a.steps[-1].users < max_users, summary
    assert elapsed < 12 * STEP_TIME_S + 30, summary
    # The answer is where the review reads it.
    html = (result.run_dir / "capacity.html").read_text(encoding="utf-8")
    md = (result.run_dir / "capacity.md").read_text(encoding="utf-8")
    assert a.sentence.startswith("One instance holds the budgets up to")
    assert "checkouts/s" in a.sentence
    assert html.count("<svg") == 2 and a.sentence.split(";")[0] in html
    assert a.sentence.split(";")[0] in md
    assert result.exit_code == 0
    assert any(line.startswith("step 1/") for line in lines)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"start_users": 0},
            "--start-users 0: must be 1 or more",
        ),
        (
            {"start_users": 50, "max_users": 20},
            "--max-users 20 is below --start-users 50; raise --max-users",
        ),
        (
            {"step_time_s": 1.0},
            "--step-time 1s: a step needs at least 3 s (the users are reached within about "
            "2 s and must settle before it is measured)",
        ),
        (
            {"expected_peak_rps": -5.0},
            "--expected-peak-rps -5: must be above 0 (requests/s of the whole traffic at the "
            "expected peak)",
        ),
    ],
)
def test_option_mistakes_are_one_line_before_anything_starts(
    tmp_path: Path, options: dict[str, float], message: str
) -> None:
    args = {
        "host": None,
        "budgets_path": _budgets(tmp_path),
        "start_users": 10,
        "step_users": 10,
        "step_time_s": 5.0,
        "max_users": 50,
        "expected_peak_rps": None,
        "out": tmp_path / "reports",
        **options,
    }
    with pytest.raises(ConfigError) as err:
        capacity(**args)  # type: ignore[arg-type]
    assert err.value.message == message
    assert not (tmp_path / "reports").exists()  # no run folder for a mistake


def test_a_host_that_may_not_be_loaded_is_refused_before_any_request(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        capacity(
            host="https://payments.example.invalid",
            budgets_path=_budgets(tmp_path),
            start_users=10,
            step_users=10,
            step_time_s=5.0,
            max_users=50,
            expected_peak_rps=None,
            out=tmp_path / "reports",
        )
    assert "payments.example.invalid" in err.value.message
    assert not (tmp_path / "reports").exists()


def test_a_missing_budgets_file_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as err:
        capacity(
            host=None,
            budgets_path=missing,
            start_users=10,
            step_users=10,
            step_time_s=5.0,
            max_users=50,
            expected_peak_rps=None,
            out=tmp_path / "reports",
        )
    assert err.value.message.startswith(f"{missing}: file not found")


def _result(steps: list[Step], peak: float | None) -> CapacityResult:
    return CapacityResult(
        run_dir=Path("."),
        analysis=analyse(steps, expected_peak_rps=peak),
        report_paths=(),
        host="http://127.0.0.1:1",
        target="reference",
        planned_users=tuple(s.users for s in steps),
    )


def _step(users: int, checkouts: float, mean_ms: float, held: bool = True) -> Step:
    broken = (
        () if held else (BrokenBudget("p95 of payment initiation", "k", 3.0, "ms", "< 2", -50),)
    )
    return Step(
        users=users,
        duration_s=3.0,
        throughput_rps=5 * checkouts,
        checkout_rps=checkouts,
        percentiles_ms={},
        error_rate_pct=0.0,
        budgets_held=held,
        broken=broken,
        mean_ms=mean_ms,
    )


def test_the_exit_code_says_whether_the_expected_peak_is_held() -> None:
    rising = [_step(10, 10.0, 50.0), _step(20, 20.0, 50.0), _step(30, 30.0, 50.0)]
    broke = [*rising, _step(40, 31.0, 400.0, held=False)]
    assert _result(broke, peak=100.0).exit_code == 0  # 150 requests/s held: 1.5x
    assert _result(broke, peak=200.0).exit_code == 1  # 0.75x: below the expected peak
    assert _result(rising, peak=100.0).exit_code == 0  # at least 1.5x
    assert _result(rising, peak=200.0).exit_code == 3  # at least 0.75x: not answered
    assert _result(rising, peak=None).exit_code == 0
    first_broke = [_step(10, 10.0, 500.0, held=False)]
    assert _result(first_broke, peak=None).exit_code == 1
    interrupted = dataclasses.replace(_result(broke, peak=100.0), interrupted=True)
    assert interrupted.exit_code == 130
    # Stopped at its deadline or Locust failing: what it measured is reported, not an answer.
    incomplete = dataclasses.replace(_result(broke, peak=100.0), incomplete_reason="deadline")
    assert incomplete.exit_code == 3


@pytest.mark.e2e
def test_locust_refusing_its_options_is_one_line_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(TargetError) as err:
        capacity(
            host=None,
            budgets_path=_budgets(tmp_path),
            start_users=5,
            step_users=5,
            step_time_s=4.0,
            max_users=10,
            expected_peak_rps=None,
            out=tmp_path / "reports",
            scenario_options={"think-time": "-1"},
        )
    assert err.value.message.startswith("Locust wrote no paybench.hdr.json (Locust exited")
    assert "--think-time -1.0: must be at least 0" in err.value.message
    assert "\n" not in err.value.message


def test_the_live_monitor_judges_each_step_from_its_own_intervals(tmp_path: Path) -> None:
    """Regression: at epochs of ~1.8e9 an interval boundary must not pull in the next
    step's first interval (float resolution there is ~1e-7 s)."""
    from harness.commands.capacity import _LiveMonitor
    from harness.core.model import Budget, Budgets
    from harness.runfolder import read_live

    e0 = 1_795_000_000.0
    lines = []
    for t in range(1, 18):
        epoch = e0 + t + 0.05
        second_step = t >= 9  # the shape's tick and ramp lag a second behind the plan
        last = {"count": 9, "failures": 0, "avg_ms": 200.0, "p95_ms": 260.0}
        if t - 1 < 8:
            last = {"count": 5, "failures": 0, "avg_ms": 100.0, "p95_ms": 150.0}
        lines.append(
            {
                "epoch": epoch,
                "elapsed_s": epoch - e0,
                "users": 20 if second_step else 10,
                "interval_index": int(epoch) - 1,
                "per_request": {"POST /api/payments/v2/initiate": {"last": last}},
            }
        )
    (tmp_path / "paybench.live.jsonl").write_text(
        "".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8"
    )
    budgets = Budgets(
        source="test",
        budgets=(
            Budget(
                'requests."POST /api/payments/v2/initiate".p95',
                CHECKOUT,
                "p95",
                "<",
                200.0,
                "< 200ms",
            ),
            Budget(
                'requests."POST /api/payments/v2/initiate".p99', CHECKOUT, "p99", "<", 1.0, "< 1ms"
            ),
        ),
    )
    said: list[str] = []
    monitor = _LiveMonitor((10, 20, 30), 8.0, 1.0, budgets, StopRules(30), said.append)
    for line in read_live(tmp_path / "paybench.live.jsonl", 0)[0]:
        monitor.feed(line)
    decision = monitor.decision
    # step 1: steady [e0 + 4, e0 + 8): 4 intervals of 5; step 2: [e0 + 12, e0 + 16): 9 each
    assert [(s.users, s.checkout_rps, s.duration_s) for s in monitor.steps] == [
        (10, 5.0, 4.0),
        (20, 9.0, 4.0),
    ]
    # the p99 budget is not judged live (the lines carry no p99): only the p95 breaks
    assert monitor.steps[0].budgets_held
    assert [b.what for b in monitor.steps[1].broken] == ["p95 of payment initiation"]
    assert decision is not None and decision.reason == "budgets broken"  # 30 % past the limit
    assert said[-1] == (
        "stopping: budgets broken: p95 of payment initiation 260 ms (budget < 200ms) at 20 users"
    )
