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

A recording holds hundreds of thousands of interval histograms: `HistogramRows` holds many
at once (their buckets concatenated), `decode_bodies` decodes them in one vectorised pass
and `encode_rows` encodes them byte for byte as hdrh does.

``hdrh`` is imported here and nowhere else in the harness.
"""

from __future__ import annotations

import binascii
import math
import struct
import zlib
from collections.abc import ItemsView, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np
from hdrh.histogram import HdrHistogram

UNIT = "ns"
LOWEST_TRACKABLE_NS = 1
HIGHEST_TRACKABLE_NS = 600 * 1_000_000_000  # ten minutes
SIGNIFICANT_FIGURES = 3
NS_PER_MS = 1_000_000


def _frozen(array: np.ndarray) -> np.ndarray:
    # Histograms share their bucket arrays (a copy, a merge of one, a row of a batch) and
    # never write into them: read-only makes that a guarantee.
    array.setflags(write=False)
    return array


_EMPTY_INDEX = _frozen(np.zeros(0, dtype=np.int64))
_EMPTY_COUNTS = _frozen(np.zeros(0, dtype=np.int64))


class Histogram:
    """The latencies of one request key over one window of a run.

    Held sparse (the used buckets of the nanosecond layout and their counts), so that
    thousands of interval histograms fit in memory. Readers answer in milliseconds
    (``percentile_ms``, ``mean_ms``, ``stddev_ms``, ``min_ms``, ``max_ms``) and are None
    while the histogram is empty; ``count`` is the number of samples.
    """

    __slots__ = ("_counts", "_index", "_max_ns", "_min_ns", "_total")

    def __init__(self) -> None:
        self._index = _EMPTY_INDEX  # sorted bucket indices in use (read-only)
        self._counts = _EMPTY_COUNTS
        self._total = 0
        self._min_ns = 0  # as recorded (exact until decoded from an encoding)
        self._max_ns = 0

    @classmethod
    def _of(cls, index: np.ndarray, counts: np.ndarray) -> Histogram:
        """Buckets in use (ascending, counts > 0), extremes from their bounds (as decoded)."""
        h = cls()
        if index.size:
            layout = bucket_layout()
            h._index, h._counts = _frozen(index), _frozen(counts)
            h._total = int(counts.sum())
            h._min_ns = int(layout.lowest_ns[index[0]])
            h._max_ns = int(layout.highest_ns[index[-1]])
        return h

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
        # ``index`` is ascending and unique, as every Histogram's is.
        if self._total == 0:
            self._index, self._counts = _frozen(index), _frozen(counts)
            self._min_ns, self._max_ns = low, high
        else:
            mine = self._index
            at = np.searchsorted(mine, index)
            if int(at[-1]) < mine.size and np.array_equal(mine[at], index):
                # Buckets already in use (a long run's whole histogram, late in the run).
                merged = self._counts.copy()
                merged[at] += counts
            else:
                union = np.union1d(mine, index)
                merged = np.zeros(union.size, dtype=np.int64)
                merged[np.searchsorted(union, mine)] = self._counts
                merged[np.searchsorted(union, index)] += counts
                self._index = _frozen(union)
            self._counts = _frozen(merged)
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
        return cls._of(index, dense[index].copy())

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
    """HdrHistogram's standard V2 compressed encoding, base64 text ("HISTFAAA...").

    Byte for byte what hdrh's ``HdrHistogram.encode`` writes for the same buckets.
    """
    return encode_rows(rows_of([h]))[0]


def decode_histogram(text: str | bytes) -> Histogram:
    """Decode ``encode_histogram`` output (or any HdrHistogram V2 encoding of nanoseconds).

    An encoding of another layout (other trackable range or precision) is re-recorded into
    ours. Raises ValueError when ``text`` is not an HdrHistogram V2 encoding.
    """
    try:
        raw = binascii.a2b_base64(text.encode("ascii") if isinstance(text, str) else text)
    except (binascii.Error, ValueError) as e:  # UnicodeEncodeError is a ValueError
        raise ValueError(f"not an HdrHistogram V2 encoding: {e}") from e
    try:
        return decode_encodings([raw]).histogram(0)
    except HistogramDecodeError as e:
        if not e.reason.startswith("a histogram of "):
            raise ValueError(f"not an HdrHistogram V2 encoding: {e.reason}") from None
    try:
        hdr = HdrHistogram.decode(binascii.b2a_base64(raw, newline=False))
    except Exception as e:  # hdrh raises TypeError, zlib.error and its own exceptions
        raise ValueError(f"not an HdrHistogram V2 encoding: {e}") from e
    ours = _new_hdr()
    ours.add(hdr)  # another layout: hdrh adds value by value
    return Histogram._from_hdr(ours)


def merge_histograms(histograms: Iterable[Histogram]) -> Histogram:
    """One histogram holding every sample of ``histograms`` (lossless), in one pass."""
    parts = []
    for h in histograms:
        if not isinstance(h, Histogram):
            raise TypeError(f"can only add a stats.Histogram, not {type(h).__name__}")
        if h._total:
            parts.append(h)
    if not parts:
        return Histogram()
    if len(parts) == 1:
        return parts[0].copy()
    merged = _summed(
        np.concatenate([h._index for h in parts]), np.concatenate([h._counts for h in parts])
    )
    merged._min_ns = min(h._min_ns for h in parts)
    merged._max_ns = max(h._max_ns for h in parts)
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


# -- many histograms at once: HdrHistogram's V2 encoding, vectorised ------------------------
#
# A V2 compressed encoding (HdrHistogram_c, hdr_histogram_log.c) is an envelope (cookie,
# length) around the zlib deflate of a payload: a 40-byte header (cookie, length of the
# counts, normalizing index offset, significant figures, lowest and highest trackable value,
# integer-to-double ratio), then the counts from bucket 0 up to the last one in use as
# ZigZag LEB128 varints, where a run of n empty buckets is one varint, -n (hdrh writes -1
# for a single empty bucket; Java writes 0; both read alike). Decoding a recording's
# hundreds of thousands of interval histograms one by one through hdrh costs ~130 us each
# (a dense 31,744-counter array per histogram); here the counts of many histograms are
# inflated one by one (zlib) and then decoded in one pass of numpy over all of them.

_ENVELOPE = struct.Struct(">II")
_PAYLOAD_HEADER = struct.Struct(">IIIIQQd")
_COOKIE_BASE_MASK = ~0xF0  # the low nibble of the second byte is the word size
_COMPRESSED_COOKIE = 0x1C849314  # hdrh's V2_COMPRESSION_COOKIE_BASE | 0x10
_ENCODING_COOKIE = 0x1C849313  # hdrh's V2_ENCODING_COOKIE_BASE | 0x10
_COMPRESSED_PREFIX = _COMPRESSED_COOKIE.to_bytes(4, "big")
_ENCODING_PREFIX = _ENCODING_COOKIE.to_bytes(4, "big")
# A payload header of ours after its cookie and length: offset 0, our layout, ratio 1.
_OUR_HEADER_TAIL = struct.pack(
    ">IIQQd", 0, SIGNIFICANT_FIGURES, LOWEST_TRACKABLE_NS, HIGHEST_TRACKABLE_NS, 1.0
)
# Our layout's counts (31,744 buckets) take under 300 kB even when every bucket holds a
# varint of several bytes; a payload that inflates to more is a zip bomb, not a histogram.
MAX_PAYLOAD_BYTES = 1024 * 1024
# Deflate inflates at most 1032-fold: this little can never reach the bound, and is inflated
# without the (twice as slow) bounded decompressor.
_SAFE_TO_INFLATE_BYTES = MAX_PAYLOAD_BYTES // 1032 - 16
# More samples than this in one histogram (9e15) is no recording: refused, so that the sums
# of a recording's counts stay exact in int64 and float64 alike.
MAX_HISTOGRAM_COUNT = 2**53


class HistogramDecodeError(ValueError):
    """An encoding that is not one of our histograms; ``row`` is its position in the batch."""

    def __init__(self, row: int, reason: str) -> None:
        super().__init__(reason)
        self.row = row
        self.reason = reason


@dataclass(frozen=True)
class InflatedRows:
    """The counts sections of many V2 encodings, inflated and concatenated.

    Row ``r``'s varints are ``data[offsets[r]:offsets[r + 1]]``; `decode_bodies` reads them.
    Kept instead of the encodings, they are decoded again without zlib.
    """

    data: bytes
    offsets: np.ndarray  # int64, rows + 1


def inflate_encodings(encodings: Sequence[bytes]) -> InflatedRows:
    """Check and inflate binary V2 compressed encodings (base64 already undone).

    Each must be of our layout (nanoseconds, 1 ns .. 600 s, 3 significant figures) and
    inflate to at most `MAX_PAYLOAD_BYTES`; HistogramDecodeError names the first that is not.
    """
    bodies: list[bytes] = []
    offsets = np.zeros(len(encodings) + 1, dtype=np.int64)
    size = 0
    for row, raw in enumerate(encodings):
        try:
            body = inflate_encoding(raw)
        except HistogramDecodeError as e:
            raise HistogramDecodeError(row, e.reason) from None
        bodies.append(body)
        size += len(body)
        offsets[row + 1] = size
    return InflatedRows(b"".join(bodies), offsets)


def inflate_encoding(raw: bytes) -> bytes:
    """The counts section (varints) of one binary V2 compressed encoding of our layout."""
    if raw[:4] == _COMPRESSED_PREFIX and len(raw) <= _SAFE_TO_INFLATE_BYTES:
        # The common case (every histogram paybench writes) in few steps; anything else
        # takes the checks below, which say what is wrong.
        try:
            payload = zlib.decompress(raw[_ENVELOPE.size :])
        except zlib.error:
            payload = b""
        if payload[:4] == _ENCODING_PREFIX and payload[8:40] == _OUR_HEADER_TAIL:
            length = int.from_bytes(payload[4:8], "big")
            if len(payload) == _PAYLOAD_HEADER.size + length:
                return payload[_PAYLOAD_HEADER.size :]
    if len(raw) < _ENVELOPE.size:
        raise HistogramDecodeError(0, "not an HdrHistogram V2 encoding (too short)")
    cookie, _length = _ENVELOPE.unpack_from(raw)
    if cookie & _COOKIE_BASE_MASK != _COMPRESSED_COOKIE & _COOKIE_BASE_MASK:
        raise HistogramDecodeError(0, "not an HdrHistogram V2 encoding (not compressed)")
    packed = memoryview(raw)[_ENVELOPE.size :]
    try:
        if len(packed) <= _SAFE_TO_INFLATE_BYTES:
            payload = zlib.decompress(packed)
            tail = b""
        else:
            inflater = zlib.decompressobj()
            payload = inflater.decompress(packed, MAX_PAYLOAD_BYTES)
            tail = inflater.unconsumed_tail
    except zlib.error:
        raise HistogramDecodeError(0, "not an HdrHistogram V2 encoding (not compressed)") from None
    if tail or len(payload) >= MAX_PAYLOAD_BYTES:
        raise HistogramDecodeError(0, f"inflates to more than {MAX_PAYLOAD_BYTES // 1024} KiB")
    if len(payload) < _PAYLOAD_HEADER.size:
        raise HistogramDecodeError(0, "not an HdrHistogram V2 encoding (too short)")
    p_cookie, length, normalized, digits, lowest, highest, _ = _PAYLOAD_HEADER.unpack_from(payload)
    if p_cookie & _COOKIE_BASE_MASK != _ENCODING_COOKIE & _COOKIE_BASE_MASK:
        raise HistogramDecodeError(0, "not an HdrHistogram V2 encoding (payload cookie)")
    if (digits, lowest, highest) != (
        SIGNIFICANT_FIGURES,
        LOWEST_TRACKABLE_NS,
        HIGHEST_TRACKABLE_NS,
    ):
        raise HistogramDecodeError(
            0,
            f"a histogram of {digits} significant figures from {lowest} to {highest}; "
            f"recordings hold {SIGNIFICANT_FIGURES} from {LOWEST_TRACKABLE_NS} to "
            f"{HIGHEST_TRACKABLE_NS} ns",
        )
    if normalized:
        raise HistogramDecodeError(0, "a shifted (normalized) histogram; ours never are")
    body = payload[_PAYLOAD_HEADER.size : _PAYLOAD_HEADER.size + length]
    if len(body) != length:
        raise HistogramDecodeError(0, "not an HdrHistogram V2 encoding (cut short)")
    return body


# Rows are decoded this many varint bytes at a time: numpy is an order of magnitude slower
# on arrays of millions (each new one faults its pages in) than on ones that stay in cache.
DECODE_CHUNK_BYTES = 16 * 1024


def decoded_chunks(
    data: bytes | bytearray | memoryview, offsets: np.ndarray, chunk_bytes: int = DECODE_CHUNK_BYTES
) -> Iterator[tuple[int, HistogramRows]]:
    """(first row, its HistogramRows) for consecutive runs of rows of about ``chunk_bytes``.

    A row larger than ``chunk_bytes`` is a run of its own. See `decode_bodies`.
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    rows = offsets.size - 1
    row = 0
    while row < rows:
        end = int(np.searchsorted(offsets, offsets[row] + chunk_bytes, side="right")) - 1
        end = min(max(end, row + 1), rows)
        try:
            yield row, _decode_run(data, offsets[row : end + 1])
        except HistogramDecodeError as e:
            raise HistogramDecodeError(row + e.row, e.reason) from None
        row = end


