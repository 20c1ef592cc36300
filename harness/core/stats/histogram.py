"""The one latency histogram type: HDR buckets of nanoseconds, read in milliseconds.

Latencies are recorded into the bucket layout of an HdrHistogram (Gil Tene's High Dynamic
Range histogram; the ``hdrh`` package is the reference implementation and the encoder) of
integer **nanoseconds**, 3 significant figures, 1 ns .. 600 s: every recorded value is kept
to within 0.1 % (1/1024 at worst) of what it was, from 0.1 ms latencies up to ten minutes,
and two histograms add bucket by bucket without loss. Nanoseconds rather than microseconds
keep that 0.1 % below a millisecond too (a 0.2 ms request rounded to whole microseconds
could be 0.25 % off).

`Histogram` stores nanoseconds and every reader answers in **milliseconds** (``_ms``) or
says ``_ns``; an empty histogram reads as None. ``encode_histogram`` is HdrHistogram's
standard V2 compressed base64 encoding (of the nanosecond histogram): any HDR tool reads it.

Percentile convention (HdrHistogram's): the ``p`` percentile of ``N`` samples is the sample
of rank ``max(1, int(p * N / 100 + 0.5))`` in ascending order, reported as the highest value
equivalent to it at the histogram's precision (the lowest for p = 0).

``hdrh`` is imported here and nowhere else in the harness.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from hdrh.histogram import HdrHistogram

UNIT = "ns"
LOWEST_TRACKABLE_NS = 1
HIGHEST_TRACKABLE_NS = 600 * 1_000_000_000  # ten minutes
SIGNIFICANT_FIGURES = 3
NS_PER_MS = 1_000_000


class Histogram:
    """The latencies of one request key over one window of a run.

    Held sparse (the used buckets of the nanosecond layout and their counts), so that
    thousands of interval histograms fit in memory. Readers answer in milliseconds
    (``percentile_ms``, ``mean_ms``, ``stddev_ms``, ``min_ms``, ``max_ms``) and are None
    while the histogram is empty; ``count`` is the number of samples.
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
        if not isinstance(other, Histogram):
            raise TypeError(f"can only add a stats.Histogram, not {type(other).__name__}")
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
        """(bucket indices in use, ascending; their counts): read-only views.

        `bucket_layout` gives each index's lowest, highest and mid value in nanoseconds.
        """
        return self._index, self._counts

    def encode(self) -> str:
        return encode_histogram(self)

    # -- reading -----------------------------------------------------------------------

    @property
    def count(self) -> int:
        """The number of samples recorded."""
        return self._total

    @property
    def min_ns(self) -> int | None:
        """The smallest sample (exact when recorded here, its bucket's lowest when decoded)."""
        return self._min_ns if self._total else None

    @property
    def max_ns(self) -> int | None:
        """The largest sample (exact when recorded here, its bucket's highest when decoded)."""
        return self._max_ns if self._total else None

    @property
    def min_ms(self) -> float | None:
        return self._min_ns / NS_PER_MS if self._total else None

    @property
    def max_ms(self) -> float | None:
        return self._max_ns / NS_PER_MS if self._total else None

    def percentile_ns(self, percent: float) -> int | None:
        """The ``percent`` percentile in ns (hdrh's get_value_at_percentile); None if empty."""
        if not self._total:
            return None
        position = int(np.searchsorted(np.cumsum(self._counts), _target_rank(percent, self._total)))
        layout = bucket_layout()
        bounds = layout.lowest_ns if percent == 0 else layout.highest_ns
        return int(bounds[self._index[position]])

    def percentile_ms(self, percent: float) -> float | None:
        """The ``percent`` percentile (0..100) in ms; None when empty."""
        value_ns = self.percentile_ns(percent)
        return None if value_ns is None else value_ns / NS_PER_MS

    def percentiles_ms(self, percents: Sequence[float]) -> tuple[float | None, ...]:
        """``percentile_ms(p)`` for each p, in one pass over the buckets."""
        if not self._total:
            return tuple(None for _ in percents)
        cumulative = np.cumsum(self._counts)
        ranks = np.array([_target_rank(p, self._total) for p in percents], dtype=np.int64)
        positions = np.searchsorted(cumulative, ranks)
        layout = bucket_layout()
        return tuple(
            int((layout.lowest_ns if p == 0 else layout.highest_ns)[self._index[i]]) / NS_PER_MS
            for p, i in zip(percents, positions, strict=True)
        )

    @property
    def mean_ms(self) -> float | None:
        """Mean in ms, from the buckets' mid values (HdrHistogram's method; within 0.05 %)."""
        if not self._total:
            return None
        mid = bucket_layout().mid_ns[self._index]
        return float(self._counts @ mid / self._total) / NS_PER_MS

    @property
    def stddev_ms(self) -> float | None:
        """Population standard deviation in ms, from the buckets' mid values (as hdrh)."""
        if not self._total:
            return None
        mid = bucket_layout().mid_ns[self._index]
        mean = self._counts @ mid / self._total
        return float(math.sqrt(self._counts @ (mid - mean) ** 2 / self._total)) / NS_PER_MS

    # -- conversion (hdrh stays inside this module) ------------------------------------

    def _to_hdr(self) -> HdrHistogram:
        hdr = _new_hdr()
        if self._total:
            _counts_view(hdr)[self._index] = self._counts
            hdr.total_count = self._total
            hdr.min_value = self._min_ns
            hdr.max_value = self._max_ns
        return hdr

    @classmethod
    def _from_hdr(cls, hdr: HdrHistogram) -> Histogram:
        dense = _counts_view(hdr)
        index = np.nonzero(dense)[0].astype(np.int64)
        h = cls()
        if index.size:
            layout = bucket_layout()
            h._index, h._counts = index, dense[index].copy()
            h._total = int(h._counts.sum())
            h._min_ns = int(layout.lowest_ns[index[0]])
            h._max_ns = int(layout.highest_ns[index[-1]])
        return h

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Histogram):
            return NotImplemented
        return np.array_equal(self._index, other._index) and np.array_equal(
            self._counts, other._counts
        )

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"Histogram(count={self._total})"


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
    return h._to_hdr().encode().decode("ascii")


