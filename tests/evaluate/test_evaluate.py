"""evaluate(): budgets judged on literal runs with real histograms of known latencies."""

from __future__ import annotations

import numpy as np
import pytest

from harness.core import stats
from harness.core.budgets import parse_budgets
from harness.core.catalogue import REQUEST_KEYS
from harness.core.evaluate import (
    NO_BASELINE_YET,
    evaluate,
    exit_code,
    margin_pct,
)
from harness.core.model import AGGREGATE_KEY, Baseline, Budgets, RequestStats
from harness.errors import EXIT_BUDGET_BROKEN, EXIT_OK, EXIT_UNJUDGEABLE
from tests.evaluate.literal_runs import request, run

PLANS = "GET /api/plans"
HEALTH = "GET /api/health"
HEALTH_DB = "GET /api/health/database"
INITIATE = "POST /api/payments/v2/initiate"
ONE_TO_100 = np.arange(1, 101, dtype=np.float64)  # avg 50.5, p95 95 ms (HDR: 95.03)
ONE_TO_40 = np.arange(1, 41, dtype=np.float64)  # p95 38 ms with a wide interval


def budgets(text: str) -> Budgets:
    return parse_budgets("version: 1\n" + text, "budgets.yaml", known_keys=REQUEST_KEYS)


def only(verdict, metric: str | None = None):  # type: ignore[no-untyped-def]
    results = [r for r in verdict.results if metric is None or r.budget.metric == metric]
    assert len(results) == 1
    return results[0]


# --- plain budgets ---------------------------------------------------------------------------


def test_a_holding_budget_passes_with_positive_margin_and_an_interval() -> None:
    verdict = evaluate(
        run(request(PLANS, ONE_TO_100)), budgets('requests: {"GET /api/plans": {avg: "< 300ms"}}')
    )
    r = only(verdict)
    assert (verdict.outcome, r.status, r.request_key) == ("PASS", "pass", PLANS)
    assert r.measured == pytest.approx(50.5)
    assert r.limit == 300.0
    assert r.margin_pct == pytest.approx((300 - 50.5) / 300 * 100)
    assert r.ci_low is not None and r.ci_high is not None
    assert r.ci_low < 50.5 < r.ci_high
    assert not r.marginal
    assert exit_code(verdict) == EXIT_OK


def test_a_broken_percentile_fails_with_negative_margin() -> None:
    verdict = evaluate(
        run(request(PLANS, ONE_TO_100)), budgets('requests: {"GET /api/plans": {p95: "< 90ms"}}')
    )
    r = only(verdict)
    assert (verdict.outcome, r.status) == ("FAIL", "fail")
    assert r.measured == pytest.approx(95.0, rel=1e-3)
    assert r.margin_pct == pytest.approx((90 - r.measured) / 90 * 100)
    assert r.margin_pct < 0
    assert "p95 95.0 ms breaks p95 < 90.0 ms" in r.message
    assert verdict.broken == (r,)
    assert exit_code(verdict) == EXIT_BUDGET_BROKEN


def test_at_the_limit_a_strict_budget_breaks_and_an_inclusive_one_holds() -> None:
    result = run(request(PLANS, ONE_TO_100, duration_s=20.0))  # 5 req/s exactly
    strict = only(evaluate(result, budgets('requests: {"GET /api/plans": {rps: "> 5"}}')))
    assert (strict.measured, strict.status, strict.margin_pct) == (5.0, "fail", 0.0)
    inclusive = only(evaluate(result, budgets('requests: {"GET /api/plans": {rps: ">= 5"}}')))
    assert (inclusive.status, inclusive.margin_pct) == ("pass", 0.0)


@pytest.mark.parametrize(
    ("text", "status", "margin"),
    [(">= 5", "pass", 100.0), (">= 20", "fail", -50.0), ("< 20", "pass", 50.0)],
)
def test_margin_sign_follows_the_operator(text: str, status: str, margin: float) -> None:
    verdict = evaluate(run(request(PLANS, ONE_TO_100)), budgets(f'run: {{rps: "{text}"}}'))
    r = only(verdict)
    assert r.request_key == AGGREGATE_KEY
    assert (r.measured, r.status, r.margin_pct) == (10.0, status, margin)
    assert r.ci_low is None  # throughput carries no interval


def test_every_metric_reads_its_own_figure() -> None:
    text = """requests:
  "GET /api/plans": {min: "> 0.5ms", max: "< 101ms", median: "< 60ms", p99.9: "< 200ms",
                     error_rate: "< 5%", count: ">= 100", rps: ">= 1"}
"""
    verdict = evaluate(run(request(PLANS, ONE_TO_100, failures=2)), budgets(text))
    measured = {r.budget.metric: r.measured for r in verdict.results}
    assert measured["min"] == 1.0
    assert measured["max"] == 100.0
    assert measured["median"] == pytest.approx(50.0, rel=1e-3)
    assert measured["p99.9"] == pytest.approx(100.0, rel=1e-3)
    assert measured["error_rate"] == 2.0
    assert measured["count"] == 100.0
    assert measured["rps"] == 10.0
    assert verdict.outcome == "PASS"


