"""harness.core.stats.Histogram: exact recording, readers in ms, lossless merge, encoding.

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
    assert h.count == len(values)


@pytest.mark.parametrize("percent", [0.0, 1.0, 50.0, 90.0, 95.0, 99.0, 99.9, 100.0])
def test_percentiles_equal_hdrh_get_value_at_percentile_in_ms(percent):
    values = _lognormal_ms(20_000, 0.3, 0.9)
    h = stats.histogram_from_ms(values)
    ref = _hdrh_reference(values)
    assert h.percentile_ns(percent) == ref.get_value_at_percentile(percent)
    assert h.percentile_ms(percent) == ref.get_value_at_percentile(percent) / 1_000_000


def test_many_percentiles_at_once_equal_hdrh_one_by_one():
    values_ms = [0.005, 0.017, 0.98, 1.001, 1.5, 20.0, 20.011, 3000.0, 3000.0, 599_000.0]
    h = stats.histogram_from_ms(values_ms)
    ref = _hdrh_reference(values_ms)
    percents = (0.0, 1.0, 10.0, 33.3, 50.0, 90.0, 99.0, 99.9, 100.0)
    assert h.percentiles_ms(percents) == tuple(
        ref.get_value_at_percentile(p) / 1_000_000 for p in percents
    )
    assert h.percentiles_ms(percents) == tuple(h.percentile_ms(p) for p in percents)


@pytest.mark.parametrize("median_ms", [0.2, 3.0, 150.0, 40_000.0])
def test_every_percentile_is_within_a_thousandth_of_the_exact_sample(median_ms):
    values = _lognormal_ms(5_000, median_ms, 0.6, seed=7)
    h = stats.histogram_from_ms(values)
    ordered = np.sort(values)
    for percent in (50.0, 90.0, 95.0, 99.0, 99.9):
        rank = max(int(percent * values.size / 100 + 0.5), 1)  # HdrHistogram's rank
        exact = ordered[rank - 1]
        measured = h.percentile_ms(percent)
        assert 0 <= (measured - exact) / exact < 1 / 1024, (percent, measured, exact)


def test_readers_answer_in_milliseconds():
    h = stats.histogram_from_ms([10.0] * 50 + [20.0] * 50)
    assert h.count == 100
    assert (h.min_ms, h.max_ms) == (10.0, 20.0)  # exact: recorded here
    assert h.mean_ms == pytest.approx(15.0, rel=1e-3)
    assert h.stddev_ms == pytest.approx(5.0, rel=1e-3)
    assert h.percentile_ms(50) == pytest.approx(10.0, rel=1e-3)
    assert h.percentile_ms(100) == pytest.approx(20.0, rel=1e-3)


def test_mean_and_stddev_equal_hdrh_in_milliseconds():
    values = _lognormal_ms(3_000, 12.0, 0.7, seed=4)
    h = stats.histogram_from_ms(values)
    ref = _hdrh_reference(values)
    assert h.mean_ms == pytest.approx(ref.get_mean_value() / 1_000_000, rel=1e-12)
    assert h.stddev_ms == pytest.approx(ref.get_stddev() / 1_000_000, rel=1e-9)
    assert h.mean_ms == pytest.approx(float(values.mean()), rel=5e-4)


def test_request_stats_reads_a_histogram_in_milliseconds():
    h = stats.histogram_from_ms([0.2034, 0.5, 12.0])
    rs = RequestStats("GET", "/x", 3, 0, 1.0, 4.2, 0.2, 12.0, histogram=h)
    assert rs.percentile_ms(0.0) == pytest.approx(0.2034, rel=1e-3)
    assert rs.percentile_ms(100.0) == pytest.approx(12.0, rel=1e-3)


def test_request_stats_refuses_a_bare_hdrh_histogram():
    """Guards the one-histogram-type boundary: an hdrh HdrHistogram (of microseconds, say)
    would otherwise be read in the wrong unit without an error."""
    hdr = HdrHistogram(1, 600_000_000, 3)
    hdr.record_value(95_000)
    with pytest.raises(
        TypeError, match=r"must be harness\.core\.stats\.Histogram, not HdrHistogram"
    ):
        RequestStats("GET", "/x", 1, 0, 1.0, 95.0, 95.0, 95.0, histogram=hdr)
    h = stats.histogram_from_ms([95.0])
    with pytest.raises(TypeError, match="not HdrHistogram"):
        RequestStats(
            "GET", "/x", 1, 0, 1.0, 95.0, 95.0, 95.0, histogram=h, interval_histograms=(hdr,)
        )


def test_adding_a_bare_hdrh_histogram_is_refused():
    hdr = HdrHistogram(1, 600_000_000, 3)
    with pytest.raises(TypeError, match=r"only add a stats\.Histogram"):
        stats.new_histogram().add(hdr)  # type: ignore[arg-type]


def test_merge_of_parts_equals_the_histogram_of_all_samples():
    values = _lognormal_ms(9_000, 5.0, 1.2, seed=3)
    parts = [stats.histogram_from_ms(chunk) for chunk in np.array_split(values, 7)]
    merged = stats.merge_histograms(parts)
    assert merged == stats.histogram_from_ms(values)
    assert merged.min_ns == int(stats.ms_to_ns_array([values.min()])[0])
    assert merged.max_ns == int(stats.ms_to_ns_array([values.max()])[0])


def test_merge_into_an_empty_histogram_keeps_the_minimum():
    """Guards the minimum of a merge: hdrh's add() takes an empty histogram's minimum as 0."""
    merged = stats.new_histogram()
    merged.add(stats.histogram_from_ms([5.0, 6.0]))
    assert merged.min_ns == 5_000_000
    assert merged.min_ms == 5.0


def test_encoding_round_trips_and_is_hdrhistogram_v2():
    values = _lognormal_ms(2_000, 40.0, 0.5, seed=5)
    h = stats.histogram_from_ms(values)
    text = stats.encode_histogram(h)
    assert text.startswith("HISTF")  # V2 compressed, base64: readable by any HDR tool
    decoded = stats.decode_histogram(text)
    assert decoded == h
    assert HdrHistogram.decode(text).get_total_count() == 2_000
    # Decoded, the extremes are those of their buckets.
    assert decoded.min_ms == pytest.approx(h.min_ms, rel=1e-3)
    assert decoded.max_ms == pytest.approx(h.max_ms, rel=1e-3)


def test_decode_converts_another_layout_into_ours():
    micro = HdrHistogram(1, 3_600_000_000, 2)  # another range, 2 significant figures
    micro.record_value(1500, 3)
    decoded = stats.decode_histogram(micro.encode().decode())
    assert decoded.count == 3
    # 2 significant figures put 1500 in the bucket [1496, 1504); re-recorded at its lowest.
    assert decoded.percentile_ns(50) == 1496


def test_decode_refuses_text_that_is_not_a_histogram():
    with pytest.raises(ValueError, match="not an HdrHistogram V2 encoding"):
        stats.decode_histogram("definitely not base64 !!")


def test_empty_histogram_reads_as_nothing():
    h = stats.new_histogram()
    assert h.count == 0
    assert h.percentile_ms(99) is None and stats.percentile_ms(h, 99) is None
    assert h.percentiles_ms((50.0, 99.0)) == (None, None)
    assert (h.mean_ms, h.stddev_ms, h.min_ms, h.max_ms, h.min_ns) == (None,) * 5
    assert stats.percentile_ci(h, [], 99) is None
    assert stats.mean_ci(h, []) is None
    assert stats.decode_histogram(h.encode()).count == 0


def test_record_ns_with_a_count_is_one_bucket_update():
    h = stats.new_histogram()
    h.record_ns(150_000_000, 5_000_000)  # no array of five million values is built
    h.record_ns(0)  # clamped to 1 ns
    assert h.count == 5_000_001
    assert h.percentile_ms(50) == pytest.approx(150.0, rel=1e-3)
    assert h.min_ns == 1


def test_bucket_layout_matches_hdrh():
    layout = stats.bucket_layout()
    ref = HdrHistogram(stats.LOWEST_TRACKABLE_NS, stats.HIGHEST_TRACKABLE_NS, 3)
    for index in (0, 1, 2047, 2048, 2049, 5000, 20_000, layout.counts_len - 1):
        lowest = ref.get_value_from_index(index)
        assert layout.lowest_ns[index] == lowest
        assert layout.highest_ns[index] == ref.get_highest_equivalent_value(lowest)
        assert layout.mid_ns[index] == ref._hdr_median_equiv_value(lowest)
    with pytest.raises(ValueError, match="read-only"):
        layout.highest_ns[0] = 0