def decode_histogram(text: str) -> Histogram:
    """Decode ``encode_histogram`` output (or any HdrHistogram V2 encoding of nanoseconds).

    An encoding of another layout (other trackable range or precision) is re-recorded into
    ours. Raises ValueError when ``text`` is not an HdrHistogram V2 encoding.
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
        ours = _new_hdr()
        ours.add(hdr)  # hdrh adds value by value
        hdr = ours
    return Histogram._from_hdr(hdr)


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


def percentile_ms(h: Histogram, percent: float) -> float | None:
    """``h.percentile_ms(percent)``: the ``percent`` percentile in ms, None when empty."""
    return h.percentile_ms(percent)


def _target_rank(percent: float, total: int) -> int:
    """HdrHistogram's rank for a percentile (1-based)."""
    percent = min(max(percent, 0.0), 100.0)
    return max(int(percent * total / 100.0 + 0.5), 1)


# -- the bucket layout, vectorised -----------------------------------------------------------


@dataclass(frozen=True, eq=False)
class BucketLayout:
    """Per bucket index of the nanosecond layout: its lowest, highest and mid value (ns).

    ``highest_ns`` is HdrHistogram's "highest equivalent value", ``mid_ns`` its "median
    equivalent value" (lowest + half the bucket's size).
    """

    lowest_ns: np.ndarray
    highest_ns: np.ndarray
    mid_ns: np.ndarray  # float64
    unit_magnitude: int
    sub_bucket_half_count_magnitude: int
    sub_bucket_half_count: int
    sub_bucket_mask: int
    counts_len: int


@lru_cache(maxsize=1)
def bucket_layout() -> BucketLayout:
    """The bucket layout every `Histogram` uses (computed once, from hdrh's parameters)."""
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
    highest = lowest + size - 1
    mid = (lowest + (size >> 1)).astype(np.float64)
    # Shared by every caller through the cache: nobody may write into it.
    for array in (lowest, highest, mid):
        array.setflags(write=False)
    return BucketLayout(
        lowest_ns=lowest,
        highest_ns=highest,
        mid_ns=mid,
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
    """Bucket indices of integer nanosecond values (hdrh's _counts_index_for)."""
    layout = bucket_layout()
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