def decode_bodies(data: bytes | bytearray | memoryview, offsets: np.ndarray) -> HistogramRows:
    """The histograms whose varints `inflate_encodings` returned, decoded in one pass.

    HistogramDecodeError names the first row that is damaged: a varint cut short, a bucket
    beyond the layout, more than `MAX_HISTOGRAM_COUNT` samples.
    """
    parts = [rows for _, rows in decoded_chunks(data, offsets)]
    if len(parts) == 1:
        return parts[0]
    if not parts:
        return HistogramRows(np.zeros(1, np.int64), _EMPTY_INDEX, _EMPTY_COUNTS)
    sizes = np.concatenate([np.diff(p.offsets) for p in parts])
    return HistogramRows(
        np.concatenate(([0], np.cumsum(sizes))).astype(np.int64),
        np.concatenate([p.index for p in parts]),
        np.concatenate([p.counts for p in parts]),
    )


def _decode_run(data: bytes | bytearray | memoryview, offsets: np.ndarray) -> HistogramRows:
    rows = offsets.size - 1
    first = int(offsets[0])
    raw = np.frombuffer(data, dtype=np.uint8)[first : int(offsets[-1])]
    starts = offsets - first
    if raw.size == 0:
        return HistogramRows(np.zeros(rows + 1, np.int64), _EMPTY_INDEX, _EMPTY_COUNTS)
    last = raw < 0x80  # the last byte of each varint
    # Each row ends on a whole varint: its last byte has no continuation bit.
    used = starts[1:] > starts[:-1]
    cut = used & ~last[np.maximum(starts[1:] - 1, 0)]
    if cut.any():
        raise HistogramDecodeError(int(np.argmax(cut)), "a count cut short (damaged varints)")
    ends = np.flatnonzero(last)
    varint_offsets = np.searchsorted(ends, starts, side="left")  # varints of each row
    begins = np.empty_like(ends)
    begins[0] = 0
    begins[1:] = ends[:-1] + 1
    extra = ends - begins  # bytes after the first
    longest = int(extra.max())
    if longest >= 8:
        # 8 bytes carry 56 bits: a longer varint is a count no interval can hold.
        at = int(np.argmax(extra >= 8))
        bad = int(np.searchsorted(varint_offsets, at, side="right")) - 1
        raise HistogramDecodeError(bad, "a count of more than 2**55 samples in one bucket")
    # LEB128, 7 bits a byte, least significant first; then ZigZag.
    zigzag = (raw[begins] & 0x7F).astype(np.int64)
    for k in range(1, longest + 1):
        longer = np.flatnonzero(extra >= k)
        zigzag[longer] |= (raw[begins[longer] + k] & 0x7F).astype(np.int64) << (7 * k)
    values = (zigzag >> 1) ^ -(zigzag & 1)
    del zigzag, begins, extra
    layout_len = bucket_layout().counts_len
    if int(values.min()) < -layout_len:
        at = int(np.argmin(values))
        bad = int(np.searchsorted(varint_offsets, at, side="right")) - 1
        raise HistogramDecodeError(bad, "a run of empty buckets beyond the layout")
    # -n is a run of n empty buckets; a count (0 too) is one bucket.
    position = np.cumsum(np.maximum(-values, 1))  # the bucket after each varint's last
    keep = values > 0
    entry_offsets = np.concatenate(([0], np.cumsum(keep)))[varint_offsets]
    row_base = np.concatenate(([0], position))[varint_offsets[:-1]]
    index = position[keep] - 1
    index -= np.repeat(row_base, np.diff(entry_offsets))
    counts = values[keep]
    if index.size and int(index.max()) >= layout_len:
        at = int(np.argmax(index >= layout_len))
        bad = int(np.searchsorted(entry_offsets, at, side="right")) - 1
        raise HistogramDecodeError(bad, "a bucket beyond the layout")
    decoded = HistogramRows(entry_offsets, index, counts)
    # Below this no row of 31,744 buckets reaches MAX_HISTOGRAM_COUNT: the common case.
    if counts.size and int(counts.max()) >= _COUNT_WORTH_CHECKING:
        totals = decoded.totals_float()
        if float(totals.max()) >= MAX_HISTOGRAM_COUNT:
            raise HistogramDecodeError(
                int(np.argmax(totals >= MAX_HISTOGRAM_COUNT)),
                f"holds {MAX_HISTOGRAM_COUNT:,} latencies or more",
            )
    return decoded