def test_zero_error_budget() -> None:
    text = 'requests: {"GET /api/plans": {error_rate: "<= 0%"}}'
    clean = only(evaluate(run(request(PLANS, ONE_TO_100)), budgets(text)))
    assert (clean.status, clean.measured, clean.margin_pct) == ("pass", 0.0, None)
    dirty = only(evaluate(run(request(PLANS, ONE_TO_100, failures=1)), budgets(text)))
    assert (dirty.status, dirty.measured, dirty.margin_pct) == ("fail", 1.0, None)


def test_marginal_when_the_interval_straddles_the_limit() -> None:
    # 40 samples: p95 is 38 ms and its 95 % interval runs from 35 to 40 ms.
    result = run(request(PLANS, ONE_TO_40))
    held = only(evaluate(result, budgets('requests: {"GET /api/plans": {p95: "< 39ms"}}')))
    assert (held.status, held.marginal) == ("pass", True)
    assert held.ci_low < 39.0 < held.ci_high
    assert "straddles the limit" in held.message
    broken = only(evaluate(result, budgets('requests: {"GET /api/plans": {p95: "< 37ms"}}')))
    assert (broken.status, broken.marginal) == ("fail", True)
    clear = only(evaluate(result, budgets('requests: {"GET /api/plans": {p95: "< 80ms"}}')))
    assert (clear.status, clear.marginal) == ("pass", False)


# --- no samples -------------------------------------------------------------------------------


def test_a_name_that_never_ran_fails_with_no_samples() -> None:
    verdict = evaluate(
        run(request(PLANS, ONE_TO_100)),
        budgets('requests: {"GET /api/subscriptions/current": {avg: "< 1s"}}'),
    )
    r = only(verdict)
    assert (verdict.outcome, r.status, r.measured, r.margin_pct) == (
        "FAIL",
        "no samples",
        None,
        None,
    )
    assert r.message == "no samples: 'GET /api/subscriptions/current' never ran in this run"
    assert exit_code(verdict) == EXIT_BUDGET_BROKEN


def test_a_name_that_ran_only_during_the_ramp_says_so() -> None:
    ramp = [request(INITIATE, ONE_TO_40)]
    verdict = evaluate(
        run(request(PLANS, ONE_TO_100), ramp=ramp),
        budgets(f'requests: {{"{INITIATE}": {{avg: "< 2s"}}}}'),
    )
    assert only(verdict).message == (
        f"no samples: '{INITIATE}' ran only during the ramp, not in the steady state"
    )


def test_a_glob_expands_to_every_matching_name_in_run_order() -> None:
    result = run(
        request(HEALTH_DB, ONE_TO_40), request(PLANS, ONE_TO_100), request(HEALTH, ONE_TO_40)
    )
    verdict = evaluate(result, budgets('requests: {"GET /api/health*": {avg: "< 100ms"}}'))
    assert [(r.request_key, r.status) for r in verdict.results] == [
        (HEALTH_DB, "pass"),
        (HEALTH, "pass"),
    ]
    assert all(r.measured == pytest.approx(20.5) for r in verdict.results)


def test_a_glob_that_matches_nothing_in_the_run_is_no_samples() -> None:
    verdict = evaluate(
        run(request(PLANS, ONE_TO_100)), budgets('requests: {"GET /api/health*": {avg: "< 100ms"}}')
    )
    r = only(verdict)
    assert (r.request_key, r.status) == ("GET /api/health*", "no samples")
    assert r.message == "no samples: no request matching 'GET /api/health*' ran in this run"


def test_a_name_with_zero_steady_state_requests_is_no_samples() -> None:
    empty = request(PLANS, [])
    r = only(
        evaluate(
            run(empty, request(HEALTH, ONE_TO_40)),
            budgets('requests: {"GET /api/plans": {error_rate: "< 1%"}}'),
        )
    )
    assert r.status == "no samples"


# --- Locust's CSV only --------------------------------------------------------------------


def locust_only(percentiles: dict[float, float]) -> RequestStats:
    return RequestStats(
        request_type="GET",
        name="/api/plans",
        count=100,
        failures=0,
        duration_s=10.0,
        avg_ms=50.5,
        min_ms=1.0,
        max_ms=100.0,
        locust_percentiles_ms=percentiles,
        source="locust",
    )


