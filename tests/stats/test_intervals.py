"""harness.core.stats intervals: order statistics, block bootstrap, normal, Wilson, prediction.

Literal data, published tables and fixed seeds only.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.core import stats

# -- order-statistic interval (Conover 1999, section 3.2) ---------------------------------------


@pytest.mark.parametrize(
    ("n", "percent", "ranks"),
    [
        (10, 50.0, (2, 9)),  # Conover's table: X(2), X(9) for the median of 10
        (20, 50.0, (6, 15)),
        (100, 50.0, (40, 61)),
        (1000, 99.0, (983, 997)),
        (5, 99.0, (4, 6)),  # s = n + 1: no order statistic is high enough
    ],
)
def test_order_statistic_ranks(n, percent, ranks):
    assert stats.order_statistic_ranks(n, percent) == ranks


@pytest.mark.parametrize(("n", "percent"), [(10, 50.0), (37, 90.0), (200, 95.0), (60, 10.0)])
def test_order_statistic_ranks_cover_at_least_95_percent(n, percent):
    p = percent / 100

    def cdf(k: int) -> float:
        return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1))

    r, s = stats.order_statistic_ranks(n, percent)
    assert 1 <= r < s <= n
    assert cdf(s - 1) - cdf(r - 1) >= 0.95
    # Tight: moving either end inwards would drop a tail below 2.5 %.
    assert cdf(r) > 0.025
    assert cdf(s - 2) < 0.975


def test_order_statistic_ranks_of_a_million_samples_stay_near_the_normal_approximation():
    n, p = 1_000_000, 0.99
    r, s = stats.order_statistic_ranks(n, 99.0)
    half = 1.959964 * math.sqrt(n * p * (1 - p))
    assert abs(r - (n * p - half)) < 2 and abs(s - (n * p + half)) < 3


def test_percentile_ci_from_order_statistics_on_literal_data():
    h = stats.histogram_from_ms([float(v) for v in range(1, 1001)])  # 1 ms .. 1000 ms
    ci = stats.percentile_ci(h, [], 50.0)
    assert ci.method == stats.METHOD_ORDER_STATISTIC
    assert ci.low_ms == pytest.approx(469.0, rel=1e-3)  # X(469)
    assert ci.high_ms == pytest.approx(532.0, rel=1e-3)  # X(532)
    assert "ranks 469..532 of n=1000" in ci.detail


def test_percentile_ci_with_too_few_samples_says_so():
    h = stats.histogram_from_ms([10.0, 20.0, 30.0])
    ci = stats.percentile_ci(h, [], 99.0)
    assert ci.high_ms == pytest.approx(30.0, rel=1e-3)
    assert "upper bound is the sample maximum" in ci.detail


# -- moving-block bootstrap (Kuensch 1989) ------------------------------------------------------


def _drifting_intervals(k: int = 16, per: int = 400, seed: int = 11) -> list[stats.Histogram]:
    # Each interval's latencies sit around a level that drifts over the run: samples in one
    # interval are alike (autocorrelated), which an order-statistic interval cannot see.
    rng = np.random.default_rng(seed)
    levels = np.linspace(20.0, 40.0, k)
    return [stats.histogram_from_ms(rng.normal(level, 1.0, per)) for level in levels]


def test_block_bootstrap_widens_the_interval_for_autocorrelated_intervals():
    intervals = _drifting_intervals()
    total = stats.merge_histograms(intervals)
    order_only = stats.percentile_ci(total, [], 50.0)
    ci = stats.percentile_ci(total, intervals, 50.0)
    assert ci.method == stats.METHOD_BLOCK_BOOTSTRAP
    assert ci.width_ms > 5 * order_only.width_ms
    assert ci.contains(total.percentile_ms(50.0))
    assert ci.detail == (
        "moving-block bootstrap over 16 intervals, block of 3 interval(s), "
        "1000 resamples (Kuensch 1989)"
    )


def test_block_bootstrap_is_reproducible_and_seeded():
    intervals = _drifting_intervals()
    total = stats.merge_histograms(intervals)
    first = stats.percentile_ci(total, intervals, 95.0, seed=1)
    assert stats.percentile_ci(total, intervals, 95.0, seed=1) == first
    assert stats.percentile_ci(total, intervals, 95.0, seed=2) != first


def test_fewer_than_eight_intervals_use_order_statistics_only():
    intervals = _drifting_intervals(k=7)
    total = stats.merge_histograms(intervals)
    assert stats.percentile_ci(total, intervals, 50.0).method == stats.METHOD_ORDER_STATISTIC


def test_empty_intervals_are_left_out_of_the_bootstrap():
    intervals = _drifting_intervals(k=7)
    total = stats.merge_histograms(intervals)
    padded = [stats.new_histogram(), *intervals, stats.new_histogram()]
    assert stats.percentile_ci(total, padded, 50.0) == stats.percentile_ci(total, intervals, 50.0)


def test_independent_intervals_keep_the_narrower_truth_close_to_order_statistics():
    rng = np.random.default_rng(2)
    intervals = [stats.histogram_from_ms(rng.lognormal(3.0, 0.4, 500)) for _ in range(20)]
    total = stats.merge_histograms(intervals)
    ci = stats.percentile_ci(total, intervals, 90.0)
    order_only = stats.percentile_ci(total, [], 90.0)
    # Without autocorrelation both methods agree to within a factor of two in width.
    assert 0.5 < ci.width_ms / order_only.width_ms < 2.0


def test_mean_ci_normal_on_literal_data():
    h = stats.histogram_from_ms([10.0] * 50 + [20.0] * 50)
    ci = stats.mean_ci(h, [])
    assert ci.method == stats.METHOD_NORMAL
    # mean 15 ms, sd 5 ms, n = 100: 15 +- 1.96 * 0.5
    assert ci.low_ms == pytest.approx(15.0 - 0.98, rel=2e-3)
    assert ci.high_ms == pytest.approx(15.0 + 0.98, rel=2e-3)


def test_mean_ci_bootstrap_for_drifting_intervals():
    intervals = _drifting_intervals()
    total = stats.merge_histograms(intervals)
    ci = stats.mean_ci(total, intervals, seed=1)
    assert ci.method == stats.METHOD_BLOCK_BOOTSTRAP
    assert ci.contains(total.mean_ms)
    assert ci.width_ms > 1.0  # the drift (20 -> 40 ms) dominates, not the 1 ms noise


# -- long runs: more intervals than MAX_BOOTSTRAP_BLOCKS ----------------------------------------


def _long_run(k: int) -> list[stats.Histogram]:
    # A slow drift, so that the bootstrap (not the normal or order-statistic interval) is the
    # wider one and is what gets reported and checked.
    rng = np.random.default_rng(k)
    levels = 20.0 + 5.0 * np.sin(np.linspace(0.0, 3.0, k))
    return [stats.histogram_from_ms(rng.normal(level, 2.0, 12)) for level in levels]


@pytest.mark.parametrize("k", [201, 250, 900, 7_200])
def test_mean_and_percentile_ci_over_more_intervals_than_blocks(k):
    """Guards the long-run judging crash: pooling intervals into MAX_BOOTSTRAP_BLOCKS groups
    once left the bootstrap weights at the unpooled count (a matmul error for 250)."""
    intervals = _long_run(k)
    total = stats.merge_histograms(intervals)
    pooled = f"over {k} intervals pooled into {stats.MAX_BOOTSTRAP_BLOCKS} groups of"
    for ci, estimate in (
        (stats.mean_ci(total, intervals), total.mean_ms),
        (stats.percentile_ci(total, intervals, 95.0), total.percentile_ms(95.0)),
        (stats.percentile_ci(total, intervals, 50.0), total.percentile_ms(50.0)),
    ):
        assert math.isfinite(ci.low_ms) and math.isfinite(ci.high_ms)
        assert ci.low_ms <= estimate <= ci.high_ms
        assert ci.method == stats.METHOD_BLOCK_BOOTSTRAP
        assert pooled in ci.detail, ci.detail


def test_pooling_equals_the_bootstrap_of_the_merged_groups():
    # 400 intervals pool into 200 groups of two: the same resampling as 200 histograms that
    # each hold two consecutive intervals.
    intervals = _long_run(400)
    pairs = [stats.merge_histograms(intervals[i : i + 2]) for i in range(0, 400, 2)]
    total = stats.merge_histograms(intervals)
    for pooled, merged in (
        (stats.percentile_ci(total, intervals, 99.0), stats.percentile_ci(total, pairs, 99.0)),
        (stats.mean_ci(total, intervals), stats.mean_ci(total, pairs)),
    ):
        assert (pooled.low_ms, pooled.high_ms) == (merged.low_ms, merged.high_ms)
        assert "pooled into 200 groups of 2 consecutive intervals, block of 6 group(s)" in (
            pooled.detail
        )
        assert "over 200 intervals, block of 6 interval(s)" in merged.detail


# -- Wilson (1927) and the prediction interval ------------------------------------------------


@pytest.mark.parametrize(
    ("successes", "n", "low", "high"),
    [
        # Newcombe, Statistics in Medicine 17 (1998) 857-872, table I (Wilson score method).
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_interval_matches_newcombe(successes, n, low, high):
    assert stats.wilson_interval(successes, n) == pytest.approx((low, high), abs=5e-5)


def test_wilson_interval_refuses_an_empty_sample():
    with pytest.raises(ValueError, match="n > 0"):
        stats.wilson_interval(0, 0)


def test_prediction_interval_on_literal_data():
    low, high = stats.prediction_interval([10.0, 12.0, 14.0])
    half = 4.30265273 * 2.0 * (1 + 1 / 3) ** 0.5  # t(0.975, 2) * sd * sqrt(1 + 1/n)
    assert (low, high) == pytest.approx((12.0 - half, 12.0 + half), rel=1e-8)
    assert stats.prediction_interval([5.0, 5.0, 5.0]) == (5.0, 5.0)
    with pytest.raises(ValueError, match="at least 2"):
        stats.prediction_interval([1.0])