_COUNT_WORTH_CHECKING = MAX_HISTOGRAM_COUNT // 32768


def decode_encodings(encodings: Sequence[bytes]) -> HistogramRows:
    """Binary V2 compressed encodings of our layout -> their histograms, in one pass."""
    inflated = inflate_encodings(encodings)
    return decode_bodies(inflated.data, inflated.offsets)


@dataclass(frozen=True, eq=False)
class HistogramRows:
    """Many histograms of the layout at once: row ``r`` holds the buckets
    ``index[offsets[r]:offsets[r + 1]]`` (ascending) and their ``counts``.

    What a recording's thousands of interval histograms are read as: percentiles of every
    row, merges of all or of groups of consecutive rows, without a Histogram per row.
    """

    offsets: np.ndarray  # int64, rows + 1
    index: np.ndarray  # int64
    counts: np.ndarray  # int64

    @property
    def rows(self) -> int:
        return int(self.offsets.size - 1)

    def totals(self) -> np.ndarray:
        """The number of samples of each row (int64)."""
        cumulative = np.concatenate(([0], np.cumsum(self.counts)))
        return cumulative[self.offsets[1:]] - cumulative[self.offsets[:-1]]

    def totals_float(self) -> np.ndarray:
        cumulative = np.concatenate(([0.0], np.cumsum(self.counts, dtype=np.float64)))
        return cumulative[self.offsets[1:]] - cumulative[self.offsets[:-1]]

    def slice(self, first: int, last: int) -> HistogramRows:
        """Rows ``first`` to ``last - 1`` (views, no copy)."""
        lo, hi = int(self.offsets[first]), int(self.offsets[last])
        return HistogramRows(
            self.offsets[first : last + 1] - lo, self.index[lo:hi], self.counts[lo:hi]
        )

    def histogram(self, row: int) -> Histogram:
        """Row ``row`` as a Histogram (extremes: its first bucket's lowest, last's highest)."""
        a, b = int(self.offsets[row]), int(self.offsets[row + 1])
        return Histogram._of(self.index[a:b], self.counts[a:b])

    def percentiles_ns(self, percents: Sequence[float]) -> np.ndarray:
        """rows x percents: `Histogram.percentile_ns` of every row; 0 where a row is empty."""
        out = np.zeros((self.rows, len(percents)), dtype=np.int64)
        if not self.counts.size:
            return out
        totals = self.totals()
        cumulative = np.cumsum(self.counts)
        before = np.concatenate(([0], cumulative))[self.offsets[:-1]]
        filled = totals > 0
        layout = bucket_layout()
        for j, percent in enumerate(percents):
            p = min(max(float(percent), 0.0), 100.0)
            # `_target_rank` for every row: the same float operations in the same order.
            ranks = np.maximum(np.floor(p * totals / 100.0 + 0.5), 1.0).astype(np.int64)
            position = np.searchsorted(cumulative, before + ranks, side="left")
            position = np.minimum(position, self.counts.size - 1)
            bounds = layout.lowest_ns if p == 0 else layout.highest_ns
            out[:, j] = np.where(filled, bounds[self.index[position]], 0)
        return out

    def merged(self) -> Histogram:
        """Every row added together (lossless)."""
        return _summed(self.index, self.counts)

    def merged_groups(self, group_of_row: np.ndarray) -> dict[int, Histogram]:
        """Per group number, the rows of that group added together.

        ``group_of_row`` gives each row's group (non-decreasing over the rows that hold
        samples; an empty row's group is never read).
        """
        sizes = np.diff(self.offsets)
        groups = np.asarray(group_of_row, dtype=np.int64)[sizes > 0]
        bounds = np.concatenate(([0], np.cumsum(sizes[sizes > 0])))
        out: dict[int, Histogram] = {}
        if groups.size == 0:
            return out
        change = np.flatnonzero(np.diff(groups)) + 1
        firsts = np.concatenate(([0], change))
        lasts = np.concatenate((change, [groups.size]))
        for a, b in zip(firsts.tolist(), lasts.tolist(), strict=True):
            lo, hi = int(bounds[a]), int(bounds[b])
            out[int(groups[a])] = _summed(self.index[lo:hi], self.counts[lo:hi])
        return out