def test_a_percentile_locust_did_not_report_fails_and_says_how_to_get_it() -> None:
    s = locust_only({50.0: 50.0, 95.0: 95.0, 99.0: 99.0, 99.9: 100.0})
    verdict = evaluate(
        run(s), budgets('requests: {"GET /api/plans": {p97: "< 300ms", p95: "< 300ms"}}')
    )
    p97, p95 = verdict.results
    assert (p97.status, p97.measured) == ("fail", None)
    assert "p97 is not available from Locust's CSV (it has p50, p95, p99, p99.9)" in p97.message
    assert "paybench run" in p97.message
    assert (p95.status, p95.measured, p95.ci_low, p95.marginal) == ("pass", 95.0, None, False)


# --- outcomes -----------------------------------------------------------------------------


def test_incomplete_wins_and_copies_the_unreliable_reasons() -> None:
    result = run(
        request(PLANS, ONE_TO_100),
        unreliable=["the load generator's CPU reached 97 %"],
        incomplete=True,
        incomplete_reason="interrupted after 4 s",
    )
    verdict = evaluate(result, budgets('requests: {"GET /api/plans": {avg: "< 300ms"}}'))
    assert verdict.outcome == "INCOMPLETE"
    assert verdict.reasons == ("interrupted after 4 s", "the load generator's CPU reached 97 %")
    assert only(verdict).status == "pass"  # still judged, for the record
    assert exit_code(verdict) == EXIT_UNJUDGEABLE


def test_unreliable_run_copies_the_reasons() -> None:
    result = run(request(PLANS, ONE_TO_100), unreliable=["the load generator's CPU reached 97 %"])
    verdict = evaluate(result, budgets('requests: {"GET /api/plans": {avg: "< 300ms"}}'))
    assert verdict.outcome == "UNRELIABLE"
    assert verdict.reasons == ("the load generator's CPU reached 97 %",)
    assert exit_code(verdict) == EXIT_UNJUDGEABLE


def test_incomplete_run() -> None:
    result = run(request(PLANS, ONE_TO_100), incomplete=True, incomplete_reason="interrupted")
    verdict = evaluate(result, budgets('requests: {"GET /api/plans": {avg: "< 10ms"}}'))
    assert (verdict.outcome, verdict.reasons) == ("INCOMPLETE", ("interrupted",))
    assert exit_code(verdict) == EXIT_UNJUDGEABLE


# --- regression budgets -------------------------------------------------------------------

P95_SIGNIFICANT = f'regressions: {{requests: {{"{INITIATE}": {{p95: "+10% significant"}}}}}}'
BASELINE_TEXT = "median of the last 5 runs of profile nightly"


def baseline(values: tuple[float, ...], key: str = INITIATE, metric: str = "p95") -> Baseline:
    return Baseline(
        BASELINE_TEXT,
        tuple(f"run-{i}" for i in range(len(values))),
        {key: {metric: values}},
    )


def test_a_significant_rise_breaks_and_names_the_baseline() -> None:
    result = run(request(INITIATE, ONE_TO_100))  # p95 95 ms
    verdict = evaluate(result, budgets(P95_SIGNIFICANT), baseline((50.0, 52.0, 49.0, 51.0, 50.5)))
    r = only(verdict)
    assert (verdict.outcome, r.status, r.baseline) == ("FAIL", "fail", BASELINE_TEXT)
    assert r.limit == pytest.approx(50.5 * 1.1)
    assert r.margin_pct < 0
    assert "vs baseline 50.5 ms (median of the last 5 runs of profile nightly): +88.2 %" in (
        r.message
    )
    assert "above the 95 % prediction interval" in r.message
    assert r.message.endswith("; broken")


def test_a_rise_within_run_to_run_noise_holds_when_only_significant_rises_count() -> None:
    noisy = baseline((50.0, 120.0, 80.0, 60.0, 100.0))  # median 80; 95 is +18.8 %
    result = run(request(INITIATE, ONE_TO_100))
    r = only(evaluate(result, budgets(P95_SIGNIFICANT), noisy))
    assert (r.status, r.baseline) == ("pass", BASELINE_TEXT)
    assert "+18.8 %" in r.message
    assert "within the 95 % prediction interval" in r.message
    assert r.message.endswith("holds: the rise is not significant")
    # Without "significant" the same rise breaks.
    plain = f'regressions: {{requests: {{"{INITIATE}": {{p95: "+10%"}}}}}}'
    assert only(evaluate(result, budgets(plain), noisy)).status == "fail"


def test_a_small_rise_holds() -> None:
    r = only(
        evaluate(
            run(request(INITIATE, ONE_TO_100)), budgets(P95_SIGNIFICANT), baseline((90.0,) * 5)
        )
    )
    assert r.status == "pass"
    assert r.margin_pct == pytest.approx((99.0 - r.measured) / 99.0 * 100)


