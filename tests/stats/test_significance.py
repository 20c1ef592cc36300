"""harness.core.stats.above_baseline: the one "significantly above the baseline" test."""

from __future__ import annotations

import math
import statistics

import pytest

from harness.core import stats

RUNS = [100.0, 104.0, 98.0, 102.0, 101.0]  # mean 101, sd sqrt(5)


def test_with_enough_runs_the_prediction_interval_decides():
    half = 2.77644511 * math.sqrt(5.0) * math.sqrt(1 + 1 / 5)  # t(0.975, 4) * sd * sqrt(1+1/n)
    above = stats.above_baseline(RUNS, 120.0)
    assert above.method == stats.METHOD_PREDICTION_INTERVAL
    assert (above.low, above.high) == pytest.approx((101.0 - half, 101.0 + half), rel=1e-8)
    assert (above.above, above.below, above.outside) == (True, False, True)
    assert above.baseline == 101.0 and above.runs == 5
    t = (120.0 - 101.0) / (math.sqrt(5.0) * math.sqrt(1.2))
    assert above.p_value == pytest.approx(stats.t_two_sided_p(t, 4), rel=1e-12)
    within = stats.above_baseline(RUNS, 105.0)
    assert (within.above, within.below, within.outside) == (False, False, False)
    below = stats.above_baseline(RUNS, 80.0)
    assert (below.above, below.below, below.outside) == (False, True, True)


@pytest.mark.parametrize("candidate", [101.0 + d / 4 for d in range(-60, 61)])
def test_p_value_below_five_percent_exactly_when_outside_the_95_percent_interval(candidate):
    sig = stats.above_baseline(RUNS, candidate)
    assert sig.outside == (sig.p_value < 0.05)


def test_equal_baseline_runs_have_a_zero_width_interval():
    flat = [50.0, 50.0, 50.0]
    assert stats.above_baseline(flat, 50.0).above is False
    assert stats.above_baseline(flat, 50.0).p_value == 1.0
    rise = stats.above_baseline(flat, 50.5)
    assert (rise.above, rise.p_value, rise.low, rise.high) == (True, 0.0, 50.0, 50.0)


def test_with_fewer_runs_it_cannot_be_told_whatever_the_candidates_own_interval():
    runs = [100.0, 110.0]
    assert statistics.median(runs) == 105.0
    # Far above, and its own interval too: without a spread between runs, no verdict.
    clear = stats.above_baseline(runs, 150.0, (140.0, 160.0))
    assert (clear.method, clear.above, clear.baseline, clear.p_value) == (
        stats.METHOD_NONE,
        None,
        105.0,
        None,
    )
    assert clear.own_error == pytest.approx(10.0 / stats.normal_quantile(0.975))


def test_without_runs_or_an_interval_it_cannot_be_told():
    unknown = stats.above_baseline([100.0, 110.0], 120.0)
    assert (unknown.method, unknown.above, unknown.p_value) == (stats.METHOD_NONE, None, None)
    nothing = stats.above_baseline([], 120.0, (110.0, 130.0))
    assert (nothing.method, nothing.above, nothing.runs) == (stats.METHOD_NONE, None, 0)
