"""Latency histograms, exact percentiles, lossless merge and confidence intervals.

Pure: values in, values out (hdrh, numpy and the standard library only), so that
``harness.plugin`` can use it inside Locust processes.

Latencies are recorded into HdrHistograms (Gil Tene's High Dynamic Range histogram, the
``hdrh`` package) of integer **nanoseconds**, 3 significant figures, 1 ns .. 600 s: every
recorded value is kept to within 0.1 % (1/1024 at worst) of what it was, from 0.1 ms
latencies up to ten minutes, and two histograms add bucket by bucket without loss.
Nanoseconds rather than microseconds keep that 0.1 % below a millisecond too (a 0.2 ms
request rounded to whole microseconds could be 0.25 % off).

`Histogram` wraps one such HdrHistogram and reads it in **microseconds** under
HdrHistogram's own method names (``get_value_at_percentile``, ``get_total_count``, ...), so
that ``model.RequestStats.percentile_ms`` (microseconds / 1000) works on it unchanged.
``Histogram.encode()`` is HdrHistogram's standard V2 compressed base64 encoding (of the
nanosecond histogram): any HDR tool reads it.

Percentile convention (HdrHistogram's): the ``p`` percentile of ``N`` samples is the sample
of rank ``max(1, int(p * N / 100 + 0.5))`` in ascending order, reported as the highest value
equivalent to it at the histogram's precision.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist

import numpy as np
from hdrh.histogram import HdrHistogram

UNIT = "ns"
LOWEST_TRACKABLE_NS = 1
HIGHEST_TRACKABLE_NS = 600 * 1_000_000_000  # ten minutes
SIGNIFICANT_FIGURES = 3
NS_PER_MS = 1_000_000

METHOD_ORDER_STATISTIC = "order-statistic"
METHOD_BLOCK_BOOTSTRAP = "block-bootstrap"
METHOD_NORMAL = "normal"
MIN_BOOTSTRAP_INTERVALS = 8
BOOTSTRAP_RESAMPLES = 1000
# Above this many intervals, adjacent intervals are pooled first (a longer block) so that a
# soak run's bootstrap stays a fraction of a second.
MAX_BOOTSTRAP_BLOCKS = 200


class Histogram:
    """The latencies of one request key over one window of a run.

    Held sparse (the used buckets of the nanosecond HdrHistogram layout and their counts),
    so that thousands of interval histograms fit in memory; `to_hdr` gives the hdrh object.
    The ``get_*`` readers answer in microseconds (floats), like an HdrHistogram of
    microseconds would, but without losing the sub-microsecond digits.
    """

    __slots__ = ("_counts", "_index", "_max_ns", "_min_ns", "_total")

    def __init__(self) -> None:
        self._index = np.zeros(0, dtype=np.int64)  # sorted bucket indices in use
        self._counts = np.zeros(0, dtype=np.int64)
        self._total = 0
        self._min_ns = 0  # as recorded (exact until decoded from an encoding)
        self._max_ns = 0

    # -- recording ---------------------------------------------------------------------

    def record_ns(self, value_ns: int, count: int = 1) -> None:
        """Record ``count`` samples of one value (clamped to the trackable range)."""
        if count <= 0:
            return
        value_ns = min(max(int(value_ns), LOWEST_TRACKABLE_NS), HIGHEST_TRACKABLE_NS)
        index = _indices_for(np.array([value_ns], dtype=np.int64))
        self._merge(index, np.array([count], dtype=np.int64), value_ns, value_ns)

    def record_ms_array(self, values_ms: Sequence[float] | np.ndarray) -> None:
        """Record many latencies given in (float) milliseconds, vectorised.

        Each becomes integer nanoseconds (rounded), clamped to 1 ns .. 600 s.
        """
        self.record_ns_array(ms_to_ns_array(values_ms))

    def record_ns_array(self, ns: np.ndarray) -> None:
        """Record integer nanoseconds already clamped to the trackable range."""
        if ns.size == 0:
            return
        index, counts = np.unique(_indices_for(ns), return_counts=True)
        self._merge(index, counts.astype(np.int64), int(ns.min()), int(ns.max()))

    def add(self, other: Histogram) -> None:
        """Add ``other`` bucket by bucket (lossless)."""
        if other._total:
            self._merge(other._index, other._counts, other._min_ns, other._max_ns)

    def _merge(self, index: np.ndarray, counts: np.ndarray, low: int, high: int) -> None:
        if self._total == 0:
            self._index, self._counts = index.copy(), counts.copy()
            self._min_ns, self._max_ns = low, high
        else:
            both = np.concatenate((self._index, index))
            self._index, inverse = np.unique(both, return_inverse=True)
            merged = np.zeros(self._index.size, dtype=np.int64)
            np.add.at(merged, inverse, np.concatenate((self._counts, counts)))
            self._counts = merged
            self._min_ns = min(self._min_ns, low)
            self._max_ns = max(self._max_ns, high)
        self._total += int(counts.sum())

    def copy(self) -> Histogram:
        twin = Histogram()
        twin.add(self)
        return twin

    def buckets(self) -> tuple[np.ndarray, np.ndarray]:
        """(bucket indices in use, their counts): read-only views."""
        return self._index, self._counts

    # -- conversion --------------------------------------------------------------------

    def to_hdr(self) -> HdrHistogram:
        """An hdrh HdrHistogram (nanoseconds) with the same counts."""
        hdr = _new_hdr()
        if self._total:
            _counts_view(hdr)[self._index] = self._counts
            hdr.total_count = self._total
            hdr.min_value = self._min_ns
            hdr.max_value = self._max_ns
        return hdr

    @classmethod
    def from_hdr(cls, hdr: HdrHistogram) -> Histogram:
        dense = _counts_view(hdr)
        index = np.nonzero(dense)[0].astype(np.int64)
        h = cls()
        if index.size:
            layout = _layout()
            h._index, h._counts = index, dense[index].copy()
            h._total = int(h._counts.sum())
            h._min_ns = int(layout.lowest_ns[index[0]])
            h._max_ns = int(layout.highest_ns[index[-1]])
        return h

    def encode(self) -> str:
        return encode_histogram(self)

    # -- reading, in microseconds ------------------------------------------------------

    def get_total_count(self) -> int:
        return self._total

    def get_value_at_percentile(self, percent: float) -> float:
        """The ``percent`` percentile in microseconds (0.0 when empty)."""
        return percentile_ns(self, percent) / 1000.0

    def get_percentile_to_value_dict(self, percents: Iterable[float]) -> dict[float, float]:
        return {p: percentile_ns(self, p) / 1000.0 for p in percents}

    def get_mean_value(self) -> float:
        """Mean in microseconds, from the buckets' mid values (HdrHistogram's method)."""
        if not self._total:
            return 0.0
        return float(self._counts @ _layout().mid_ns[self._index] / self._total) / 1000.0

    def get_stddev(self) -> float:
        if not self._total:
            return 0.0
        mid = _layout().mid_ns[self._index]
        mean = self._counts @ mid / self._total
        return float(math.sqrt(self._counts @ (mid - mean) ** 2 / self._total)) / 1000.0

    def get_min_value(self) -> float:
        """The lowest value equivalent to the smallest sample, in microseconds."""
        if not self._total:
            return 0.0
        return float(_layout().lowest_ns[self._index[0]]) / 1000.0

    def get_max_value(self) -> float:
        """The highest value equivalent to the largest sample, in microseconds."""
        if not self._total:
            return 0.0
        return float(_layout().highest_ns[self._index[-1]]) / 1000.0

    @property
    def min_ns(self) -> int:
        """The smallest recorded value (exact when recorded here, bucket-precise when decoded)."""
        return self._min_ns

    @property
    def max_ns(self) -> int:
        return self._max_ns

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Histogram):
            return NotImplemented
        return np.array_equal(self._index, other._index) and np.array_equal(
            self._counts, other._counts
        )

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"Histogram(count={self._total})"


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


# -- construction, encoding, merge ---------------------------------------------------------


def _new_hdr() -> HdrHistogram:
    return HdrHistogram(LOWEST_TRACKABLE_NS, HIGHEST_TRACKABLE_NS, SIGNIFICANT_FIGURES)


def new_histogram() -> Histogram:
    """An empty latency histogram (nanoseconds, 3 significant figures, 1 ns .. 600 s)."""
    return Histogram()


def histogram_from_ms(values_ms: Iterable[float]) -> Histogram:
    h = Histogram()
    h.record_ms_array(np.fromiter(values_ms, dtype=np.float64))
    return h


def encode_histogram(h: Histogram) -> str:
    """HdrHistogram's standard V2 compressed encoding, base64 text ("HISTFAAA...")."""
    return h.to_hdr().encode().decode("ascii")


