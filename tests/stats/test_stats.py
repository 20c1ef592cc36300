"""harness.core.stats: exact recording, percentiles, lossless merge, confidence intervals.

Literal data and fixed seeds only; hdrh (the reference HdrHistogram implementation) is the
oracle for bucket layout, percentiles and encoding.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hdrh.histogram import HdrHistogram

from harness.core import stats
from harness.core.model import RequestStats


def _hdrh_reference(values_ms: list[float] | np.ndarray) -> HdrHistogram:
    ref = HdrHistogram(1, stats.HIGHEST_TRACKABLE_NS, 3)
    for ns in stats.ms_to_ns_array(values_ms):
        ref.record_value(int(ns))
    return ref


def _lognormal_ms(n: int, median_ms: float, sigma: float, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).lognormal(math.log(median_ms), sigma, n)


def test_ms_to_ns_rounds_and_clamps_to_the_trackable_range():
    ns = stats.ms_to_ns_array([0.0, -3.0, 0.0000004, 0.2034567, 150.7, 10**9])
    assert ns.tolist() == [1, 1, 1, 203457, 150_700_000, stats.HIGHEST_TRACKABLE_NS]


def test_recording_fills_the_same_buckets_as_hdrh_record_value():
    values = [0.000001, 0.2034, 0.2035, 1.0, 7.77, 149.99, 150.0, 900.1, 59_999.0]
    h = stats.histogram_from_ms(values)
    ref = _hdrh_reference(values)
    assert h.encode() == ref.encode().decode("ascii")
    assert h.get_total_count() == len(values)


@pytest.mark.parametrize("percent", [0.0, 1.0, 50.0, 90.0, 95.0, 99.0, 99.9, 100.0])
def test_percentiles_equal_hdrh_get_value_at_percentile(percent):
    values = _lognormal_ms(20_000, 0.3, 0.9)
    h = stats.histogram_from_ms(values)
    ref = _hdrh_reference(values)
    assert stats.percentile_ns(h, percent) == ref.get_value_at_percentile(percent)
    assert h.get_value_at_percentile(percent) == ref.get_value_at_percentile(percent) / 1000


@pytest.mark.parametrize("median_ms", [0.2, 3.0, 150.0, 40_000.0])
def test_every_percentile_is_within_a_thousandth_of_the_exact_sample(median_ms):
    values = _lognormal_ms(5_000, median_ms, 0.6, seed=7)
    h = stats.histogram_from_ms(values)
    ordered = np.sort(values)
    for percent in (50.0, 90.0, 95.0, 99.0, 99.9):
        rank = max(int(percent * values.size / 100 + 0.5), 1)  # HdrHistogram's rank
        exact = ordered[rank - 1]
        measured = stats.percentile_ms(h, percent)
        assert 0 <= (measured - exact) / exact < 1 / 1024, (percent, measured, exact)


def test_request_stats_reads_a_histogram_in_milliseconds():
    h = stats.histogram_from_ms([0.2034, 0.5, 12.0])
    rs = RequestStats("GET", "/x", 3, 0, 1.0, 4.2, 0.2, 12.0, histogram=h)
    assert rs.percentile_ms(0.0) == pytest.approx(0.2034, rel=1e-3)
    assert rs.percentile_ms(100.0) == pytest.approx(12.0, rel=1e-3)


def test_merge_of_parts_equals_the_histogram_of_all_samples():
    values = _lognormal_ms(9_000, 5.0, 1.2, seed=3)
    parts = [stats.histogram_from_ms(chunk) for chunk in np.array_split(values, 7)]
    merged = stats.merge_histograms(parts)
    assert merged == stats.histogram_from_ms(values)
    assert merged.min_ns == int(stats.ms_to_ns_array([values.min()])[0])
    assert merged.max_ns == int(stats.ms_to_ns_array([values.max()])[0])


def test_merge_into_an_empty_histogram_keeps_the_minimum():
    # Regression: hdrh's add() takes the minimum of an empty histogram as 0.
    merged = stats.new_histogram()
    merged.add(stats.histogram_from_ms([5.0, 6.0]))
    assert merged.min_ns == 5_000_000
    assert merged.get_min_value() == pytest.approx(5000.0, rel=1e-3)


def test_encoding_round_trips_and_is_hdrhistogram_v2():
    values = _lognormal_ms(2_000, 40.0, 0.5, seed=5)
    h = stats.histogram_from_ms(values)
    text = stats.encode_histogram(h)
    assert text.startswith("HISTF")  # V2 compressed, base64: readable by any HDR tool
    decoded = stats.decode_histogram(text)
    assert decoded == h
    assert HdrHistogram.decode(text).get_total_count() == 2_000


def test_decode_converts_another_layout_into_ours():
    micro = HdrHistogram(1, 3_600_000_000, 2)  # microseconds, 2 significant figures
    micro.record_value(1500, 3)
    decoded = stats.decode_histogram(micro.encode().decode())
    assert decoded.get_total_count() == 3
    # 2 significant figures put 1500 in the bucket [1496, 1504); re-recorded at its lowest.
    assert stats.percentile_ns(decoded, 50) == 1496


def test_decode_refuses_text_that_is_not_a_histogram():
    with pytest.raises(ValueError, match="not an HdrHistogram V2 encoding"):
        stats.decode_histogram("definitely not base64 !!")


def test_empty_histogram_reads_as_nothing():
    h = stats.new_histogram()
    assert h.get_total_count() == 0
    assert stats.percentile_ms(h, 99) is None
    assert stats.percentile_ci(h, [], 99) is None
    assert stats.mean_ci(h, []) is None
    assert stats.decode_histogram(h.encode()).get_total_count() == 0


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


def _drifting_intervals(k: int = 16, per: int = 400) -> list[stats.Histogram]:
    # Each interval's latencies sit around a level that drifts over the run: samples in one
    # interval are alike (autocorrelated), which an order-statistic interval cannot see.
    rng = np.random.default_rng(11)
    levels = np.linspace(20.0, 40.0, k)
    return [stats.histogram_from_ms(rng.normal(level, 1.0, per)) for level in levels]


def test_block_bootstrap_widens_the_interval_for_autocorrelated_intervals():
    intervals = _drifting_intervals()
    total = stats.merge_histograms(intervals)
    order_only = stats.percentile_ci(total, [], 50.0)
    ci = stats.percentile_ci(total, intervals, 50.0)
    assert ci.method == stats.METHOD_BLOCK_BOOTSTRAP
    assert ci.width_ms > 5 * order_only.width_ms
    assert ci.contains(stats.percentile_ms(total, 50.0))
    assert "16 intervals" in ci.detail


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
    assert ci.contains(total.get_mean_value() / 1000)
    assert ci.width_ms > 1.0  # the drift (20 -> 40 ms) dominates, not the 1 ms noise


def test_record_ns_with_a_count_is_one_bucket_update():
    h = stats.new_histogram()
    h.record_ns(150_000_000, 5_000_000)  # no array of five million values is built
    h.record_ns(0)  # clamped to 1 ns
    assert h.get_total_count() == 5_000_001
    assert stats.percentile_ms(h, 50) == pytest.approx(150.0, rel=1e-3)
    assert h.min_ns == 1
