"""The pure capacity analysis on literal series: fit, knee, capacity, stop rules, sentence."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.core.capacity import (
    CHECKOUT_KEY,
    BrokenBudget,
    Step,
    StopRules,
    analyse,
    find_capacity,
    find_saturation,
    fit_usl,
    headroom,
    step_from_stats,
    step_windows,
    steps_plan,
    stop_decision,
)
from harness.core.model import AGGREGATE_KEY, Budget, BudgetResult, RequestStats, Verdict

P95_INITIATE = BrokenBudget(
    what="p95 of payment initiation",
    key_path='requests."POST /api/payments/v2/initiate".p95',
    measured=2410.0,
    unit="ms",
    limit_text="< 2s",
    margin_pct=-20.5,
)


def step(
    users: int,
    checkouts: float,
    *,
    mean_ms: float = 50.0,
    held: bool = True,
    broken: tuple[BrokenBudget, ...] = (),
    error_rate_pct: float = 0.0,
    per_checkout: float = 8.0,
) -> Step:
    if not held and not broken:
        broken = (P95_INITIATE,)
    return Step(
        users=users,
        duration_s=10.0,
        throughput_rps=checkouts * per_checkout,
        checkout_rps=checkouts,
        percentiles_ms={AGGREGATE_KEY: {"p50": mean_ms, "p95": 2 * mean_ms, "p99": 3 * mean_ms}},
        error_rate_pct=error_rate_pct,
        budgets_held=not broken,
        broken=broken,
        mean_ms=mean_ms,
    )


def usl(n: np.ndarray, lam: float, sigma: float, kappa: float) -> np.ndarray:
    return lam * n / (1 + sigma * (n - 1) + kappa * n * (n - 1))


# --------------------------------------------------------------------------- USL fit


def test_fit_recovers_the_parameters_of_an_exact_usl_series() -> None:
    n = np.arange(1, 62, 5, dtype=float)
    fit = fit_usl(n, usl(n, 10.0, 0.05, 0.001))
    assert fit is not None
    assert fit.lambda_rps == pytest.approx(10.0, rel=1e-3)
    assert fit.sigma == pytest.approx(0.05, rel=1e-2)
    assert fit.kappa == pytest.approx(0.001, rel=1e-2)
    assert fit.r_squared > 0.9999
    # N* = sqrt((1 - 0.05) / 0.001) = 30.82; X(N*) from the true curve
    assert fit.peak_users == pytest.approx(math.sqrt(0.95 / 0.001), rel=1e-2)
    assert fit.peak_rps == pytest.approx(usl(np.array([30.82]), 10.0, 0.05, 0.001)[0], rel=1e-3)
    assert not fit.extrapolated


def test_fit_of_a_noisy_series_finds_the_peak_within_ten_percent() -> None:
    rng = np.random.default_rng(1)
    n = np.arange(2, 80, 4, dtype=float)
    truth = usl(n, 5.0, 0.02, 0.0004)
    noisy = truth * (1 + rng.normal(0.0, 0.04, n.size))
    fit = fit_usl(n, noisy)
    assert fit is not None
    true_peak_n = math.sqrt(0.98 / 0.0004)  # 49.5
    assert fit.peak_rps == pytest.approx(
        usl(np.array([true_peak_n]), 5.0, 0.02, 0.0004)[0], rel=0.1
    )
    assert fit.peak_users == pytest.approx(true_peak_n, rel=0.25)
    assert fit.sigma >= 0 and fit.kappa >= 0
    assert 0.8 < fit.r_squared < 1.0


def test_fit_of_amdahl_series_has_a_ceiling_and_no_peak() -> None:
    n = np.array([1, 2, 4, 8, 16, 32, 64], dtype=float)
    fit = fit_usl(n, usl(n, 4.0, 0.1, 0.0))
    assert fit is not None
    assert fit.kappa == pytest.approx(0.0, abs=1e-7)
    assert fit.peak_users is None and fit.peak_rps is None
    assert fit.ceiling_rps == pytest.approx(40.0, rel=1e-2)  # lambda / sigma


def test_fit_of_a_linear_series_keeps_the_constraints_and_finds_no_limit() -> None:
    n = np.array([5, 10, 15, 20, 25], dtype=float)
    fit = fit_usl(n, 3.0 * n)
    assert fit is not None
    assert fit.lambda_rps == pytest.approx(3.0, rel=1e-3)
    assert fit.sigma == pytest.approx(0.0, abs=1e-5) and fit.kappa == pytest.approx(0.0, abs=1e-7)
    assert fit.sigma >= 0 and fit.kappa >= 0
    assert fit.peak_users is None or fit.extrapolated
    assert fit.predict(25) == pytest.approx(75.0, rel=1e-3)


def test_fit_needs_three_distinct_user_counts() -> None:
    assert fit_usl([5, 5, 10], [10.0, 11.0, 20.0]) is None
    assert fit_usl([5, 10, 15], [10.0, 0.0, 20.0]) is None  # a step without throughput


# --------------------------------------------------------------------------- saturation


def closed_loop(users: list[int], think_s: float, service_s: float, servers: int) -> list[Step]:
    """A closed system in front of `servers` servers of fixed service time: the truth."""
    cap = servers / service_s
    steps = []
    for u in users:
        x = min(u / (think_s + service_s), cap)
        response_s = u / x - think_s  # Little's law
        steps.append(step(u, x, mean_ms=1000 * response_s))
    return steps


def test_the_knee_of_a_closed_loop_against_a_capacity_limit_is_its_capacity() -> None:
    steps = closed_loop([10, 20, 30, 40, 50, 60, 70], think_s=1.0, service_s=0.05, servers=2)
    sat = find_saturation(steps, "checkouts")
    assert sat.reached
    assert sat.rate == pytest.approx(40.0)  # N / S
    # 42 users would meet 40/s exactly; 40 users give 38.1/s, within 5 % of the plateau
    assert sat.knee is not None and sat.knee.users == 40


def test_a_series_that_never_saturates_says_not_reached_up_to_its_last_step() -> None:
    steps = [step(u, 0.8 * u, mean_ms=40.0) for u in (10, 20, 30, 40)]
    sat = find_saturation(steps, "checkouts")
    assert not sat.reached
    assert sat.knee is None and sat.rate is None
    assert sat.note == "not reached up to 40 users"
    a = analyse(steps)
    assert a.is_lower_bound
    assert a.sentence.startswith(
        "One instance holds the budgets up to at least 32 checkouts/s (260 requests/s, 40 users); "
        "capacity not reached up to 40 users (no budget broke, no knee)."
    )
    a = analyse(steps, expected_peak_rps=100.0)
    assert "at least 2.6x the expected peak of 100 requests/s;" in a.sentence
    a = analyse(steps, expected_peak_rps=1000.0)
    assert "at least 0.3x the expected peak of 1,000 requests/s: not yet shown to reach it" in (
        a.sentence
    )


def test_a_noisy_plateau_is_found_and_its_level_is_the_median() -> None:
    rng = np.random.default_rng(1)
    users = [10, 20, 30, 40, 50, 60, 70, 80]
    steps = []
    for s in closed_loop(users, think_s=1.0, service_s=0.02, servers=1):  # truth 50/s
        noisy = s.checkout_rps * (1 + rng.normal(0.0, 0.03))
        steps.append(step(s.users, noisy, mean_ms=s.mean_ms or 0.0))
    sat = find_saturation(steps, "checkouts")
    assert sat.reached
    assert sat.rate == pytest.approx(50.0, rel=0.05)
    assert sat.knee is not None and 50 <= sat.knee.users <= 60  # 51 users meet 50/s


def test_flat_throughput_without_latency_rising_is_not_called_saturation() -> None:
    steps = [step(10, 20.0), step(20, 38.0), step(30, 40.0), step(40, 40.5), step(50, 39.8)]
    sat = find_saturation(steps, "checkouts")
    assert not sat.reached
    assert "load generator" in sat.note


# --------------------------------------------------------------------------- capacity


def test_capacity_is_the_best_held_step_below_the_first_break() -> None:
    steps = [
        step(10, 10.0),
        step(20, 19.0),
        step(30, 26.0),
        step(40, 24.0, held=False),
        step(50, 27.0),  # holds again (noise): must not raise the capacity
        step(60, 25.0, held=False),
    ]
    cap = find_capacity(steps, "checkouts")
    assert cap.held is not None and cap.held.users == 30
    assert cap.first_broken is not None and cap.first_broken.users == 40
    assert cap.held_again == (50,)


def test_a_first_step_that_breaks_leaves_no_capacity() -> None:
    a = analyse([step(10, 5.0, held=False), step(20, 6.0, held=False)])
    assert a.capacity.held is None
    assert a.sentence == (
        "The budgets broke already at the first step (10 users, about 5 checkouts/s): "
        "p95 of payment initiation is the first to break (2,410 ms, budget < 2s); "
        "start lower with --start-users."
    )


def test_headroom_is_capacity_over_expected_peak() -> None:
    assert headroom(240.0, 77.0) == pytest.approx(3.117, rel=1e-3)
    assert headroom(240.0, None) is None
    assert headroom(None, 77.0) is None
    assert headroom(240.0, 0.0) is None


# --------------------------------------------------------------------------- the sentence


def test_the_review_sentence_names_capacity_headroom_and_first_break() -> None:
    steps = [
        step(40, 80.0, mean_ms=30.0),
        step(80, 160.0, mean_ms=32.0),
        step(120, 238.0, mean_ms=60.0),
        step(140, 241.0, mean_ms=400.0, held=False),
    ]
    a = analyse(steps, expected_peak_rps=610.0)
    assert a.basis == "checkouts" and a.unit == "checkouts/s"
    assert a.capacity_rate == pytest.approx(238.0)
    # the expected peak is every request: compared with the requests/s at the capacity
    assert a.headroom == pytest.approx(8 * 238.0 / 610.0)
    assert a.sentence == (
        "One instance holds the budgets up to about 240 checkouts/s "
        "(1,900 requests/s, 120 users), 3.1x the expected peak of 610 requests/s; "
        "p95 of payment initiation is the first to break (2,410 ms, budget < 2s) at 140 users."
    )


def test_below_the_expected_peak_the_sentence_says_so() -> None:
    steps = [step(10, 10.0), step(20, 20.0), step(30, 21.0, held=False)]
    a = analyse(steps, expected_peak_rps=320.0)  # 20 checkouts/s are 160 requests/s
    assert "only 0.5x the expected peak of 320 requests/s: below the expected peak" in a.sentence


def test_without_checkouts_the_basis_is_every_request() -> None:
    steps = [
        Step(
            users=u,
            duration_s=5.0,
            throughput_rps=10.0 * u,
            checkout_rps=0.0,
            percentiles_ms={},
            error_rate_pct=0.0,
            budgets_held=True,
        )
        for u in (1, 2, 3)
    ]
    a = analyse(steps)
    assert a.basis == "requests"
    assert "30 requests/s" in a.sentence
    assert a.sentence == (
        "One instance holds the budgets up to at least 30 requests/s (3 users); "
        "capacity not reached up to 3 users (no budget broke, no knee). No expected peak was given "
        "(--expected-peak-rps, or capacity.expected_peak_rps in budgets.yaml), "
        "so no headroom is stated."
    )


# --------------------------------------------------------------------------- stop rules


RULES = StopRules(max_users=100)


def test_no_stop_while_everything_grows() -> None:
    assert stop_decision([step(10, 10.0), step(20, 20.0)], RULES, "checkouts") is None


def test_stop_after_two_broken_steps_or_one_clear_break() -> None:
    slightly = BrokenBudget("p95 of payment initiation", "k", 2100.0, "ms", "< 2s", -5.0)
    clearly = BrokenBudget("p95 of payment initiation", "k", 2600.0, "ms", "< 2s", -30.0)
    one = [step(10, 10.0), step(20, 20.0, broken=(slightly,))]
    assert stop_decision(one, RULES, "checkouts") is None
    two = [*one, step(30, 30.0, broken=(slightly,))]
    decision = stop_decision(two, RULES, "checkouts")
    assert decision is not None and decision.reason == "budgets broken" and decision.users == 30
    assert decision.message == "p95 of payment initiation 2,100 ms (budget < 2s) at 30 users"
    clear = [step(10, 10.0), step(20, 20.0, broken=(clearly,))]
    decision = stop_decision(clear, RULES, "checkouts")
    assert decision is not None and decision.reason == "budgets broken"


def test_stop_when_errors_climb() -> None:
    steps = [step(10, 10.0, error_rate_pct=0.5), step(20, 20.0, error_rate_pct=6.0)]
    decision = stop_decision(steps, RULES, "checkouts")
    assert decision is not None and decision.reason == "errors climbing"
    assert decision.message == "error rate 6.00 % at 20 users (was 0.50 %)"
    steady = [step(10, 10.0, error_rate_pct=6.0), step(20, 20.0, error_rate_pct=6.0)]
    assert stop_decision(steady, RULES, "checkouts") is None  # high but not climbing


def test_stop_when_throughput_makes_no_new_high() -> None:
    steps = [step(10, 10.0), step(20, 20.0), step(30, 20.3), step(40, 19.9)]
    decision = stop_decision(steps, RULES, "checkouts")
    assert decision is not None and decision.reason == "throughput flat"
    still_rising = [step(10, 10.0), step(20, 20.0), step(30, 20.3), step(40, 24.0)]
    assert stop_decision(still_rising, RULES, "checkouts") is None


def test_stop_at_max_users() -> None:
    decision = stop_decision([step(50, 50.0), step(100, 100.0)], RULES, "checkouts")
    assert decision is not None and decision.reason == "max users"
    assert decision.message == "reached --max-users 100"


# --------------------------------------------------------------------------- from statistics


def _stats(rtype: str, name: str, count: int, failures: int, avg_ms: float) -> RequestStats:
    return RequestStats(
        request_type=rtype,
        name=name,
        count=count,
        failures=failures,
        duration_s=4.0,
        avg_ms=avg_ms,
        min_ms=1.0,
        max_ms=avg_ms * 3,
        locust_percentiles_ms={50.0: avg_ms, 95.0: 2 * avg_ms, 99.0: 3 * avg_ms},
        source="locust",
    )


def test_a_step_from_request_statistics_and_a_verdict() -> None:
    initiate = _stats("POST", "/api/payments/v2/initiate", 80, 2, 120.0)
    plans = _stats("GET", "/api/plans", 120, 0, 20.0)
    flow = _stats("FLOW", "checkout: initiate -> confirmed", 78, 0, 3000.0)
    budget = Budget(
        key_path='requests."POST /api/payments/v2/initiate".p95',
        selector=CHECKOUT_KEY,
        metric="p95",
        op="<",
        limit=200.0,
        text="< 200ms",
    )
    broken = BudgetResult(budget, CHECKOUT_KEY, "fail", 240.0, 200.0, -20.0)
    s = step_from_stats(
        users=12,
        requests=[initiate, plans, flow],
        verdict=Verdict("FAIL", (broken,)),
        start_s=6.0,
    )
    assert s.checkout_rps == pytest.approx(20.0)
    assert s.throughput_rps == pytest.approx(50.0)  # the flow is not a request
    assert s.error_rate_pct == pytest.approx(1.0)
    assert s.mean_ms == pytest.approx((80 * 120.0 + 120 * 20.0) / 200)
    assert s.percentiles_ms[CHECKOUT_KEY] == {"p50": 120.0, "p95": 240.0, "p99": 360.0}
    assert not s.budgets_held
    assert str(s.broken[0]) == "p95 of payment initiation 240 ms (budget < 200ms)"
    no_samples = BudgetResult(budget, CHECKOUT_KEY, "no samples", None, 200.0, None)
    held = step_from_stats(users=12, requests=[plans], verdict=Verdict("PASS", (no_samples,)))
    assert held.budgets_held and held.checkout_rps == 0.0


# --------------------------------------------------------------------------- step windows


def test_steps_plan_ends_at_max_users() -> None:
    assert steps_plan(10, 10, 40) == (10, 20, 30, 40)
    assert steps_plan(10, 15, 50) == (10, 25, 40, 50)
    assert steps_plan(5, 5, 5) == (5,)


def test_step_windows_settle_after_the_users_are_reached_and_align_to_intervals() -> None:
    origin = 1000.2
    users = [(1000.5, 10), (1001.5, 10), (1006.6, 12), (1007.5, 20), (1012.5, 30)]
    windows = step_windows(
        origin_epoch=origin,
        counts=(10, 20, 30),
        step_time_s=6.0,
        interval_s=0.5,
        users=users,
        settle_s=1.5,
    )
    # step 0: reached at 1000.5 -> steady from 1002.0; ends at 1006.2 -> 1006.0
    # step 1: 20 users reached at 1007.5 (not at 1006.6 with 12) -> 1009.0 .. 1012.0
    # step 2: reached at 1012.5 -> 1014.0 .. 1018.0
    assert [(w.users, w.start_epoch, w.end_epoch) for w in windows] == [
        (10, 1002.0, 1006.0),
        (20, 1009.0, 1012.0),
        (30, 1014.0, 1018.0),
    ]


def test_a_step_cut_short_by_the_stop_is_left_out() -> None:
    windows = step_windows(
        origin_epoch=0.0,
        counts=(10, 20, 30),
        step_time_s=4.0,
        interval_s=1.0,
        stop_epoch=9.5,
        settle_s=1.0,
    )
    # step 2 would start steady at 9.0 and the stop cuts it at 9.0 (9.5 floored)
    assert [(w.users, w.start_epoch, w.end_epoch) for w in windows] == [
        (10, 1.0, 4.0),
        (20, 5.0, 8.0),
    ]