def decode_histogram(text: str) -> Histogram:
    """Decode ``encode_histogram`` output (or any HdrHistogram V2 encoding of nanoseconds).

    Raises ValueError when ``text`` is not an HdrHistogram V2 encoding.
    """
    try:
        hdr = HdrHistogram.decode(text.encode("ascii") if isinstance(text, str) else text)
    except Exception as e:  # hdrh raises TypeError, zlib.error and its own exceptions
        raise ValueError(f"not an HdrHistogram V2 encoding: {e}") from e
    if (
        hdr.lowest_trackable_value != LOWEST_TRACKABLE_NS
        or hdr.highest_trackable_value != HIGHEST_TRACKABLE_NS
        or hdr.significant_figures != SIGNIFICANT_FIGURES
    ):
        # Another layout: re-record it into ours (hdrh adds value by value).
        ours = _new_hdr()
        ours.add(hdr)
        hdr = ours
    return Histogram.from_hdr(hdr)


def merge_histograms(histograms: Iterable[Histogram]) -> Histogram:
    """One histogram holding every sample of ``histograms`` (lossless)."""
    merged = Histogram()
    for h in histograms:
        merged.add(h)
    return merged


def ms_to_ns_array(values_ms: Sequence[float] | np.ndarray) -> np.ndarray:
    """Float milliseconds -> int64 nanoseconds, rounded, clamped to the trackable range."""
    arr = np.asarray(values_ms, dtype=np.float64)
    ns = np.rint(arr * NS_PER_MS)
    np.clip(ns, LOWEST_TRACKABLE_NS, HIGHEST_TRACKABLE_NS, out=ns)
    return ns.astype(np.int64)


