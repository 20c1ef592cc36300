"""Confidence and prediction intervals: latency percentiles and means, proportions, runs.

Intervals of latency statistics are `ConfidenceInterval` in milliseconds, computed from a
window's `Histogram` and its interval histograms (a few seconds of consecutive requests
each). `wilson_interval` is for a proportion (as a fraction, 0..1), `prediction_interval`
for where one more run of a series should fall.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from harness.core.stats.distributions import binomial_cdf, normal_quantile, t_quantile
from harness.core.stats.histogram import NS_PER_MS, Histogram, bucket_layout

METHOD_ORDER_STATISTIC = "order-statistic"
METHOD_BLOCK_BOOTSTRAP = "block-bootstrap"
METHOD_NORMAL = "normal"
MIN_BOOTSTRAP_INTERVALS = 8
BOOTSTRAP_RESAMPLES = 1000
# Above this many intervals, consecutive intervals are pooled into this many groups first
# (a longer block), so that a soak run's bootstrap stays a fraction of a second and its
# resample matrix a few MB.
MAX_BOOTSTRAP_BLOCKS = 200


@dataclass(frozen=True)
class ConfidenceInterval:
    """A confidence interval for a latency statistic, in milliseconds.

    ``method`` names how it was derived (``order-statistic``, ``block-bootstrap`` or
    ``normal``); ``detail`` says it in words (ranks, resamples, block length, caveats).
    """

    low_ms: float
    high_ms: float
    method: str
    confidence: float = 0.95
    detail: str = ""

    def contains(self, value_ms: float) -> bool:
        return self.low_ms <= value_ms <= self.high_ms

    @property
    def width_ms(self) -> float:
        return self.high_ms - self.low_ms


# -- proportions and runs -------------------------------------------------------------------


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for the proportion ``successes / n``, as fractions (0..1).

    E. B. Wilson, "Probable inference, the law of succession, and statistical inference",
    JASA 22 (1927) 209-212: unlike the normal approximation it stays inside 0..1 and is
    honest at 0 successes. ``z`` is the standard normal ``0.5 + confidence / 2`` quantile.
    """
    if n <= 0 or not 0 <= successes <= n:
        raise ValueError(f"a proportion needs 0 <= successes <= n and n > 0, got {successes}/{n}")
    z = normal_quantile(0.5 + confidence / 2.0)
    p = successes / n
    denominator = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def prediction_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Where one more value of the series should fall: mean +- t * sd * sqrt(1 + 1/n).

    The prediction interval for a single new observation from a normal sample of ``n``
    (sample sd, n - 1 degrees of freedom, t the ``0.5 + confidence / 2`` quantile); Hahn
    & Meeker, *Statistical Intervals* (1991), section 4.6. Needs n >= 2.
    """
    n = len(values)
    if n < 2:
        raise ValueError("a prediction interval needs at least 2 values")
    mean = statistics.fmean(values)
    sd = statistics.stdev(values)
    half = t_quantile(0.5 + confidence / 2.0, n - 1) * sd * math.sqrt(1.0 + 1.0 / n)
    return mean - half, mean + half


# -- latency percentiles and means ---------------------------------------------------------


def percentile_ci(
    total: Histogram,
    intervals: Sequence[Histogram],
    percent: float,
    confidence: float = 0.95,
    seed: int = 1,
) -> ConfidenceInterval | None:
    """A ``confidence`` interval for the ``percent`` percentile of ``total``, in ms.

    Two methods, and the wider interval is reported (its ``method`` names which):

    * Order statistics (distribution-free): for ``n`` samples the true p-quantile lies
      between the order statistics ``X(r)`` and ``X(s)`` with probability
      ``F(s-1) - F(r-1)``, ``F`` the Binomial(n, p) CDF; ``r`` and ``s`` are the ranks
      that put at most ``(1 - confidence) / 2`` on either side. Conover, *Practical
      Nonparametric Statistics*, 3rd ed. (1999), section 3.2. The binomial is exact
      (`binomial_cdf`, no normal approximation). It assumes independent samples.
    * Moving-block bootstrap over the interval histograms (Kuensch 1989, "The jackknife
      and the bootstrap for general stationary observations", Ann. Statist. 17(3);
      percentile interval, Efron & Tibshirani 1993): each interval is a block of
      consecutive samples, runs of ``ceil(k ** (1/3))`` consecutive blocks are resampled
      with replacement, so slow drifts and bursts (autocorrelation) widen the interval
      where the order-statistic one cannot see them. Used with at least
      ``MIN_BOOTSTRAP_INTERVALS`` non-empty intervals; more than ``MAX_BOOTSTRAP_BLOCKS``
      are pooled into that many groups of consecutive intervals first.
      ``BOOTSTRAP_RESAMPLES`` resamples drawn from ``numpy.random.default_rng(seed)``.

    The interval always contains the measured value. None when ``total`` is empty.
    """
    measured_ms = total.percentile_ms(percent)
    if measured_ms is None:
        return None
    candidates = [_order_statistic_ci(total, percent, confidence)]
    non_empty = [h for h in intervals if h.count]
    if len(non_empty) >= MIN_BOOTSTRAP_INTERVALS:
        blocks = _Blocks.of(non_empty)
        candidates.append(_bootstrap_percentile_ci(blocks, percent, confidence, seed))
    chosen = max(candidates, key=lambda ci: ci.width_ms)
    return _including(chosen, measured_ms)


def mean_ci(
    total: Histogram,
    intervals: Sequence[Histogram],
    confidence: float = 0.95,
    seed: int = 1,
) -> ConfidenceInterval | None:
    """A ``confidence`` interval for the mean latency of ``total``, in ms.

    The normal (central limit) interval ``mean +- z * sd / sqrt(n)`` (z the standard
    normal ``0.5 + confidence / 2`` quantile) and, with at least ``MIN_BOOTSTRAP_INTERVALS``
    non-empty intervals, a moving-block bootstrap of the pooled mean over the intervals
    (as in `percentile_ci`, pooling included); the wider is reported. Means come from the
    buckets' mid values (within 0.05 % of the exact mean). None when ``total`` is empty.
    """
    mean_ms, sd_ms = total.mean_ms, total.stddev_ms
    if mean_ms is None or sd_ms is None:
        return None
    n = total.count
    z = normal_quantile(0.5 + confidence / 2.0)
    half = z * sd_ms / math.sqrt(n)
    candidates = [
        ConfidenceInterval(
            mean_ms - half,
            mean_ms + half,
            METHOD_NORMAL,
            confidence,
            f"mean +- {z:.3f} sd/sqrt(n), n={n}",
        )
    ]
    non_empty = [h for h in intervals if h.count]
    if len(non_empty) >= MIN_BOOTSTRAP_INTERVALS:
        candidates.append(_bootstrap_mean_ci(_Blocks.of(non_empty), confidence, seed))
    chosen = max(candidates, key=lambda ci: ci.width_ms)
    return _including(chosen, mean_ms)


def _including(ci: ConfidenceInterval, value_ms: float) -> ConfidenceInterval:
    if ci.contains(value_ms):
        return ci
    return ConfidenceInterval(
        min(ci.low_ms, value_ms), max(ci.high_ms, value_ms), ci.method, ci.confidence, ci.detail
    )


# -- order statistics -----------------------------------------------------------------------


def order_statistic_ranks(n: int, percent: float, confidence: float = 0.95) -> tuple[int, int]:
    """The 1-based ranks ``(r, s)`` of the distribution-free interval for a quantile.

    ``r = 0`` means no lower order statistic is far enough down (the bound is the sample
    minimum); ``s = n + 1`` means none is far enough up (the bound is the sample maximum).
    Conover (1999), section 3.2, with the exact binomial distribution.
    """
    p = min(max(percent / 100.0, 0.0), 1.0)
    tail = (1.0 - confidence) / 2.0
    # The binomial CDF on a window that holds all but ~1e-30 of it: below the window it
    # is ~0, above it ~1, and the window stays a few thousand values for any n.
    sd = math.sqrt(n * p * (1 - p))
    lo = max(0, math.floor(n * p - 12 * sd - 12))
    hi = min(n, math.ceil(n * p + 12 * sd + 12))
    cdf = binomial_cdf(np.arange(lo, hi + 1), n, p)
    if hi == n:
        cdf[-1] = 1.0
    # r: the largest rank with P(Bin <= r-1) <= tail; s: the smallest with >= 1 - tail.
    below = np.nonzero(cdf <= tail)[0]
    r = min(int(lo + below[-1] + 1) if below.size else lo, n)
    above = np.nonzero(cdf >= 1.0 - tail)[0]
    s = int(lo + above[0] + 1) if above.size else n + 1
    return r, min(s, n + 1)


def _order_statistic_ci(h: Histogram, percent: float, confidence: float) -> ConfidenceInterval:
    n = h.count
    r, s = order_statistic_ranks(n, percent, confidence)
    index, counts = h.buckets()
    cum = np.cumsum(counts)
    layout = bucket_layout()
    notes = []

    def bucket_of_rank(rank: int) -> int:
        return int(index[int(np.searchsorted(cum, rank, side="left"))])

    if r >= 1:
        low_ns = int(layout.lowest_ns[bucket_of_rank(r)])
    else:
        low_ns = int(layout.lowest_ns[index[0]])
        notes.append("lower bound is the sample minimum (too few samples)")
    if s <= n:
        high_ns = int(layout.highest_ns[bucket_of_rank(s)])
    else:
        high_ns = int(layout.highest_ns[index[-1]])
        notes.append("upper bound is the sample maximum (too few samples)")
    detail = f"ranks {r}..{s} of n={n}, exact binomial (Conover 1999)"
    if notes:
        detail += "; " + "; ".join(notes)
    return ConfidenceInterval(
        low_ns / NS_PER_MS, high_ns / NS_PER_MS, METHOD_ORDER_STATISTIC, confidence, detail
    )


# -- moving-block bootstrap over interval histograms ----------------------------------------


@dataclass(frozen=True, eq=False)
class _Blocks:
    """The bootstrap's blocks: rows of bucket counts, one per interval or pooled group.

    Every count that the resampling uses (weights, block length, the words of ``detail``)
    is derived from ``counts.shape[0]``, the number of rows actually resampled, so that
    pooling cannot leave one of them at the unpooled number of intervals.
    """

    counts: np.ndarray  # rows x columns, float64
    columns: np.ndarray  # the bucket index of each column
    intervals: int  # non-empty intervals before pooling

    @property
    def rows(self) -> int:
        return int(self.counts.shape[0])

    @classmethod
    def of(cls, intervals: Sequence[Histogram]) -> _Blocks:
        """Intervals x buckets used by any of them; consecutive groups above the cap.

        Counted in one pass over every interval's buckets, so that a soak run's 7,200
        intervals never make an intervals x buckets matrix (hundreds of MB) before pooling.
        """
        parts = [h.buckets() for h in intervals]
        index = np.concatenate([p[0] for p in parts])
        k = len(intervals)
        rows = min(k, MAX_BOOTSTRAP_BLOCKS)
        # As numpy.array_split: groups of consecutive intervals, sizes differing by one.
        size, extra = divmod(k, rows)
        group_of = np.repeat(np.arange(rows), [size + 1] * extra + [size] * (rows - extra))
        layout_len = bucket_layout().counts_len
        used = np.bincount(index, minlength=layout_len) > 0
        columns = np.flatnonzero(used)
        column_of = np.cumsum(used) - 1  # a used bucket's column
        row_of = np.repeat(group_of, [p[0].size for p in parts])
        cells = row_of * columns.size + column_of[index]
        weights = np.concatenate([p[1] for p in parts]).astype(np.float64)
        # Whole numbers below 2**53: the float sums are exact.
        counts = np.bincount(cells, weights=weights, minlength=rows * columns.size)
        return cls(counts.reshape(rows, columns.size), columns, k)

    def weights(self, seed: int) -> tuple[np.ndarray, int]:
        """Resamples x rows: how often each row occurs in each moving-block resample."""
        k = self.rows
        block = max(1, math.ceil(k ** (1.0 / 3.0)))
        n_blocks = math.ceil(k / block)
        rng = np.random.default_rng(seed)
        starts = rng.integers(0, k - block + 1, size=(BOOTSTRAP_RESAMPLES, n_blocks))
        picked = (starts[:, :, None] + np.arange(block)).reshape(BOOTSTRAP_RESAMPLES, -1)[:, :k]
        weights = np.zeros((BOOTSTRAP_RESAMPLES, k), dtype=np.float64)
        rows = np.repeat(np.arange(BOOTSTRAP_RESAMPLES), k)
        np.add.at(weights, (rows, picked.ravel()), 1.0)
        return weights, block

    def detail(self, block: int) -> str:
        if self.rows == self.intervals:
            what = f"over {self.intervals} intervals, block of {block} interval(s)"
        else:
            smallest, largest = self.intervals // self.rows, -(-self.intervals // self.rows)
            sizes = f"{smallest}" if smallest == largest else f"{smallest}-{largest}"
            what = (
                f"over {self.intervals} intervals pooled into {self.rows} groups of "
                f"{sizes} consecutive intervals, block of {block} group(s)"
            )
        return f"moving-block bootstrap {what}, {BOOTSTRAP_RESAMPLES} resamples (Kuensch 1989)"


def _bootstrap_percentile_ci(
    blocks: _Blocks, percent: float, confidence: float, seed: int
) -> ConfidenceInterval:
    weights, block = blocks.weights(seed)
    highest = bucket_layout().highest_ns[blocks.columns]
    index = _resampled_percentile_columns(blocks.counts, weights, percent)
    values = highest[np.minimum(index, blocks.columns.size - 1)]
    low, high = _quantile_pair(values / NS_PER_MS, confidence)
    return ConfidenceInterval(low, high, METHOD_BLOCK_BOOTSTRAP, confidence, blocks.detail(block))


def _resampled_percentile_columns(
    counts: np.ndarray, weights: np.ndarray, percent: float
) -> np.ndarray:
    """For each resample (a row of ``weights``), the column of its ``percent`` percentile:
    the first column where the weighted cumulative count reaches HdrHistogram's rank.

    A resample is a weighted mix of the rows, and a mix's percentile lies among its rows'
    own, so only the columns between the lowest and the highest row percentile are summed
    (a few dozen of a soak's thousands of buckets); a resample whose rank falls outside
    them (possible only through the rank's rounding) is summed over every column. The
    counts are whole numbers: both ways give the same column.
    """
    cumulative = np.cumsum(counts, axis=1)  # rows x columns, whole numbers as floats
    totals = cumulative[:, -1]
    ranks = np.maximum(np.floor(percent * totals / 100.0 + 0.5), 1.0)
    own = (cumulative < ranks[:, None]).sum(axis=1)[totals > 0]
    columns = counts.shape[1]
    lo = max(int(own.min()) - 1, 0) if own.size else 0
    hi = min(int(own.max()) + 1, columns - 1) if own.size else columns - 1
    targets = np.maximum(np.floor(percent * (weights @ totals) / 100.0 + 0.5), 1.0)
    band = weights @ cumulative[:, lo : hi + 1]  # resamples x (hi - lo + 1)
    index = lo + (band < targets[:, None]).sum(axis=1)
    # Inside the band only if the band's first column is still below the rank (or is the
    # first column of all) and its last reaches it.
    outside = np.flatnonzero(
        ((band[:, 0] >= targets) & (lo > 0)) | ((band[:, -1] < targets) & (hi < columns - 1))
    )
    if outside.size:
        # Chunked so that resamples x buckets stays a few MB.
        chunk = max(1, 4_000_000 // max(1, columns))
        for start in range(0, outside.size, chunk):
            some = outside[start : start + chunk]
            full = weights[some] @ cumulative
            index[some] = (full < targets[some, None]).sum(axis=1)
    return index


def _bootstrap_mean_ci(blocks: _Blocks, confidence: float, seed: int) -> ConfidenceInterval:
    weights, block = blocks.weights(seed)
    sums = blocks.counts @ bucket_layout().mid_ns[blocks.columns]
    counts = blocks.counts.sum(axis=1)
    means_ms = (weights @ sums) / (weights @ counts) / NS_PER_MS
    low, high = _quantile_pair(means_ms, confidence)
    return ConfidenceInterval(low, high, METHOD_BLOCK_BOOTSTRAP, confidence, blocks.detail(block))


def _quantile_pair(values: np.ndarray, confidence: float) -> tuple[float, float]:
    """The percentile interval of bootstrap replicates (Efron & Tibshirani 1993, 13.3)."""
    ordered = np.sort(values)
    tail = (1.0 - confidence) / 2.0
    b = ordered.size
    low = ordered[min(b - 1, math.floor(tail * b))]
    high = ordered[max(0, math.ceil((1.0 - tail) * b) - 1)]
    return float(low), float(high)