def _summed(index: np.ndarray, counts: np.ndarray) -> Histogram:
    """The buckets ``index`` (repeats allowed) with their ``counts`` added, as a Histogram."""
    if not index.size:
        return Histogram()
    dense = np.zeros(bucket_layout().counts_len, dtype=np.int64)
    np.add.at(dense, index, counts)
    used = np.flatnonzero(dense)
    return Histogram._of(used, dense[used])


def varint_bodies(rows: HistogramRows) -> InflatedRows:
    """Every row's counts as V2 varints: what `decode_bodies` reads back."""
    sizes = np.diff(rows.offsets)
    n = rows.index.size
    if n:
        previous = np.empty(n, dtype=np.int64)
        previous[1:] = rows.index[:-1]
        previous[rows.offsets[:-1][sizes > 0]] = -1  # a row starts after bucket -1
        gaps = rows.index - previous - 1
    else:
        gaps = np.zeros(0, dtype=np.int64)
    has_gap = gaps > 0
    # Per bucket in use: the run of empty buckets before it (when any), then its count.
    slot = np.arange(n) + np.cumsum(has_gap)
    values = np.empty(n + int(has_gap.sum()), dtype=np.int64)
    values[slot] = rows.counts
    values[slot[has_gap] - 1] = -gaps[has_gap]
    zigzag = ((values << 1) ^ (values >> 63)).astype(np.uint64)
    # LEB128: 7 bits a byte with a continuation bit; a 9th byte carries the last 8 bits.
    nbytes = np.ones(values.size, dtype=np.int64)
    for more_bytes in range(1, 9):
        nbytes += zigzag >= np.uint64(1 << (7 * more_bytes))
    begins = np.cumsum(nbytes) - nbytes
    k = (np.arange(int(nbytes.sum()), dtype=np.int64) - np.repeat(begins, nbytes)).astype(np.uint64)
    owner = np.repeat(zigzag, nbytes)
    more = k + np.uint64(1) < np.repeat(nbytes, nbytes).astype(np.uint64)
    seven = (owner >> (np.uint64(7) * np.minimum(k, np.uint64(8)))) & np.uint64(0x7F)
    ninth = (owner >> np.uint64(56)) & np.uint64(0xFF)
    stream = np.where(k == 8, ninth, seven | np.where(more, np.uint64(0x80), np.uint64(0)))
    data = stream.astype(np.uint8).tobytes()
    # Where each row's bytes begin: the first value of its first bucket in use.
    value_of_entry = slot - has_gap  # the first value written for each bucket in use
    first_value = np.concatenate((value_of_entry, [values.size]))[rows.offsets]
    byte_at = np.concatenate((begins, [len(data)]))[first_value]
    return InflatedRows(data, byte_at.astype(np.int64))