# -- percentiles ----------------------------------------------------------------------------


def _target_rank(percent: float, total: int) -> int:
    """HdrHistogram's rank for a percentile (1-based)."""
    percent = min(max(percent, 0.0), 100.0)
    return max(int(percent * total / 100.0 + 0.5), 1)


def percentile_ns(h: Histogram, percent: float) -> int:
    """The ``percent`` percentile in nanoseconds, equal to hdrh's get_value_at_percentile."""
    total = h.get_total_count()
    if total == 0:
        return 0
    index, counts = h.buckets()
    position = int(np.searchsorted(np.cumsum(counts), _target_rank(percent, total), side="left"))
    layout = _layout()
    if percent == 0:
        return int(layout.lowest_ns[index[position]])
    return int(layout.highest_ns[index[position]])


def percentile_us(h: Histogram, percent: float) -> float:
    return percentile_ns(h, percent) / 1000.0


def percentile_ms(h: Histogram, percent: float) -> float | None:
    """The ``percent`` percentile in ms, None when the histogram is empty."""
    if h.get_total_count() == 0:
        return None
    return percentile_ns(h, percent) / NS_PER_MS


# -- confidence intervals -------------------------------------------------------------------


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
      Nonparametric Statistics*, 3rd ed. (1999), section 3.2. The binomial is summed
      exactly (no normal approximation). It assumes independent samples.
    * Moving-block bootstrap over the interval histograms (Kuensch 1989, "The jackknife
      and the bootstrap for general stationary observations", Ann. Statist. 17(3);
      percentile interval, Efron & Tibshirani 1993): each interval is a block of
      consecutive samples, blocks of ``ceil(k ** (1/3))`` consecutive intervals are
      resampled with replacement, so slow drifts and bursts (autocorrelation) widen the
      interval where the order-statistic one cannot see them. Used with at least
      ``MIN_BOOTSTRAP_INTERVALS`` non-empty intervals; ``BOOTSTRAP_RESAMPLES`` resamples
      drawn from ``numpy.random.default_rng(seed)``.

    The interval always contains the measured value. None when ``total`` is empty.
    """
    n = total.get_total_count()
    if n == 0:
        return None
    measured_ms = percentile_ns(total, percent) / NS_PER_MS
    candidates = [_order_statistic_ci(total, percent, confidence)]
    non_empty = [h for h in intervals if h.get_total_count()]
    if len(non_empty) >= MIN_BOOTSTRAP_INTERVALS:
        candidates.append(_bootstrap_percentile_ci(non_empty, percent, confidence, seed))
    chosen = max(candidates, key=lambda ci: ci.width_ms)
    return _including(chosen, measured_ms)


def mean_ci(
    total: Histogram,
    intervals: Sequence[Histogram],
    confidence: float = 0.95,
    seed: int = 1,
) -> ConfidenceInterval | None:
    """A ``confidence`` interval for the mean latency of ``total``, in ms.

    The normal (central limit) interval ``mean +- z * sd / sqrt(n)`` and, with at least
    ``MIN_BOOTSTRAP_INTERVALS`` non-empty intervals, a moving-block bootstrap of the
    pooled mean over the intervals (as in `percentile_ci`); the wider is reported. Means
    come from the buckets' mid values (within 0.05 % of the exact mean).
    """
    n = total.get_total_count()
    if n == 0:
        return None
    mean_ms = total.get_mean_value() / 1000.0
    sd_ms = total.get_stddev() / 1000.0
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
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
    non_empty = [h for h in intervals if h.get_total_count()]
    if len(non_empty) >= MIN_BOOTSTRAP_INTERVALS:
        matrix, columns = _interval_matrix(non_empty)
        mid = _layout().mid_ns[columns]
        sums = matrix @ mid
        counts = matrix.sum(axis=1)
        weights, block = _block_weights(len(non_empty), seed)
        means_ms = (weights @ sums) / (weights @ counts) / NS_PER_MS
        low, high = _quantile_pair(means_ms, confidence)
        candidates.append(
            ConfidenceInterval(
                low,
                high,
                METHOD_BLOCK_BOOTSTRAP,
                confidence,
                _bootstrap_detail(len(non_empty), block),
            )
        )
    chosen = max(candidates, key=lambda ci: ci.width_ms)
    return _including(chosen, mean_ms)


def _including(ci: ConfidenceInterval, value_ms: float) -> ConfidenceInterval:
    if ci.contains(value_ms):
        return ci
    return ConfidenceInterval(
        min(ci.low_ms, value_ms), max(ci.high_ms, value_ms), ci.method, ci.confidence, ci.detail
    )


def order_statistic_ranks(n: int, percent: float, confidence: float = 0.95) -> tuple[int, int]:
    """The 1-based ranks ``(r, s)`` of the distribution-free interval for a quantile.

    ``r = 0`` means no lower order statistic is far enough down (the bound is the sample
    minimum); ``s = n + 1`` means none is far enough up (the bound is the sample maximum).
    Conover (1999), section 3.2, with the exact binomial distribution.
    """
    p = min(max(percent / 100.0, 0.0), 1.0)
    tail = (1.0 - confidence) / 2.0
    lo, cdf = _binomial_cdf(n, p)
    # cdf[i] = P(Bin <= lo + i); below the window it is ~0, above it ~1.
    # r: the largest rank with P(Bin <= r-1) <= tail; s: the smallest with >= 1 - tail.
    below = np.nonzero(cdf <= tail)[0]
    r = min(int(lo + below[-1] + 1) if below.size else lo, n)
    above = np.nonzero(cdf >= 1.0 - tail)[0]
    s = int(lo + above[0] + 1) if above.size else n + 1
    return r, min(s, n + 1)


def _order_statistic_ci(h: Histogram, percent: float, confidence: float) -> ConfidenceInterval:
    n = h.get_total_count()
    r, s = order_statistic_ranks(n, percent, confidence)
    index, counts = h.buckets()
    cum = np.cumsum(counts)
    layout = _layout()
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


def _bootstrap_percentile_ci(
    intervals: Sequence[Histogram], percent: float, confidence: float, seed: int
) -> ConfidenceInterval:
    matrix, columns = _interval_matrix(intervals)
    weights, block = _block_weights(matrix.shape[0], seed)
    highest = _layout().highest_ns[columns]
    values = np.empty(weights.shape[0], dtype=np.float64)
    # Chunked so that resamples x buckets stays a few MB.
    chunk = max(1, 4_000_000 // max(1, matrix.shape[1]))
    for start in range(0, weights.shape[0], chunk):
        merged = weights[start : start + chunk] @ matrix
        totals = merged.sum(axis=1)
        targets = np.maximum(np.floor(percent * totals / 100.0 + 0.5), 1.0)
        cum = np.cumsum(merged, axis=1)
        index = (cum < targets[:, None]).sum(axis=1)
        values[start : start + chunk] = highest[np.minimum(index, columns.size - 1)]
    low, high = _quantile_pair(values / NS_PER_MS, confidence)
    return ConfidenceInterval(
        low, high, METHOD_BLOCK_BOOTSTRAP, confidence, _bootstrap_detail(len(intervals), block)
    )


def _bootstrap_detail(k: int, block: int) -> str:
    return (
        f"moving-block bootstrap over {k} intervals, block of {block} interval(s), "
        f"{BOOTSTRAP_RESAMPLES} resamples (Kuensch 1989)"
    )


def _interval_matrix(intervals: Sequence[Histogram]) -> tuple[np.ndarray, np.ndarray]:
    """Intervals x (buckets used by any of them), float64 counts, and those bucket indices.

    More than ``MAX_BOOTSTRAP_BLOCKS`` intervals are pooled in consecutive groups first.
    """
    columns = np.unique(np.concatenate([h.buckets()[0] for h in intervals]))
    matrix = np.zeros((len(intervals), columns.size), dtype=np.float64)
    for row, h in enumerate(intervals):
        index, counts = h.buckets()
        matrix[row, np.searchsorted(columns, index)] = counts
    if matrix.shape[0] > MAX_BOOTSTRAP_BLOCKS:
        groups = np.array_split(np.arange(matrix.shape[0]), MAX_BOOTSTRAP_BLOCKS)
        matrix = np.array([matrix[g].sum(axis=0) for g in groups])
    return matrix, columns


def _block_weights(k: int, seed: int) -> tuple[np.ndarray, int]:
    """Resamples x k: how often each interval occurs in each moving-block resample."""
    block = max(1, math.ceil(k ** (1.0 / 3.0)))
    n_blocks = math.ceil(k / block)
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, k - block + 1, size=(BOOTSTRAP_RESAMPLES, n_blocks))
    picked = (starts[:, :, None] + np.arange(block)).reshape(BOOTSTRAP_RESAMPLES, -1)[:, :k]
    weights = np.zeros((BOOTSTRAP_RESAMPLES, k), dtype=np.float64)
    rows = np.repeat(np.arange(BOOTSTRAP_RESAMPLES), k)
    np.add.at(weights, (rows, picked.ravel()), 1.0)
    return weights, block


def _quantile_pair(values: np.ndarray, confidence: float) -> tuple[float, float]:
    ordered = np.sort(values)
    tail = (1.0 - confidence) / 2.0
    b = ordered.size
    low = ordered[min(b - 1, math.floor(tail * b))]
    high = ordered[max(0, math.ceil((1.0 - tail) * b) - 1)]
    return float(low), float(high)


def _binomial_cdf(n: int, p: float) -> tuple[int, np.ndarray]:
    """Binomial(n, p) CDF on a window ``lo .. lo + len - 1`` holding all but ~1e-30 of it.

    The pmf is built from its value at ``lo`` (log-gamma) by the ratio
    ``pmf(k+1)/pmf(k) = (n-k)/(k+1) * p/(1-p)`` and normalised over the window.
    """
    if p <= 0.0:
        return 0, np.ones(n + 1)
    if p >= 1.0:
        cdf = np.zeros(n + 1)
        cdf[-1] = 1.0
        return 0, cdf
    mean = n * p
    sd = math.sqrt(n * p * (1 - p))
    lo = max(0, math.floor(mean - 12 * sd - 12))
    hi = min(n, math.ceil(mean + 12 * sd + 12))
    k = np.arange(lo, hi, dtype=np.float64)
    log_ratio = np.log(n - k) - np.log(k + 1) + math.log(p) - math.log1p(-p)
    log_lo = (
        math.lgamma(n + 1)
        - math.lgamma(lo + 1)
        - math.lgamma(n - lo + 1)
        + lo * math.log(p)
        + (n - lo) * math.log1p(-p)
    )
    logpmf = log_lo + np.concatenate(([0.0], np.cumsum(log_ratio)))
    pmf = np.exp(logpmf - logpmf.max())
    # Normalised over the window; the mass outside it is below double precision.
    cdf = np.cumsum(pmf) / pmf.sum()
    if hi == n:
        cdf[-1] = 1.0
    return lo, cdf


# -- the bucket layout, vectorised -----------------------------------------------------------


@dataclass(frozen=True)
class _Layout:
    lowest_ns: np.ndarray  # per counts index: lowest value of the bucket
    highest_ns: np.ndarray  # per counts index: highest equivalent value
    mid_ns: np.ndarray  # per counts index: HdrHistogram's "median equivalent value"
    unit_magnitude: int
    sub_bucket_half_count_magnitude: int
    sub_bucket_half_count: int
    sub_bucket_mask: int
    counts_len: int


@lru_cache(maxsize=1)
def _layout() -> _Layout:
    h = _new_hdr()
    index = np.arange(h.counts_len, dtype=np.int64)
    shift = h.sub_bucket_half_count_magnitude
    bucket = (index >> shift) - 1
    sub = (index & (h.sub_bucket_half_count - 1)) + h.sub_bucket_half_count
    first = bucket < 0
    sub = np.where(first, sub - h.sub_bucket_half_count, sub)
    bucket = np.where(first, 0, bucket)
    lowest = sub << (bucket + h.unit_magnitude)
    # Size of a bucket: recomputed from the value, as hdrh's get_highest_equivalent_value.
    value_bucket = _bucket_index_of(lowest, h)
    value_sub = lowest >> (value_bucket + h.unit_magnitude)
    value_bucket = np.where(value_sub >= h.sub_bucket_count, value_bucket + 1, value_bucket)
    size = np.left_shift(np.int64(1), value_bucket + h.unit_magnitude)
    return _Layout(
        lowest_ns=lowest,
        highest_ns=lowest + size - 1,
        mid_ns=(lowest + (size >> 1)).astype(np.float64),
        unit_magnitude=h.unit_magnitude,
        sub_bucket_half_count_magnitude=shift,
        sub_bucket_half_count=h.sub_bucket_half_count,
        sub_bucket_mask=h.sub_bucket_mask,
        counts_len=h.counts_len,
    )


def _bucket_index_of(values: np.ndarray, h: HdrHistogram) -> np.ndarray:
    # bit_length(v | mask) via frexp: exact for integers below 2**53 (ours stay below 2**40).
    _, bits = np.frexp((values | h.sub_bucket_mask).astype(np.float64))
    return bits.astype(np.int64) - h.unit_magnitude - (h.sub_bucket_half_count_magnitude + 1)


def _indices_for(ns: np.ndarray) -> np.ndarray:
    """Counts-array indices of integer nanosecond values (hdrh's _counts_index_for)."""
    layout = _layout()
    _, bits = np.frexp((ns | layout.sub_bucket_mask).astype(np.float64))
    bucket = (
        bits.astype(np.int64) - layout.unit_magnitude - (layout.sub_bucket_half_count_magnitude + 1)
    )
    sub = ns >> (bucket + layout.unit_magnitude)
    return (
        ((bucket + 1) << layout.sub_bucket_half_count_magnitude)
        + sub
        - (layout.sub_bucket_half_count)
    )


def _counts_view(hdr: HdrHistogram) -> np.ndarray:
    """The histogram's counters as a writable int64 numpy view (no copy)."""
    return np.ctypeslib.as_array(hdr.counts).view(np.int64)[: hdr.counts_len]