def test_error_rate_regression_in_points() -> None:
    text = 'regressions: {run: {error_rate: "+0.5 points"}}'
    base = baseline((0.0, 0.0, 0.1), key=AGGREGATE_KEY, metric="error_rate")
    broken = only(evaluate(run(request(PLANS, ONE_TO_100, failures=2)), budgets(text), base))
    assert (broken.status, broken.measured, broken.limit) == ("fail", 2.0, 0.5)
    assert "+2.00 points, allowed +0.5 points" in broken.message
    held = only(evaluate(run(request(PLANS, ONE_TO_100)), budgets(text), base))
    assert held.status == "pass"


def test_with_fewer_than_three_runs_a_rise_cannot_be_told_from_run_to_run_noise() -> None:
    """Guards against false alarms in a young history: one or two baseline runs have no
    spread to weigh, and a run's own interval alone calls run-to-run differences regressions."""
    result = run(request(INITIATE, ONE_TO_40))  # p95 38 ms, interval 35..40 ms
    five_pct = f'regressions: {{requests: {{"{INITIATE}": {{p95: "+5% significant"}}}}}}'
    one = only(evaluate(result, budgets(five_pct), baseline((35.5,))))
    assert one.status == "inconclusive"  # +7 %
    assert "significance unknown: the baseline has 1 run, and the spread" in one.message
    two = only(evaluate(result, budgets(five_pct), baseline((30.0, 31.0))))
    assert two.status == "inconclusive"  # +24 %, still no spread between runs to weigh
    assert "the baseline has 2 runs" in two.message
    # Without "significant" the measured rise decides, as before.
    plain = f'regressions: {{requests: {{"{INITIATE}": {{p95: "+5%"}}}}}}'
    assert only(evaluate(result, budgets(plain), baseline((30.0, 31.0)))).status == "fail"


def test_with_fewer_than_three_runs_and_no_interval_significance_is_unknown() -> None:
    text = f'regressions: {{requests: {{"{INITIATE}": {{max: "+10% significant"}}}}}}'
    r = only(
        evaluate(run(request(INITIATE, ONE_TO_100)), budgets(text), baseline((50.0,), metric="max"))
    )
    # +98 % with nothing to tell noise by: cannot tell is not a pass.
    assert r.status == "inconclusive"
    assert "significance unknown" in r.message


def test_without_a_baseline_regression_budgets_are_skipped_not_failed() -> None:
    result = run(request(INITIATE, ONE_TO_100))
    verdict = evaluate(result, budgets(P95_SIGNIFICANT), None)
    r = only(verdict)
    assert (verdict.outcome, r.status, r.passed, r.message) == (
        "PASS",
        "skipped",
        True,
        NO_BASELINE_YET,
    )
    assert r.measured == pytest.approx(95.0, rel=1e-3)
    other = baseline((50.0,) * 5, key=PLANS)
    r = only(evaluate(result, budgets(P95_SIGNIFICANT), other))
    assert r.status == "skipped"
    assert BASELINE_TEXT in r.message


def test_a_regression_budget_on_a_name_that_never_ran_is_no_samples() -> None:
    verdict = evaluate(
        run(request(PLANS, ONE_TO_100)), budgets(P95_SIGNIFICANT), baseline((50.0,) * 5)
    )
    assert only(verdict).status == "no samples"
    assert verdict.outcome == "FAIL"


# --- the statistics behind them ----------------------------------------------------------


def test_a_long_run_of_250_intervals_is_judged_with_intervals() -> None:
    """Guards the long-run judging crash: an avg budget over more interval histograms than
    the bootstrap's block cap (a 500 s run at 2 s intervals) raised a matmul ValueError."""
    values = np.random.default_rng(1).lognormal(np.log(40.0), 0.3, 5_000)
    result = run(request(PLANS, values, duration_s=500.0, intervals=250))
    text = 'requests: {"GET /api/plans": {avg: "< 300ms", p95: "< 300ms"}}'
    verdict = evaluate(result, budgets(text))
    assert verdict.outcome == "PASS"
    for r in verdict.results:
        assert r.ci_low is not None and r.ci_high is not None
        assert r.ci_low <= r.measured <= r.ci_high


def test_margin_of_a_zero_limit_is_none() -> None:
    assert margin_pct("<=", 0.0, 0.0) is None
    assert margin_pct("<", 50.0, 100.0) == 50.0
    assert margin_pct(">=", 150.0, 100.0) == 50.0


def test_histograms_from_stats_are_what_runs_hold() -> None:
    # Guard for the fixtures: the judge sees exactly the latencies recorded.
    h = request(PLANS, ONE_TO_100).histogram
    assert isinstance(h, stats.Histogram)
    assert h.count == 100