def encode_rows(rows: HistogramRows) -> list[str]:
    """HdrHistogram's V2 compressed base64 encoding of every row (as hdrh writes it)."""
    bodies = varint_bodies(rows)
    data = bodies.data
    out = []
    for a, b in zip(bodies.offsets[:-1].tolist(), bodies.offsets[1:].tolist(), strict=True):
        header = _PAYLOAD_HEADER.pack(
            _ENCODING_COOKIE,
            b - a,
            0,
            SIGNIFICANT_FIGURES,
            LOWEST_TRACKABLE_NS,
            HIGHEST_TRACKABLE_NS,
            1.0,
        )
        packed = zlib.compress(header + data[a:b])
        envelope = _ENVELOPE.pack(_COMPRESSED_COOKIE, len(packed))
        out.append(binascii.b2a_base64(envelope + packed, newline=False).decode("ascii"))
    return out


def rows_of(histograms: Sequence[Histogram]) -> HistogramRows:
    """Histograms as one HistogramRows (their buckets concatenated)."""
    parts = [h.buckets() for h in histograms]
    sizes = [p[0].size for p in parts]
    offsets = np.concatenate(([0], np.cumsum(sizes))).astype(np.int64)
    if not parts or not offsets[-1]:
        return HistogramRows(offsets, _EMPTY_INDEX, _EMPTY_COUNTS)
    index = np.concatenate([p[0] for p in parts]).astype(np.int64, copy=False)
    counts = np.concatenate([p[1] for p in parts]).astype(np.int64, copy=False)
    return HistogramRows(offsets, index, counts)


