"""Plain ``locust --headless`` runs of payments.py against the reference target, on loopback.

A test that needs some requests to have happened (a failed initiate, enough samples for a
median) runs Locust until Locust has recorded them (``run_locust_until``), not for a run
time that a busy machine may fill with too few. The others are bounded by their profile's
run time (or a shape that stops by itself); every run has a subprocess timeout, and the
targets are stopped by the fixture.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.core import catalogue
from tests.locustfiles.locust_runs import LocustRun, run_locust, run_locust_until

pytestmark = pytest.mark.e2e

HTTP_NAMES = [key for key in catalogue.ALL if key[0] != "FLOW"]
FLOWS = [key for key in catalogue.ALL if key[0] == "FLOW"]
# The reference target injects faults per route; the message names the route.
ROUTE_OF = {
    catalogue.PLANS: "plans",
    catalogue.INITIATE: "initiate",
    catalogue.STATUS: "status",
    catalogue.SUBSCRIPTION: "subscriptions",
    catalogue.WEBHOOK_COMPLETED: "webhook",
    catalogue.WEBHOOK_FAILED: "webhook",
    catalogue.WEBHOOK_DUPLICATE: "webhook",
}
HEALTH_NAMES = [
    catalogue.HEALTH,
    catalogue.HEALTH_DATABASE,
    catalogue.HEALTH_REDIS,
    catalogue.HEALTH_PAYMENTS,
]


def test_smoke_profile_exercises_every_request_name_without_failures(
    reference_target, tmp_path: Path
) -> None:
    target = reference_target()
    run = run_locust(target.url, tmp_path)

    assert run.returncode == 0, run.log[-3000:]
    missing = [key for key in catalogue.ALL if run.count(key) == 0]
    assert not missing, f"no requests for {missing}\n{run.log[-3000:]}"
    failed = {key: run.failed(key) for key in catalogue.ALL if run.failed(key)}
    assert not failed, f"failures {failed}: {run.failures}"
    assert run.failures == []
    # Forged webhooks were sent and every one was rejected (a 2xx would be a failure).
    assert run.count(catalogue.WEBHOOK_FORGED) > 0
    assert run.failed(catalogue.WEBHOOK_FORGED) == 0
    for flow in FLOWS:
        assert run.count(flow) > 0, flow
    # Nothing but the catalogue: ids never leak into names.
    assert set(run.entries) == set(catalogue.ALL)


INJECTED = (catalogue.PLANS, catalogue.INITIATE, catalogue.STATUS)


def _failure_rows(run: LocustRun) -> set[tuple[str, str]]:
    return {(row["Method"], row["Name"]) for row in run.failures}


def test_injected_errors_fail_under_the_right_names_with_clear_messages(
    reference_target, tmp_path: Path
) -> None:
    """Regression: a 6-second run on a busy machine once sent too few initiates for one of
    them to draw an injected fault; the run now lasts until each name has failed."""
    target = reference_target(error_rate=0.3)
    run = run_locust_until(
        target.url,
        tmp_path,
        "--exit-code-on-error",
        "0",
        until=lambda so_far: set(INJECTED) <= _failure_rows(so_far),
        what="a failure row for each of plans, initiate and status",
    )

    assert run.returncode == 0, run.log[-3000:]
    for key in INJECTED:
        assert run.failed(key) > 0, (key, run.entries.get(key))
    # The target never injects faults into health checks, nor into a rejected forgery.
    for key in [*HEALTH_NAMES, catalogue.WEBHOOK_FORGED]:
        assert run.count(key) == 0 or run.failed(key) == 0, key

    assert run.failures, "no failure rows"
    for row in run.failures:
        key = (row["Method"], row["Name"])
        # Locust's CSV holds the exception's repr, quotes escaped: read it as text again.
        error = row["Error"].replace("\\'", "'")
        if key in ROUTE_OF:
            expected = 201 if key == catalogue.INITIATE else 200
            assert f"expected {expected}, got 500: " in error, row
            assert f"route '{ROUTE_OF[key]}'" in error, row
        elif key == catalogue.FLOW_CHECKOUT:
            assert "no order: initiate failed (see POST /api/payments/v2/initiate)" in error, row
        else:
            raise AssertionError(f"unexpected failure row {row}")
    # Locust rewrites the failures CSV once a second, so it may lag the JSON by a few rows;
    # the rows the run waited for are in it.
    rows = _failure_rows(run)
    assert set(INJECTED) <= rows
    assert all(run.failed(key) > 0 for key in rows)


FIXED_ROUTES_MS = 20
FIXED_MODEL = {
    # Fixed service times (p99 = median) so that a 5x slowdown stands out of any noise.
    **{f"routes.{route}.median_ms": FIXED_ROUTES_MS for route in set(ROUTE_OF.values())},
    **{f"routes.{route}.p99_ms": FIXED_ROUTES_MS for route in set(ROUTE_OF.values())},
    "phonepe.pay.median_ms": 10,
    "phonepe.pay.p99_ms": 10,
    "phonepe.order_status.median_ms": 5,
    "phonepe.order_status.p99_ms": 5,
}


COMPARED = (catalogue.PLANS, catalogue.INITIATE, catalogue.STATUS, catalogue.SUBSCRIPTION)
MEDIAN_SAMPLES = 15  # per name and run: enough for the median of a fixed service time


def test_a_slower_target_is_slower_under_the_right_names(reference_target, tmp_path: Path) -> None:
    def enough(so_far: LocustRun) -> bool:
        return all(so_far.count(key) >= MEDIAN_SAMPLES for key in COMPARED)

    what = f"{MEDIAN_SAMPLES} requests of each compared name"
    base = run_locust_until(
        reference_target(**FIXED_MODEL).url, tmp_path / "base", until=enough, what=what
    )
    slow = run_locust_until(
        reference_target(**FIXED_MODEL, slowdown=5.0).url,
        tmp_path / "slow",
        until=enough,
        what=what,
    )

    for run in (base, slow):
        assert run.returncode == 0, run.log[-3000:]
        assert run.failures == []
    for key in COMPARED:
        base_ms, slow_ms = base.median_ms(key), slow.median_ms(key)
        # 5 x 20 ms of service time (and more for PhonePe's calls) under exactly this name.
        assert slow_ms >= 0.9 * 5 * FIXED_ROUTES_MS, (key, base_ms, slow_ms)
        assert slow_ms >= 1.5 * base_ms, (key, base_ms, slow_ms)


def test_a_bad_knob_stops_locust_with_one_line(tmp_path: Path) -> None:
    run = run_locust(
        "http://127.0.0.1:9", tmp_path, "--time-scale", "0", "--run-time", "1s", profile=None
    )
    assert run.returncode == 2, run.log
    lines = [line for line in run.log.splitlines() if "paybench scenarios" in line]
    assert lines == [
        "paybench scenarios: --time-scale 0: must be above 0 (1 = PhonePe's real schedule, "
        "0.02 = 50x faster)"
    ]
    assert "Traceback" not in run.log


def test_steps_shape_holds_each_step_and_stops_by_itself(reference_target, tmp_path: Path) -> None:
    target = reference_target()
    run = run_locust(
        target.url,
        tmp_path,
        "--shape", "steps",
        "--step-start-users", "2",
        "--step-users", "2",
        "--step-max-users", "4",
        "--step-time", "2s",
        "--time-scale", "0.02",
        profile=None,
    )  # fmt: skip
    assert run.returncode == 0, run.log[-3000:]
    ramps = re.findall(r"Ramping to (\d+) users", run.log)
    assert ramps[:2] == ["2", "4"], run.log[-3000:]
    assert "Shape test completed" in run.log
    assert run.count(catalogue.INITIATE) > 0


def test_credentials_from_the_environment_are_used_and_never_printed(
    reference_target, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "Zq7secretPw42"
    # The target (a child of this process) and Locust read the same variables.
    monkeypatch.setenv("PAYBENCH_WEBHOOK_USERNAME", "pb_bench_user")
    monkeypatch.setenv("PAYBENCH_WEBHOOK_PASSWORD", secret)
    target = reference_target()
    run = run_locust_until(
        target.url,
        tmp_path,
        "--html",
        str(tmp_path / "report.html"),
        until=lambda so_far: so_far.count(catalogue.WEBHOOK_COMPLETED) > 0,
        what="a completed webhook (a genuine, authenticated delivery)",
    )

    assert run.returncode == 0, run.log[-3000:]
    assert run.count(catalogue.WEBHOOK_COMPLETED) > 0
    assert run.failures == []  # genuine ones accepted, forged ones refused
    assert secret not in run.log
    for path in tmp_path.iterdir():
        assert secret not in path.read_text(errors="replace"), path


def test_python_help_lists_every_knob_with_its_environment_variable() -> None:
    from tests.locustfiles.locust_runs import PAYMENTS, ROOT

    out = subprocess.run(
        [sys.executable, str(PAYMENTS), "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PAYBENCH_WEBHOOK_PASSWORD": "Zq7secretPw42"},
    )
    assert out.returncode == 0, out.stderr
    text = " ".join(out.stdout.split())  # argparse wraps lines
    knobs = [
        ("--time-scale", "PAYBENCH_TIME_SCALE"),
        ("--payer-delay", "PAYBENCH_PAYER_DELAY"),
        ("--think-time", "PAYBENCH_THINK_TIME"),
        ("--failed-fraction", "PAYBENCH_FAILED_FRACTION"),
        ("--duplicate-fraction", "PAYBENCH_DUPLICATE_FRACTION"),
        ("--forged-fraction", "PAYBENCH_FORGED_FRACTION"),
        ("--webhook-username", "PAYBENCH_WEBHOOK_USERNAME"),
        ("--webhook-password", "PAYBENCH_WEBHOOK_PASSWORD"),
        ("--api-prefix", "PAYBENCH_API_PREFIX"),
        ("--checkout-weight", "PAYBENCH_CHECKOUT_WEIGHT"),
        ("--webhook-weight", "PAYBENCH_WEBHOOK_WEIGHT"),
        ("--health-users", "PAYBENCH_HEALTH_USERS"),
        ("--health-interval", "PAYBENCH_HEALTH_INTERVAL"),
        ("--shape", "PAYBENCH_SHAPE"),
        ("--step-start-users", "PAYBENCH_STEP_START_USERS"),
        ("--step-users", "PAYBENCH_STEP_USERS"),
        ("--step-time", "PAYBENCH_STEP_TIME"),
        ("--step-max-users", "PAYBENCH_STEP_MAX_USERS"),
    ]
    for option, env in knobs:
        assert option in text, option
        assert env in text, env
    assert "Zq7secretPw42" not in out.stdout
    assert "paybenchlocal1" not in out.stdout  # nor the reference target's default password