def encode_histograms(histograms: Sequence[Histogram]) -> list[str]:
    """`encode_histogram` of each, a few thousand at a time (arrays that stay in cache)."""
    out: list[str] = []
    for start in range(0, len(histograms), _ENCODE_BATCH):
        out.extend(encode_rows(rows_of(histograms[start : start + _ENCODE_BATCH])))
    return out


_ENCODE_BATCH = 1024


# -- many histograms' percentiles: a timeline --------------------------------------------


@dataclass(frozen=True, eq=False)
class PercentileTable:
    """Percentiles of many histograms: keys x points x labels, in milliseconds.

    A run's timeline (one point per interval, one key per request name): a day-long soak
    has tens of thousands of points, so no dictionaries are kept per point; `point` gives a
    point's ``{key: {label: ms}}`` as a view of the table, and `group_peaks` what a chart
    of merged points needs in one step.
    """

    keys: tuple[str, ...]
    labels: tuple[str, ...]
    values_ms: np.ndarray  # keys x points x labels, float64
    present: np.ndarray  # keys x points: the key saw a request at that point

    @cached_property
    def position(self) -> dict[str, int]:
        return {key: i for i, key in enumerate(self.keys)}

    @property
    def points(self) -> int:
        return int(self.present.shape[1])

    def point(self, column: int) -> TablePercentiles:
        return TablePercentiles(self, column)

    def group_peaks(self, group: int) -> tuple[np.ndarray, np.ndarray]:
        """Every ``group`` consecutive points merged (the last group may be shorter):
        (keys x groups x labels, the highest value of each key and label in each group;
        keys x groups, whether the key saw a request in that group)."""
        keys, points, labels = self.values_ms.shape
        groups = -(-points // group) if points else 0
        pad = groups * group - points
        values = np.where(self.present[:, :, None], self.values_ms, -np.inf)
        values = np.pad(values, ((0, 0), (0, pad), (0, 0)), constant_values=-np.inf)
        present = np.pad(self.present, ((0, 0), (0, pad)), constant_values=False)
        peaks: np.ndarray = values.reshape(keys, groups, group, labels).max(axis=2)
        seen = np.asarray(present.reshape(keys, groups, group).any(axis=2))
        return peaks, seen


class TablePercentiles(Mapping[str, Mapping[str, float]]):
    """One point of a `PercentileTable`: ``{request key: {"p50": ms, ...}}``, read from the
    table (keys without a request at that point are absent)."""

    __slots__ = ("column", "table")

    def __init__(self, table: PercentileTable, column: int) -> None:
        self.table = table
        self.column = column

    def __getitem__(self, key: str) -> Mapping[str, float]:
        table = self.table
        i = table.position.get(key)
        if i is None or not table.present[i, self.column]:
            raise KeyError(key)
        return dict(zip(table.labels, table.values_ms[i, self.column].tolist(), strict=True))

    def __iter__(self) -> Iterator[str]:
        table = self.table
        return (table.keys[i] for i in np.flatnonzero(table.present[:, self.column]).tolist())

    def items(self) -> ItemsView[str, Mapping[str, float]]:
        return _TableItems(self)

    def pairs(self) -> list[tuple[str, dict[str, float]]]:
        """Every (key, percentiles) of the point, read from the table in one step."""
        table, column = self.table, self.column
        rows = np.flatnonzero(table.present[:, column])
        labels, keys = table.labels, table.keys
        values = table.values_ms[rows, column].tolist()
        return [
            (keys[i], dict(zip(labels, v, strict=True)))
            for i, v in zip(rows.tolist(), values, strict=True)
        ]

    def __len__(self) -> int:
        return int(np.count_nonzero(self.table.present[:, self.column]))

    def __repr__(self) -> str:
        return repr(dict(self.items()))


class _TableItems(ItemsView[str, Mapping[str, float]]):
    """A point's items in one read of the table (the report reads every point's)."""

    _mapping: TablePercentiles

    def __iter__(self) -> Iterator[tuple[str, Mapping[str, float]]]:
        return iter(self._mapping.pairs())
