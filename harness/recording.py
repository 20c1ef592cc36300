"""Read ``paybench.hdr.json``, the exact recording ``harness.plugin`` writes, into values.

IO at the edge: this module reads the file and, for the plugin, writes it (`Aggregator`,
`RecordingWriter`, by the run folder's rules); it never imports Locust. The format is
described in docs/ARCHITECTURE.md and docs/measurement.md.

Format history (``format_version``; a newer one is refused, every older one read):
  1  one JSON document: entries with whole-run and per-interval HdrHistograms of
     nanoseconds (V2 compressed, base64), cut-offs, failures, users, generator CPU, paced
     users. A CPU sample's ``runnable_pct`` came later, optional: files without it read as
     before.
  2  JSON lines, streamed while the run goes so that the Locust master's memory stays flat:
     a header line; key declarations; one line per interval with every key's row (count,
     failures, cut-off, sum, min, max, the same histogram encoding); users and CPU samples;
     an end line with the run's times, the whole-run rows, failures and paced users. An
     interval may come in more than one line (a worker's late data): its rows add up.
"""

from __future__ import annotations

import binascii
import itertools
import json
import math
import os
import secrets
import time
from array import array
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, BinaryIO, Literal, NoReturn

import numpy as np

from harness.core import arrivals
from harness.core.model import (
    AGGREGATE_KEY,
    FailureRecord,
    IntervalPoint,
    RequestStats,
    request_key,
)
from harness.core.stats import (
    HIGHEST_TRACKABLE_NS,
    LOWEST_TRACKABLE_NS,
    MAX_BOOTSTRAP_BLOCKS,
    NS_PER_MS,
    SIGNIFICANT_FIGURES,
    UNIT,
    Histogram,
    bucket_layout,
    decode_histogram,
    encode_histogram,
    merge_histograms,
    percentile_ms,
)
from harness.core.stats.histogram import (
    MAX_PAYLOAD_BYTES,
    HistogramDecodeError,
    HistogramRows,
    PercentileTable,
    decode_bodies,
    decoded_chunks,
    encode_histograms,
    inflate_encoding,
    rows_of,
    varint_bodies,
)
from harness.errors import FormatError
from harness.inputs import (
    DAMAGED,
    MAX_INT,
    MAX_METADATA_BYTES,
    MAX_RECORDING_BYTES,
    MAX_TEXT_CHARS,
    MIB,
    Field,
    Obj,
    open_bounded,
    parse_json,
    read_bytes,
    show,
)
from harness.runfolder import HDR_FILE as HDR_FILE  # the names live there; kept importable here
from harness.runfolder import LIVE_FILE as LIVE_FILE
from harness.runfolder import refuse_link, write_error

FORMAT = "paybench-histograms"
FORMAT_VERSION = 2
FLOW_TYPE = "FLOW"  # request_type of a flow entry (a journey, not a request)

# Locust warns when a generator process is above this; so do we.
CPU_SATURATED_PCT = 90.0
# A process whose event loop was on a CPU or waiting for one this much of an interval was
# CPU-bound, whatever share of a core the other processes of the machine left it.
RUNNABLE_SATURATED_PCT = 90.0
# Paced users that achieved less than (100 - this) % of their intended iterations.
PACED_SHORTFALL_PCT = 10.0
# The paced rows that count open-model arrivals (harness.core.arrivals) -> their kind.
ARRIVAL_KINDS = {arrivals.DROPPED_CLASS: "dropped", arrivals.LATE_CLASS: "late"}
TIMELINE_PERCENTILES = {"p50": 50.0, "p95": 95.0, "p99": 99.0}

Key = tuple[str, str]  # (request_type, name)


@dataclass(frozen=True, eq=False)
class IntervalSeries:
    """One request key's intervals, column by column, in ascending interval index.

    Row ``r`` is the interval ``[index[r] * interval_s, (index[r] + 1) * interval_s)``:
    ``count``, ``failures``, ``cut_off``, ``sum_ns`` as the file holds them, ``min_ns`` and
    ``max_ns`` -1 where it holds none. Its histogram is kept as the inflated V2 varints
    ``bodies[offsets[r]:offsets[r + 1]]`` (no Histogram per interval: a day-long soak has
    hundreds of thousands) and decoded a chunk at a time when a window is read;
    ``percentiles_ns`` holds its `TIMELINE_PERCENTILES`, in that order (0 where empty).

    Read lazily (``load_recording(..., lazy=True)``), its rows are checked (each histogram
    holds its count) and their percentiles filled as they are first decoded, so that
    judging decodes each interval once; `check` decodes the rest.
    """

    index: np.ndarray
    count: np.ndarray
    failures: np.ndarray
    cut_off: np.ndarray
    sum_ns: np.ndarray
    min_ns: np.ndarray
    max_ns: np.ndarray
    bodies: bytes | bytearray = field(repr=False)
    offsets: np.ndarray = field(repr=False)
    percentiles_ns: np.ndarray = field(repr=False)
    pending: _RowCheck | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return int(self.index.size)

    def chunks(self, first: int, last: int) -> Iterator[tuple[int, HistogramRows]]:
        """Rows ``first`` to ``last - 1`` decoded a chunk at a time: (the chunk's first row,
        its histograms). Rows not checked yet are checked first (FormatError)."""
        if last <= first:
            return
        pending = self.pending
        if pending is not None and pending.upto < first:
            for _ in self._decoded(pending.upto, first):
                pass  # the rows before the window: checked, not read
        yield from self._decoded(first, last)

    def check(self) -> None:
        """Check every row not checked yet (FormatError naming the first that is wrong)."""
        pending = self.pending
        if pending is not None and pending.upto < len(self):
            for _ in self._decoded(pending.upto, len(self)):
                pass

    @property
    def checked(self) -> bool:
        return self.pending is None or self.pending.upto >= len(self)

    def _decoded(self, first: int, last: int) -> Iterator[tuple[int, HistogramRows]]:
        pending = self.pending
        chunks = decoded_chunks(self.bodies, self.offsets[first : last + 1])
        while True:
            try:
                start, rows = next(chunks)
            except StopIteration:
                return
            except HistogramDecodeError as e:
                if pending is None:
                    raise
                pending.fail(first + e.row, e.reason)
            if pending is not None and first + start + rows.rows > pending.upto:
                pending.rows(self, first + start, rows)
            yield first + start, rows

    def histograms(self, first: int = 0, last: int | None = None) -> tuple[Histogram, ...]:
        """One Histogram per row (for a few rows: a window of hundreds of intervals)."""
        last = len(self) if last is None else last
        return tuple(
            rows.histogram(r) for _, rows in self.chunks(first, last) for r in range(rows.rows)
        )


class _RowCheck:
    """What a series' rows must hold, checked in row order as they are decoded: each
    histogram holds its row's count; each checked row's percentiles are filled in."""

    def __init__(self, counts: np.ndarray, where: Callable[[int], Field]) -> None:
        self.counts = counts
        self.where = where  # a row -> the field its histogram is
        self.upto = 0  # rows [0, upto) are checked

    def fail(self, row: int, reason: str) -> NoReturn:
        self.where(row).at("histogram").fail(reason)

    def rows(self, series: IntervalSeries, start: int, rows: HistogramRows) -> None:
        """The decoded rows ``start`` .. ``start + rows.rows - 1`` of ``series``."""
        if start > self.upto:
            return  # out of order (another reader): `check` decodes them again in order
        if start < self.upto:
            rows = rows.slice(self.upto - start, rows.rows)
            start = self.upto
        held = rows.totals()
        wrong = np.flatnonzero(held != self.counts[start : start + rows.rows])
        if wrong.size:
            r = int(wrong[0])
            self.fail(
                start + r,
                f"holds {int(held[r])} latencies where count is {int(self.counts[start + r])}",
            )
        series.percentiles_ns[start : start + rows.rows] = rows.percentiles_ns(
            tuple(TIMELINE_PERCENTILES.values())
        )
        self.upto = start + rows.rows


@dataclass(frozen=True, eq=False)
class EntryData:
    """One request key (``type``, ``name``) over the whole run, and its intervals."""

    request_type: str
    name: str
    count: int
    failures: int
    cut_off: int
    sum_ns: int
    min_ns: int | None
    max_ns: int | None
    histogram: Histogram = field(repr=False)
    intervals: IntervalSeries = field(repr=False)

    @property
    def key(self) -> str:
        return request_key(self.request_type, self.name)

    @property
    def is_flow(self) -> bool:
        return self.request_type == FLOW_TYPE


@dataclass(frozen=True)
class CpuSample:
    """One generator process over one interval: the CPU it got, and the CPU it wanted."""

    epoch: float
    process: str  # "master", "local" or a worker's name
    cpu_pct: float  # share of one core it ran on (psutil, all threads)
    # Share of the wall time its event loop was on a CPU or on the run queue waiting for one
    # (/proc/<pid>/schedstat); None where the kernel does not say (other systems, old files).
    runnable_pct: float | None = None


@dataclass(frozen=True)
class UsersSample:
    epoch: float
    users: int


@dataclass(frozen=True)
class PacedUserClass:
    """A User class with a fixed schedule (constant_pacing / constant_throughput)."""

    user_class: str
    pacing_s: float  # intended time between iteration starts, per user
    users: int  # users of this class seen
    intended_iterations: float
    achieved_iterations: int

    @property
    def achieved_pct(self) -> float | None:
        if self.intended_iterations <= 0:
            return None
        return 100.0 * self.achieved_iterations / self.intended_iterations

    @property
    def shortfall_pct(self) -> float | None:
        achieved = self.achieved_pct
        return None if achieved is None else max(0.0, 100.0 - achieved)


@dataclass(frozen=True)
class PacedInfo:
    """Coordinated omission: paced users' schedule and latencies from the intended start."""

    user_classes: tuple[PacedUserClass, ...] = ()
    entries: tuple[EntryData, ...] = ()  # latency measured from each request's intended start

    @property
    def active(self) -> bool:
        return bool(self.user_classes)

    @property
    def intended_iterations(self) -> float:
        return sum(c.intended_iterations for c in self.user_classes)

    @property
    def achieved_iterations(self) -> int:
        return sum(c.achieved_iterations for c in self.user_classes)

    @property
    def shortfall_pct(self) -> float | None:
        if self.intended_iterations <= 0:
            return None
        return max(0.0, 100.0 * (1 - self.achieved_iterations / self.intended_iterations))


@dataclass(frozen=True)
class GeneratorFacts:
    """What the load generator itself did: CPU samples of its processes, pacing."""

    cpu: tuple[CpuSample, ...] = ()
    paced: PacedInfo = field(default_factory=PacedInfo)
    warnings: tuple[str, ...] = ()

    @property
    def max_cpu_pct(self) -> float | None:
        return max((s.cpu_pct for s in self.cpu), default=None)


@dataclass(frozen=True)
class Recording:
    """A ``paybench.hdr.json`` read into values (every histogram checked as it was read).

    The figures of a window come from one pass over its intervals, each decoded once, and
    are kept for the next question about the same window: `request_stats` and `aggregate`
    of the steady state share that pass. ``users`` are in the order of their epochs.
    """

    path: Path
    interval_s: float
    test_start_epoch: float | None
    spawning_complete_epoch: float | None
    test_stop_epoch: float | None
    entries: tuple[EntryData, ...]
    users: tuple[UsersSample, ...] = ()
    failure_rows: tuple[Mapping[str, Any], ...] = ()
    cpu: tuple[CpuSample, ...] = ()
    paced: PacedInfo = field(default_factory=PacedInfo)
    warnings: tuple[str, ...] = ()
    workers: tuple[str, ...] = ()
    spawning_complete_epochs: tuple[float, ...] = ()
    # The windows read so far; not a field of `dataclasses.replace`: a copy reads anew.
    _windows: dict[tuple[Any, ...], _Window] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(e.key for e in self.entries)

    @property
    def max_cpu_pct(self) -> float | None:
        return max((s.cpu_pct for s in self.cpu), default=None)

    @property
    def duration_s(self) -> float:
        if self.test_start_epoch is None or self.test_stop_epoch is None:
            return 0.0
        return max(0.0, self.test_stop_epoch - self.test_start_epoch)

    def entry(self, key: str) -> EntryData | None:
        return next((e for e in self.entries if e.key == key), None)

    def check(self) -> Recording:
        """Every interval histogram checked (a lazy read's not read yet are decoded now):
        FormatError naming the first that does not hold its count. Returns itself."""
        for entry in (*self.entries, *self.paced.entries):
            entry.intervals.check()
        return self

    # -- request statistics ------------------------------------------------------------

    def request_stats(
        self, start_epoch: float | None = None, end_epoch: float | None = None
    ) -> tuple[RequestStats, ...]:
        """Per request key (flows included) over the window, or the whole run.

        A window takes the intervals whose middle lies in ``[start_epoch, end_epoch)``; a
        window that reaches the test's start or stop takes the edge intervals too (so the
        cut-offs counted at stop belong to it). ``duration_s`` is the window's length.
        ``interval_histograms`` holds one histogram per interval of the window, or, when
        more than ``stats.MAX_BOOTSTRAP_BLOCKS`` of them saw a request, that many groups of
        consecutive non-empty intervals, pooled exactly as the bootstrap pools them.
        """
        return self._window(start_epoch, end_epoch, paced=False).requests

    def paced_request_stats(
        self, start_epoch: float | None = None, end_epoch: float | None = None
    ) -> tuple[RequestStats, ...]:
        """Like `request_stats`, with latencies measured from the intended start."""
        return self._window(start_epoch, end_epoch, paced=True).requests

    def aggregate(
        self,
        start_epoch: float | None = None,
        end_epoch: float | None = None,
        *,
        intervals: bool = True,
    ) -> RequestStats:
        """Every request together (flow entries excluded: they are not requests).

        Its interval histograms merge every request key's index by index (pooled as in
        `request_stats` above ``stats.MAX_BOOTSTRAP_BLOCKS`` non-empty intervals). The
        whole run with ``intervals=False`` has none, and costs no decoding: its figures
        are the keys' whole-run ones (a summary line needs no confidence interval).
        """
        if not intervals and start_epoch is None and end_epoch is None:
            parts = [
                _request_stats(
                    e.request_type,
                    e.name,
                    e.count,
                    e.failures,
                    e.cut_off,
                    e.sum_ns,
                    e.min_ns,
                    e.max_ns,
                    e.histogram,
                    (),
                    self.duration_s,
                )
                for e in self.entries
                if not e.is_flow
            ]
            return combine_stats(parts, self.duration_s)
        total = self._window(start_epoch, end_epoch, paced=False).total
        assert total is not None  # a window of the requests always has its aggregate
        return total

    def _window(self, start_epoch: float | None, end_epoch: float | None, paced: bool) -> _Window:
        key = (start_epoch, end_epoch, paced)
        found = self._windows.get(key)
        if found is None:
            found = self._windows[key] = _window_stats(self, start_epoch, end_epoch, paced)
        return found

    def _window_duration(self, start_epoch: float | None, end_epoch: float | None) -> float:
        start = self.test_start_epoch if start_epoch is None else start_epoch
        end = self.test_stop_epoch if end_epoch is None else end_epoch
        if start is None or end is None:
            return 0.0
        return max(0.0, end - start)

    def _rows_in_window(
        self, series: IntervalSeries, start_epoch: float | None, end_epoch: float | None
    ) -> tuple[int, int]:
        """The rows ``[first, last)`` whose interval's middle lies in the window."""
        middle = (series.index + 0.5) * self.interval_s
        inside = np.ones(middle.size, dtype=bool)
        if start_epoch is not None and not (
            self.test_start_epoch is not None and start_epoch <= self.test_start_epoch
        ):
            inside &= middle >= start_epoch
        if end_epoch is not None and not (
            self.test_stop_epoch is not None and end_epoch >= self.test_stop_epoch
        ):
            inside &= middle < end_epoch
        rows = np.flatnonzero(inside)  # consecutive: the middles ascend
        return (int(rows[0]), int(rows[-1]) + 1) if rows.size else (0, 0)

    # -- timeline, failures, generator -------------------------------------------------

    def timeline(self) -> tuple[IntervalPoint, ...]:
        """One point per interval of any key (flows' percentiles included)."""
        self.check()  # every percentile filled in
        entries = self.entries
        indices = [e.intervals.index for e in entries]
        every = np.unique(np.concatenate(indices)) if indices else np.zeros(0, np.int64)
        requests = np.zeros(every.size, dtype=np.int64)
        failures = np.zeros(every.size, dtype=np.int64)
        labels = tuple(TIMELINE_PERCENTILES)
        values_ms = np.zeros((len(entries), every.size, len(labels)))
        present = np.zeros((len(entries), every.size), dtype=bool)
        for i, entry in enumerate(entries):
            series = entry.intervals
            at = np.searchsorted(every, series.index)
            if not entry.is_flow:
                np.add.at(requests, at, series.count)
                np.add.at(failures, at, series.failures)
            present[i, at] = series.count > 0
            values_ms[i, at] = series.percentiles_ns / NS_PER_MS
        starts = every * self.interval_s
        users = self._users_during_each(starts, starts + self.interval_s)
        table = PercentileTable(tuple(e.key for e in entries), labels, values_ms, present)
        origin = self.test_start_epoch
        shifted = starts - origin if origin is not None else starts
        return tuple(
            IntervalPoint(
                start_s=start_s,
                duration_s=self.interval_s,
                users=n_users,
                requests=n_requests,
                failures=n_failures,
                percentiles_ms=table.point(column),
            )
            for column, (start_s, n_users, n_requests, n_failures) in enumerate(
                zip(
                    shifted.tolist(),
                    users.tolist(),
                    requests.tolist(),
                    failures.tolist(),
                    strict=True,
                )
            )
        )

    @cached_property
    def _users_columns(self) -> tuple[np.ndarray, np.ndarray]:
        epochs = np.array([s.epoch for s in self.users], dtype=np.float64)
        users = np.array([s.users for s in self.users], dtype=np.int64)
        return epochs, users

    def users_during(self, start_epoch: float, end_epoch: float) -> int:
        """The most users running at any sampled moment of ``[start_epoch, end_epoch)``."""
        return int(self._users_during_each(np.array([start_epoch]), np.array([end_epoch]))[0])

    def users_at(self, epoch: float) -> int:
        """The user count last sampled at or before ``epoch`` (0 before the first sample)."""
        epochs, users = self._users_columns
        i = int(np.searchsorted(epochs, epoch, side="right"))
        return int(users[i - 1]) if i else 0

    def _users_during_each(self, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """`users_during` of every ``[starts[i], ends[i])``, by binary search (no scan)."""
        epochs, users = self._users_columns
        if not users.size:
            return np.zeros(starts.size, dtype=np.int64)
        last = np.searchsorted(epochs, starts, side="right")
        out = np.where(last > 0, users[np.maximum(last - 1, 0)], 0)
        first = np.searchsorted(epochs, starts, side="left")
        stop = np.searchsorted(epochs, ends, side="left")
        inside = np.flatnonzero(stop > first)
        if inside.size:
            # One reduceat over (first, stop) pairs: each even segment is one window's samples.
            bounds = np.stack((first[inside], stop[inside]), axis=1).ravel()
            peaks = np.maximum.reduceat(np.append(users, 0), bounds)[::2]
            out[inside] = np.maximum(out[inside], peaks)
        return out

    def failures(self) -> tuple[FailureRecord, ...]:
        origin = self.test_start_epoch

        def since_start(epoch: Any) -> float | None:
            if epoch is None or origin is None:
                return None
            return float(epoch) - origin

        return tuple(
            FailureRecord(
                request_key=request_key(str(row["type"]), str(row["name"])),
                message=str(row["message"]),
                count=int(row["count"]),
                first_seen_s=since_start(row.get("first_epoch")),
                last_seen_s=since_start(row.get("last_epoch")),
            )
            for row in self.failure_rows
        )

    def generator_facts(
        self, start_epoch: float | None = None, end_epoch: float | None = None
    ) -> GeneratorFacts:
        """The generator's CPU samples taken inside the window (all when no window).

        A sample taken less than half an interval after the previous one of the same
        process (the extra sample at stop) is left out: psutil's CPU percent over a few
        milliseconds is noise, seen as high as 400 % for a single-threaded process.
        """
        last: dict[str, float] = {}
        kept = []
        for s in sorted(self.cpu, key=lambda s: s.epoch):
            previous = last.get(s.process)
            last[s.process] = s.epoch
            if previous is not None and s.epoch - previous < self.interval_s / 2:
                continue
            kept.append(s)
        cpu = tuple(
            s
            for s in kept
            if (start_epoch is None or s.epoch >= start_epoch)
            and (end_epoch is None or s.epoch <= end_epoch)
        )
        return GeneratorFacts(cpu=cpu, paced=self.paced, warnings=self.warnings)


def combine_stats(
    parts: Sequence[RequestStats],
    duration_s: float,
    intervals: tuple[Histogram, ...] = (),
    source: Literal["paybench", "locust"] = "paybench",
) -> RequestStats:
    """The aggregate of several request keys' statistics (histograms merged losslessly).

    ``intervals`` are the aggregate's interval histograms when the caller has them (they
    must be merged by interval, which ``parts`` alone cannot tell). ``source`` "locust":
    figures without histograms (live progress lines), averaged by count.
    """
    count = sum(p.count for p in parts)
    histograms = [p.histogram for p in parts if p.histogram is not None]
    histogram = merge_histograms(histograms) if histograms or source == "paybench" else None
    total_ms = sum((p.avg_ms or 0.0) * p.count for p in parts)
    mins = [p.min_ms for p in parts if p.min_ms is not None]
    maxs = [p.max_ms for p in parts if p.max_ms is not None]
    return RequestStats(
        request_type="",
        name=AGGREGATE_KEY,
        count=count,
        failures=sum(p.failures for p in parts),
        duration_s=duration_s,
        avg_ms=total_ms / count if count else None,
        min_ms=min(mins) if mins else None,
        max_ms=max(maxs) if maxs else None,
        cut_off=sum(p.cut_off for p in parts),
        histogram=histogram,
        interval_histograms=intervals,
        source=source,
    )


def _request_stats(
    request_type: str,
    name: str,
    count: int,
    failures: int,
    cut_off: int,
    sum_ns: int,
    min_ns: int | None,
    max_ns: int | None,
    histogram: Histogram,
    intervals: tuple[Histogram, ...],
    duration_s: float,
) -> RequestStats:
    return RequestStats(
        request_type=request_type,
        name=name,
        count=count,
        failures=failures,
        duration_s=duration_s,
        avg_ms=sum_ns / count / NS_PER_MS if count else None,
        min_ms=min_ns / NS_PER_MS if count and min_ns is not None else None,
        max_ms=max_ns / NS_PER_MS if count and max_ns is not None else None,
        cut_off=cut_off,
        histogram=histogram,
        interval_histograms=intervals,
        source="paybench",
    )


# -- windows: one pass over the intervals ------------------------------------------------


@dataclass(frozen=True)
class _Window:
    requests: tuple[RequestStats, ...]
    total: RequestStats | None  # None for the paced entries (no aggregate)


def pooled_groups(k: int, groups: int = MAX_BOOTSTRAP_BLOCKS) -> np.ndarray:
    """The group of each of ``k`` consecutive intervals when more than ``groups`` are pooled:
    sizes differing by one, the larger first (``numpy.array_split``), as the bootstrap of
    ``harness.core.stats`` pools them, so that pooling here changes none of its results."""
    rows = min(k, groups)
    size, extra = divmod(k, rows)
    return np.repeat(np.arange(rows), [size + 1] * extra + [size] * (rows - extra))


class _Dense:
    """Bucket counts of the layout, added to in place and read out as a Histogram.

    What a window's merges add into: one array per open histogram instead of a merge of
    sorted arrays per interval (a day's 43,200 intervals would re-sort each time).
    """

    def __init__(self) -> None:
        self.counts = np.zeros(bucket_layout().counts_len, dtype=np.int64)
        self.low = self.counts.size
        self.high = -1

    def add(self, index: np.ndarray, counts: np.ndarray) -> None:
        if index.size:
            np.add.at(self.counts, index, counts)
            self.low = min(self.low, int(index.min()))
            self.high = max(self.high, int(index.max()))

    def take(self) -> Histogram:
        """The histogram added so far; the counts start again from zero."""
        if self.high < self.low:
            return Histogram()
        part = self.counts[self.low : self.high + 1]
        used = np.flatnonzero(part)
        h = Histogram._of(used + self.low, part[used].copy())
        part[used] = 0
        self.low, self.high = self.counts.size, -1
        return h


class _KeyWindow:
    """One key over the rows ``[first, last)`` of a window, fed a chunk of rows at a time
    in interval order: the window's histogram and its interval histograms (pooled above
    ``MAX_BOOTSTRAP_BLOCKS`` non-empty intervals, one group open at a time)."""

    def __init__(self, entry: EntryData, first: int, last: int, whole_run: bool) -> None:
        self.entry = entry
        self.first, self.last = first, last
        self._chunks = entry.intervals.chunks(first, last)
        self._pending: tuple[int, HistogramRows] | None = None
        self.position = first  # the next row to read
        counts = entry.intervals.count[first:last]
        non_empty = np.flatnonzero(counts)
        self.pooled = non_empty.size > MAX_BOOTSTRAP_BLOCKS
        # Pooled: where each group ends (a row number of the series); the empty rows
        # between two groups hold nothing, whichever group reads them.
        self.group_ends: list[int] = []
        if self.pooled:
            group = pooled_groups(int(non_empty.size))
            last_of_group = np.flatnonzero(np.diff(group, append=group[-1] + 1))
            self.group_ends = (first + non_empty[last_of_group] + 1).tolist()
        self.group = 0  # the open group
        self.total = None if whole_run else _Dense()
        self.open = _Dense()
        self.intervals: list[Histogram] = []

    def read_to(self, row: int) -> Iterator[tuple[int, HistogramRows]]:
        """The rows from `position` up to ``row`` (excluded), decoded: pieces of the chunks
        the series is decoded in (each chunk once, however many segments it spans)."""
        while self.position < row:
            if self._pending is None:
                self._pending = next(self._chunks)
            start, rows = self._pending
            end = min(start + rows.rows, row)
            piece = rows.slice(self.position - start, end - start)
            yield self.position, piece
            self.add(self.position, piece)
            self.position = end
            if end == start + rows.rows:
                self._pending = None

    def add(self, start: int, rows: HistogramRows) -> None:
        """The decoded rows ``start`` .. ``start + rows.rows - 1`` of the series."""
        if self.total is not None:
            self.total.add(rows.index, rows.counts)
        if not self.pooled:
            self.intervals.extend(rows.histogram(r) for r in range(rows.rows))
            return
        ends = self.group_ends
        row, end = start, start + rows.rows
        while row < end and self.group < len(ends):
            upto = min(end, ends[self.group])
            lo, hi = int(rows.offsets[row - start]), int(rows.offsets[upto - start])
            self.open.add(rows.index[lo:hi], rows.counts[lo:hi])
            if upto == ends[self.group]:
                self.intervals.append(self.open.take())
                self.group += 1
            row = upto

    def stats(self, duration_s: float) -> RequestStats:
        entry, series = self.entry, self.entry.intervals
        a, b = self.first, self.last
        if self.total is None:
            return _request_stats(
                entry.request_type,
                entry.name,
                entry.count,
                entry.failures,
                entry.cut_off,
                entry.sum_ns,
                entry.min_ns,
                entry.max_ns,
                entry.histogram,
                tuple(self.intervals),
                duration_s,
            )
        lows, highs = series.min_ns[a:b], series.max_ns[a:b]
        return _request_stats(
            entry.request_type,
            entry.name,
            int(series.count[a:b].sum()),
            int(series.failures[a:b].sum()),
            int(series.cut_off[a:b].sum()),
            int(series.sum_ns[a:b].sum()),
            int(lows[lows >= 0].min()) if (lows >= 0).any() else None,
            int(highs[highs >= 0].max()) if (highs >= 0).any() else None,
            self.total.take(),
            tuple(self.intervals),
            duration_s,
        )


class _AggregateWindow:
    """The aggregate's interval histograms of a window: one per interval any request key
    has in it (an interval of cut-offs only is empty), or, above ``MAX_BOOTSTRAP_BLOCKS``
    non-empty intervals, that many groups of consecutive non-empty intervals.

    ``segments`` are the ranges of interval indices the window is read in: one per pooled
    group (each key's rows of a group are read, then the group is complete), else one.
    """

    def __init__(self, parts: Sequence[tuple[IntervalSeries, int, int]]) -> None:
        every = [s.index[a:b] for s, a, b in parts]
        used = [s.index[a:b][s.count[a:b] > 0] for s, a, b in parts]
        self.every = np.unique(np.concatenate(every)) if every else np.zeros(0, np.int64)
        non_empty = np.unique(np.concatenate(used)) if used else np.zeros(0, np.int64)
        self.pooled = non_empty.size > MAX_BOOTSTRAP_BLOCKS
        self.histograms: list[Histogram] = []
        if self.pooled:
            group = pooled_groups(int(non_empty.size))
            starts = non_empty[np.flatnonzero(np.diff(group, prepend=-1))]
            # Intervals before the first non-empty one hold nothing: they open the first group.
            bounds = [-(2**62), *starts[1:].tolist(), 2**62]
            self.segments = list(itertools.pairwise(bounds))
            self.dense = _Dense()
        else:
            self.segments = [(-(2**62), 2**62)]
            self.pieces: list[list[Histogram]] = [[] for _ in range(self.every.size)]

    def add(self, index: np.ndarray, rows: HistogramRows) -> None:
        """One key's decoded rows of the intervals ``index``."""
        if self.pooled:
            self.dense.add(rows.index, rows.counts)
            return
        at = np.searchsorted(self.every, index)
        for r in np.flatnonzero(np.diff(rows.offsets)).tolist():
            self.pieces[int(at[r])].append(rows.histogram(r))

    def end_segment(self) -> None:
        if self.pooled:
            self.histograms.append(self.dense.take())

    def result(self) -> tuple[Histogram, ...]:
        if self.pooled:
            return tuple(self.histograms)
        return tuple(merge_histograms(p) for p in self.pieces)


def _window_stats(
    rec: Recording, start_epoch: float | None, end_epoch: float | None, paced: bool
) -> _Window:
    """Every key of a window, each row decoded once, in interval order (one pooled group of
    the aggregate at a time: a few dense arrays live, never the window)."""
    entries = rec.paced.entries if paced else rec.entries
    whole_run = start_epoch is None and end_epoch is None
    duration_s = rec._window_duration(start_epoch, end_epoch)
    rows = [rec._rows_in_window(e.intervals, start_epoch, end_epoch) for e in entries]
    keys = [_KeyWindow(e, a, b, whole_run) for e, (a, b) in zip(entries, rows, strict=True)]
    aggregate = None
    if not paced:
        aggregate = _AggregateWindow(
            [(e.intervals, a, b) for e, (a, b) in zip(entries, rows, strict=True) if not e.is_flow]
        )
    segments = aggregate.segments if aggregate is not None else [(-(2**62), 2**62)]
    for _low, high in segments:
        for key in keys:
            series = key.entry.intervals
            window = series.index[key.first : key.last]
            end = key.first + int(np.searchsorted(window, high, side="left"))
            for start, decoded in key.read_to(end):
                if aggregate is not None and not key.entry.is_flow:
                    aggregate.add(series.index[start : start + decoded.rows], decoded)
        if aggregate is not None:
            aggregate.end_segment()
    requests = tuple(k.stats(duration_s) for k in keys)
    if aggregate is None:
        return _Window(requests, None)
    parts = [s for s, e in zip(requests, entries, strict=True) if not e.is_flow]
    return _Window(requests, combine_stats(parts, duration_s, aggregate.result()))


# -- reading --------------------------------------------------------------------------------
#
# A recording may come from anywhere (a CI artefact): every field is checked for its type
# and for what the plugin could have written (counts that add up, min <= max, finite
# times, histograms that hold their counts), and a file that breaks any of it is refused
# with the file and the field named. Version 2 is read line by line; version 1 (one JSON
# document) whole, as it always was.

MAX_HISTOGRAM_PAYLOAD_BYTES = MAX_PAYLOAD_BYTES  # a histogram inflating to more: a zip bomb
# An interval line holds one histogram per key (a few kB each); the end line the failures.
MAX_LINE_BYTES = MAX_METADATA_BYTES
# A version-2 header line is a few hundred bytes: more, and the file is version 1.
_HEADER_PEEK_BYTES = 64 * 1024
# The columns of an interval row and of a whole-run row, in this order.
ROW_COLUMNS = ("key", "count", "failures", "cut_off", "sum_ns", "min_ns", "max_ns", "histogram")
TABLES = ("entries", "paced")  # a key's table: the requests, or the paced users' latencies


def load_recording(path: Path, *, lazy: bool = False) -> Recording:
    """Read a ``paybench.hdr.json``; FormatError (naming the file) when it cannot be used.

    Every interval histogram is decoded to check it (it holds its count) and for its
    percentiles. ``lazy``: each is checked when a window (or `Recording.check`) first
    decodes it instead, so that judging decodes every interval once; FormatError then
    comes from the first read that meets a damaged one (`Recording.check` reads all).
    """
    path = Path(path)
    if not path.exists():
        raise FormatError(f"{path}: cannot read the recording: no such file")
    with open_bounded(path, MAX_RECORDING_BYTES) as f:
        first = f.readline(_HEADER_PEEK_BYTES)
        head = _header_line(first, path)
        if head is not None:
            reader = _LinesReader(path, head)
            reader.read(f)
            return reader.recording(lazy=lazy)
    doc = parse_json(
        read_bytes(path, MAX_RECORDING_BYTES), str(path), "a readable paybench recording"
    )
    return parse_recording(doc, path, lazy=lazy)


def _header_line(first: bytes, path: Path) -> dict[str, Any] | None:
    """The header of a version-2 file (JSON lines); None for a version-1 document."""
    if not first.endswith(b"\n"):
        return None
    try:
        head = json.loads(first)
    except ValueError:
        return None  # a version-1 document written over several lines
    if not isinstance(head, dict) or head.get("format") != FORMAT:
        return None
    version = head.get("format_version")
    if version == 1 or not isinstance(version, int) or isinstance(version, bool):
        return None  # parse_recording says what is wrong with it
    _check_version(version, path)
    return head


def _check_version(version: int, path: Path) -> None:
    if version > FORMAT_VERSION:
        raise FormatError(
            f"{path}: format version {_brief(version)} is newer than this paybench understands "
            f"({FORMAT_VERSION}); upgrade paybench"
        )
    if version < 1:
        raise FormatError(f"{path}: format version {_brief(version)} is not a known version")


def parse_recording(doc: Any, path: Path, *, lazy: bool = False) -> Recording:
    """A version-1 recording (one JSON document) already parsed into ``doc``."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise FormatError(f'{path}: not a paybench recording (no "format": "{FORMAT}")')
    version = doc.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise FormatError(f"{path}: format_version must be an integer, got {show(version)}")
    _check_version(version, path)
    if version != 1:
        raise FormatError(
            f"{path}: format version {version} is one JSON object per line, not one document; "
            f"{DAMAGED}"
        )
    _check_layout(doc, path)
    return _parse_v1(doc, path, lazy)


def _check_layout(doc: Mapping[str, Any], path: Path) -> None:
    if doc.get("unit") != UNIT or doc.get("significant_figures") != SIGNIFICANT_FIGURES:
        raise FormatError(
            f"{path}: histograms in unit {_brief(doc.get('unit'))} with "
            f"{_brief(doc.get('significant_figures'))} significant figures; expected {UNIT!r} "
            f"and {SIGNIFICANT_FIGURES}"
        )


def _brief(value: Any) -> str:
    """A scalar as Python writes it, anything else as `show` names it (a list, an object)."""
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return repr(value)[:40]
    return show(value)


def _interval_s(top: Obj) -> float:
    interval_s = top.number("interval_s", positive=True)
    if interval_s > _MAX_INTERVAL_S:
        top.where.at("interval_s").fail(f"{interval_s} s is longer than a day")
    return float(interval_s)


def _run_times(top: Obj) -> tuple[float | None, float | None]:
    start = top.number("test_start_epoch", None)
    stop = top.number("test_stop_epoch", None)
    if start is not None and stop is not None and stop < start:
        top.where.at("test_stop_epoch").fail(f"{stop} is before test_start_epoch {start}")
    return start, stop


def _cpu_sample(c: Obj) -> CpuSample:
    return CpuSample(
        c.number("epoch"),
        c.text("process"),
        c.number("cpu_pct"),
        c.number("runnable_pct", None),
    )


def _users_sample(u: Obj) -> UsersSample:
    return UsersSample(u.number("epoch"), u.whole("users", high=_MAX_USERS))


def _users_fast(u: Any) -> UsersSample | None:
    """`_users_sample` of a sample as the plugin writes it; None for anything else."""
    if type(u) is not dict:
        return None
    epoch, users = u.get("epoch"), u.get("users")
    if type(epoch) is float and 0.0 <= epoch < math.inf and type(users) is int:
        if 0 <= users <= _MAX_USERS:
            return UsersSample(epoch, users)
    return None


def _cpu_fast(c: Any) -> CpuSample | None:
    """`_cpu_sample` of a sample as the plugin writes it; None for anything else."""
    if type(c) is not dict:
        return None
    epoch, process, pct = c.get("epoch"), c.get("process"), c.get("cpu_pct")
    runnable = c.get("runnable_pct")
    if not (type(epoch) is float and type(pct) is float and type(process) is str):
        return None
    if not (0.0 <= epoch < math.inf and 0.0 <= pct < math.inf and process.isascii()):
        return None
    if len(process) > MAX_TEXT_CHARS:
        return None
    if runnable is not None and not (type(runnable) is float and 0.0 <= runnable < math.inf):
        return None
    return CpuSample(epoch, process, pct, runnable)


def _samples(
    doc: Mapping[str, Any],
    key: str,
    where: Field,
    fast: Callable[[Any], Any],
    checked: Callable[[Obj], Any],
) -> list[Any]:
    """A line's list of samples: each read by ``fast``, or checked field by field."""
    items = doc.get(key)
    if type(items) is list:
        out = [fast(item) for item in items]
        if None not in out:
            return out
    return [checked(item) for item in Obj(doc, where).objs(key)]


def _paced_classes(paced: Obj) -> tuple[PacedUserClass, ...]:
    return tuple(
        PacedUserClass(
            user_class=u.text("user_class"),
            pacing_s=u.number("pacing_s", positive=True),
            users=u.whole("users", high=_MAX_USERS),
            intended_iterations=u.number("intended_iterations"),
            achieved_iterations=u.whole("achieved_iterations"),
        )
        for u in paced.objs("user_classes")
    )


def _in_epoch_order(users: Sequence[UsersSample]) -> tuple[UsersSample, ...]:
    # Stable: of samples taken at the same moment the later one stays the later one.
    return tuple(sorted(users, key=lambda s: s.epoch))


def _parse_v1(doc: Mapping[str, Any], path: Path, lazy: bool = False) -> Recording:
    top = Obj(doc, Field(str(path)))
    interval_s = _interval_s(top)
    start, stop = _run_times(top)
    generator = top.obj("generator", optional=True)
    paced = top.obj("paced", optional=True)
    entries = _parse_entries(top, "entries", optional=False)
    paced_entries = _parse_entries(paced, "entries")
    built = _finish_entries([*entries, *paced_entries], interval_s, start, stop, lazy)
    return Recording(
        path=path,
        interval_s=interval_s,
        test_start_epoch=start,
        spawning_complete_epoch=top.number("spawning_complete_epoch", None),
        test_stop_epoch=stop,
        entries=built[: len(entries)],
        users=_in_epoch_order([_users_sample(u) for u in top.objs("users")]),
        failure_rows=tuple(_parse_failure(f) for f in top.objs("failures")),
        cpu=tuple(_cpu_sample(c) for c in generator.objs("cpu")),
        paced=PacedInfo(user_classes=_paced_classes(paced), entries=built[len(entries) :]),
        warnings=top.texts("warnings"),
        workers=top.texts("workers"),
        spawning_complete_epochs=top.numbers("spawning_complete_epochs"),
    )


# The plugin's interval is seconds long; a day is past any setting that makes sense.
_MAX_INTERVAL_S = 86_400.0
# Requests still ending after the stop, and workers' clocks, place intervals a little
# outside [test_start_epoch, test_stop_epoch]; an hour outside is another run's, or damage.
_INTERVAL_SLACK_S = 3_600.0
# More users than any load generator runs: a bigger number is damage, not a load test.
_MAX_USERS = 10**9
# Interval indices are floor(epoch / interval_s): this keeps index * interval_s exact.
_MAX_INDEX = 2**53


def _parse_failure(row: Obj) -> dict[str, Any]:
    return {
        "type": row.text("type"),
        "name": row.text("name"),
        "message": row.text("message"),
        "count": row.whole("count"),
        "first_epoch": row.number("first_epoch", None),
        "last_epoch": row.number("last_epoch", None),
    }


def _counts(raw: Obj) -> tuple[int, int, int, int, int | None, int | None]:
    """count, failures, cut_off, sum_ns, min_ns, max_ns of an entry or an interval."""
    count = raw.whole("count")
    failures = raw.whole("failures")
    if failures > count:
        raw.where.at("failures").fail(f"{failures} is more than count {count}")
    cut_off = raw.whole("cut_off", 0)
    sum_ns = raw.whole("sum_ns", 0)
    min_ns = raw.whole("min_ns", None)
    max_ns = raw.whole("max_ns", None)
    if min_ns is not None and max_ns is not None and min_ns > max_ns:
        raw.where.at("min_ns").fail(f"{min_ns} is more than max_ns {max_ns}")
    return count, failures, cut_off, sum_ns, min_ns, max_ns


def _inflated(text: str, where: Field) -> bytes:
    """The varints of one base64 V2 histogram of our layout, or the field's error."""
    try:
        raw = binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError):
        where.fail("not an HdrHistogram V2 encoding (not base64)")
    try:
        return inflate_encoding(raw)
    except HistogramDecodeError as e:
        where.fail(e.reason)


def _checked_encoding(encoded: str, where: Field) -> None:
    """Refuse a histogram that is not our layout, or that would inflate without bound."""
    _inflated(encoded, where)


class _Totals:
    """An entry's whole-run figures and its histogram's encoding, as the file holds them
    (the histogram is decoded once its intervals are known to add up to the figures)."""

    def __init__(
        self,
        figures: tuple[int, int, int, int, int | None, int | None],
        encoded: str,
        where: Field,
    ) -> None:
        self.count, self.failures, self.cut_off, self.sum_ns, self.min_ns, self.max_ns = figures
        self.encoded = encoded
        self.where = where


class _SeriesBuilder:
    """One key's intervals as they are read: columns of int64 and the inflated histograms.

    ``where`` turns a row's two origin numbers (v1: its position in the entry's intervals;
    v2: its line and its position in that line) into the field an error names.
    """

    def __init__(
        self,
        request_type: str,
        name: str,
        where: Callable[[int, int], Field],
        where_index: Callable[[int, int], Field],
    ) -> None:
        self.request_type = request_type
        self.name = name
        self.where = where
        self.where_index = where_index
        # Row after row: index, count, failures, cut_off, sum_ns, min_ns, max_ns (-1: none)
        # and the two origin numbers; one call per row (a soak has hundreds of thousands).
        self.rows = array("q")
        self.bodies = bytearray()
        self.offsets = array("q", [0])
        self.totals: _Totals | None = None
        self.sorted_origin: list[np.ndarray] = []  # the origins in interval order

    @property
    def key(self) -> str:
        return request_key(self.request_type, self.name)

    def add(self, index: int, values: Sequence[int], body: bytes, a: int, b: int) -> None:
        """One row: ``values`` are (anything, count, failures, cut_off, sum_ns, min_ns,
        max_ns), as `_fast_row` gives them."""
        _key, count, failures, cut_off, sum_ns, low, high = values
        self.rows.extend((index, count, failures, cut_off, sum_ns, low, high, a, b))
        self.bodies += body
        self.offsets.append(len(self.bodies))

    def series(self, lazy: bool = False) -> IntervalSeries:
        """The rows in interval order (rows of the same interval added), each checked, or,
        ``lazy``, to be checked as they are first decoded (`IntervalSeries.check`)."""
        table = np.frombuffer(self.rows, dtype=np.int64).reshape(-1, 9) if self.rows else None
        if table is None:
            table = np.zeros((0, 9), dtype=np.int64)
        cols = [table[:, j].copy() for j in range(7)]
        origin = [table[:, 7].copy(), table[:, 8].copy()]
        self.rows = array("q")
        offsets = np.frombuffer(self.offsets, dtype=np.int64)
        bodies: bytes | bytearray = self.bodies  # kept as read: no copy of a soak's MB
        self.bodies = bytearray()
        index = cols[0]
        if index.size and not bool(np.all(index[1:] >= index[:-1])):
            order = np.argsort(index, kind="stable")
            cols = [c[order] for c in cols]
            origin = [o[order] for o in origin]
            pieces = [bodies[offsets[i] : offsets[i + 1]] for i in order.tolist()]
            bodies = b"".join(pieces)
            offsets = np.concatenate(([0], np.cumsum([len(p) for p in pieces]))).astype(np.int64)
            index = cols[0]
        percentiles = np.zeros((index.size, len(TIMELINE_PERCENTILES)), dtype=np.int64)
        check = _RowCheck(cols[1], lambda row: self._where(origin, row))
        series = _series_of(cols, bodies, offsets, percentiles, check)
        repeats = bool(index.size) and bool(np.any(index[1:] == index[:-1]))
        if not lazy or repeats:
            # Rows of one interval are checked one by one before they are added up.
            series.check()
        if repeats:
            cols, origin, bodies, offsets, percentiles = self._merged_repeats(
                cols, origin, bodies, offsets
            )
            series = _series_of(cols, bodies, offsets, percentiles, None)
        self.sorted_origin = origin
        return series

    def _where(self, origin: list[np.ndarray], row: int) -> Field:
        return self.where(int(origin[0][row]), int(origin[1][row]))

    def _merged_repeats(
        self,
        cols: list[np.ndarray],
        origin: list[np.ndarray],
        bodies: bytes | bytearray,
        offsets: np.ndarray,
    ) -> tuple[list[np.ndarray], list[np.ndarray], bytes, np.ndarray, np.ndarray]:
        """Rows of the same interval (a worker's data that came after the interval was
        written) added into one, as the master would have added them."""
        index = cols[0]
        starts = np.flatnonzero(np.diff(index, prepend=index[0] - 1))
        ends = np.append(starts[1:], index.size)
        merged_cols: list[list[int]] = [[] for _ in cols]
        pieces: list[bytes] = []
        histograms: list[Histogram] = []
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
            part = [c[a:b] for c in cols]
            lows, highs = part[5][part[5] >= 0], part[6][part[6] >= 0]
            merged_cols[0].append(int(part[0][0]))
            for j in (1, 2, 3, 4):
                merged_cols[j].append(int(part[j].sum()))
            merged_cols[5].append(int(lows.min()) if lows.size else -1)
            merged_cols[6].append(int(highs.max()) if highs.size else -1)
            if b - a == 1:
                pieces.append(bytes(bodies[offsets[a] : offsets[a + 1]]))
                histograms.append(decode_bodies(bodies, offsets[a : a + 2]).histogram(0))
            else:
                rows = decode_bodies(bodies, offsets[a : b + 1])
                h = rows.merged()
                histograms.append(h)
                pieces.append(varint_bodies(rows_of([h])).data)
        new_bodies = b"".join(pieces)
        new_offsets = np.concatenate(([0], np.cumsum([len(p) for p in pieces]))).astype(np.int64)
        percentiles = rows_of(histograms).percentiles_ns(tuple(TIMELINE_PERCENTILES.values()))
        new_cols = [np.array(c, dtype=np.int64) for c in merged_cols]
        new_origin = [o[starts] for o in origin]
        return new_cols, new_origin, new_bodies, new_offsets, percentiles


def _series_of(
    cols: Sequence[np.ndarray],
    bodies: bytes | bytearray,
    offsets: np.ndarray,
    percentiles: np.ndarray,
    pending: _RowCheck | None,
) -> IntervalSeries:
    index, count, failures, cut_off, sum_ns, min_ns, max_ns = cols
    return IntervalSeries(
        index=index,
        count=count,
        failures=failures,
        cut_off=cut_off,
        sum_ns=sum_ns,
        min_ns=min_ns,
        max_ns=max_ns,
        bodies=bodies,
        offsets=offsets,
        percentiles_ns=percentiles,
        pending=pending,
    )


def _finish_entries(
    builders: Sequence[_SeriesBuilder],
    interval_s: float,
    start: float | None,
    stop: float | None,
    lazy: bool = False,
) -> tuple[EntryData, ...]:
    """Every key's series, checked: in the run, adding up to the whole-run figures.

    ``lazy``: the interval histograms are checked when first decoded; a file refused here
    is refused with the error an eager read gives first (the histograms read before it
    are checked first)."""
    out: list[EntryData] = []
    for builder in builders:
        series = builder.series(lazy=lazy)
        try:
            out.append(_finished_entry(builder, series, interval_s, start, stop))
        except FormatError:
            for earlier in (*(e.intervals for e in out), series):
                earlier.check()
            raise
    return tuple(out)


def _finished_entry(
    builder: _SeriesBuilder,
    series: IntervalSeries,
    interval_s: float,
    start: float | None,
    stop: float | None,
) -> EntryData:
    totals = builder.totals
    assert totals is not None
    if start is not None and stop is not None and len(series):
        begins = series.index * interval_s
        outside = np.flatnonzero(
            (begins < start - _INTERVAL_SLACK_S) | (begins > stop + _INTERVAL_SLACK_S)
        )
        if outside.size:
            r = int(outside[0])
            origin = builder.sorted_origin
            builder.where_index(int(origin[0][r]), int(origin[1][r])).fail(
                f"interval {int(series.index[r])} begins at {float(begins[r]):.6g} s, "
                f"outside the run ({start:.6g} to {stop:.6g} s since 1970)"
            )
    if len(series):
        # The plugin adds every request to its interval and to the whole run alike.
        for label, whole, column in (
            ("count", totals.count, series.count),
            ("failures", totals.failures, series.failures),
            ("cut_off", totals.cut_off, series.cut_off),
            ("sum_ns", totals.sum_ns, series.sum_ns),
        ):
            part = sum(column.tolist())  # Python ints: no overflow
            if whole != part:
                totals.where.at(label).fail(f"{whole} is not the sum of its intervals' ({part})")
    return EntryData(
        request_type=builder.request_type,
        name=builder.name,
        count=totals.count,
        failures=totals.failures,
        cut_off=totals.cut_off,
        sum_ns=totals.sum_ns,
        min_ns=totals.min_ns,
        max_ns=totals.max_ns,
        histogram=_whole_histogram(totals.encoded, totals.count, totals.where.at("histogram")),
        intervals=series,
    )


def _whole_histogram(text: str, count: int, where: Field) -> Histogram:
    body = _inflated(text, where)
    try:
        h = decode_bodies(body, np.array([0, len(body)], dtype=np.int64)).histogram(0)
    except HistogramDecodeError as e:
        where.fail(e.reason)
    if h.count != count:
        where.fail(f"holds {h.count} latencies where count is {count}")
    return h


def _parse_entries(parent: Obj, key: str, optional: bool = True) -> list[_SeriesBuilder]:
    entries = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(parent.objs(key, optional=optional)):
        entry = _parse_entry(raw)
        if entry.key in seen:
            raw.where.fail(
                f"a second entry for {show(entry.key)} (the first: {key}[{seen[entry.key]}])"
            )
        seen[entry.key] = i
        entries.append(entry)
    return entries


def _parse_entry(entry: Obj) -> _SeriesBuilder:
    """A version-1 entry: its figures, its histogram and its intervals, each checked."""
    request_type = entry.text("type")
    name = entry.text("name")
    figures = _counts(entry)
    intervals_at = entry.where.at("intervals")
    builder = _SeriesBuilder(
        request_type,
        name,
        where=lambda a, _b: intervals_at.at(a),
        where_index=lambda a, _b: intervals_at.at(a).at("index"),
    )
    indices: set[int] = set()
    for j, item in enumerate(entry.objs("intervals")):
        index = item.whole("index", high=_MAX_INDEX)
        if index in indices:
            item.where.at("index").fail(f"interval {index} appears twice")
        indices.add(index)
        count, failures, cut_off, sum_ns, low, high = _counts(item)
        text = item.text("histogram", max_chars=MAX_RECORDING_BYTES)
        body = _inflated(text, item.where.at("histogram"))
        values = (index, count, failures, cut_off, sum_ns, _or_none(low), _or_none(high))
        builder.add(index, values, body, j, 0)
    text = entry.text("histogram", max_chars=MAX_RECORDING_BYTES)
    builder.totals = _Totals(figures, text, entry.where)
    return builder


def _or_none(value: int | None) -> int:
    return -1 if value is None else value


class _LinesReader:
    """A version-2 recording, line by line: key declarations, intervals, samples, the end."""

    def __init__(self, path: Path, head: Mapping[str, Any]) -> None:
        self.path = path
        self.source = str(path)
        _check_layout(head, path)
        top = Obj(head, Field(f"{self.source}: line 1"))
        self.interval_s = _interval_s(top)
        columns = head.get("columns", list(ROW_COLUMNS))
        if columns != list(ROW_COLUMNS):
            top.where.at("columns").fail(f"not the columns of version 2 ({', '.join(ROW_COLUMNS)})")
        self.builders: list[_SeriesBuilder] = []
        self.tables: list[str] = []
        self.declared: dict[tuple[str, str, str], int] = {}
        self.users: list[UsersSample] = []
        self.cpu: list[CpuSample] = []
        self.end: Obj | None = None
        self.line = 1
        self.size = 0  # bytes read after the header line

    def read(self, f: BinaryIO) -> None:
        while True:
            raw = f.readline(MAX_LINE_BYTES + 1)
            if not raw:
                break
            self.line += 1
            where = Field(f"{self.source}: line {self.line}")
            self.size += len(raw)
            if self.size > MAX_RECORDING_BYTES:
                Field(self.source).fail(
                    f"larger than {MAX_RECORDING_BYTES // MIB} MiB, more than paybench reads "
                    "from a run folder"
                )
            if len(raw) > MAX_LINE_BYTES:
                where.fail(f"longer than {MAX_LINE_BYTES // MIB} MiB")
            if self.end is not None:
                where.fail("a line after the end line")
            doc = parse_json(raw, where.source, "a line of a paybench recording")
            if not isinstance(doc, dict):
                where.fail(f"expected an object, got {show(doc)}")
            if "interval" in doc:
                self._interval(doc, where)
            elif "key" in doc:
                self._key(Obj(doc, where))
            elif "users" in doc:
                self.users.extend(_samples(doc, "users", where, _users_fast, _users_sample))
            elif "cpu" in doc:
                self.cpu.extend(_samples(doc, "cpu", where, _cpu_fast, _cpu_sample))
            elif "end" in doc:
                self.end = Obj(doc, where).obj("end")
            else:
                where.fail(
                    "not a line of a paybench recording (no interval, key, users, cpu or end)"
                )
        if self.end is None:
            Field(self.source).fail("cut short: no end line (the recording was not finished)")

    def _key(self, line: Obj) -> None:
        number = line.whole("key", high=MAX_INT)
        if number != len(self.builders):
            line.where.at("key").fail(
                f"key {number} declared where key {len(self.builders)} comes next"
            )
        table = line.text("table")
        if table not in TABLES:
            line.where.at("table").fail(f"{show(table)} is not one of {', '.join(TABLES)}")
        request_type = line.text("type")
        name = line.text("name")
        first = self.declared.setdefault((table, request_type, name), number)
        if first != number:
            line.where.fail(
                f"a second key for {show(request_key(request_type, name))} (key {first})"
            )
        source = self.source
        self.builders.append(
            _SeriesBuilder(
                request_type,
                name,
                where=lambda a, b: Field(f"{source}: line {a}", f"rows[{b}]"),
                where_index=lambda a, _b: Field(f"{source}: line {a}", "interval"),
            )
        )
        self.tables.append(table)

    def _interval(self, doc: Mapping[str, Any], where: Field) -> None:
        line = Obj(doc, where)
        index = line.whole("interval", high=_MAX_INDEX)
        rows_at = where.at("rows")
        rows = rows_at.sequence(doc.get("rows"))
        keys = len(self.builders)
        seen: set[int] = set()
        builders = self.builders
        number = self.line
        # A day-long soak has half a million rows: `_fast_row` and the builder's `add`,
        # inlined. A field is named (a Field made) only when something is wrong with it.
        for j, row in enumerate(rows):
            values = _fast_row(row, keys)
            if values is None:
                values = _checked_row(row, rows_at.at(j), keys)
            key = values[0]
            if key in seen:
                rows_at.at(j).at("key").fail(f"key {key} appears twice in this interval")
            seen.add(key)
            try:
                body = inflate_encoding(binascii.a2b_base64(row[7], strict_mode=True))
            except (binascii.Error, ValueError):
                body = _inflated(row[7], rows_at.at(j).at("histogram"))
            builder = builders[key]
            builder.rows.extend((index, *values[1:], number, j))
            builder.bodies += body
            builder.offsets.append(len(builder.bodies))

    def recording(self, lazy: bool = False) -> Recording:
        end = self.end
        assert end is not None
        start, stop = _run_times(end)
        whole_at = end.where.at("whole")
        whole_rows = whole_at.sequence(end.value.get("whole", []))
        for j, row in enumerate(whole_rows):
            values = _fast_row(row, len(self.builders))
            if values is None:
                values = _checked_row(row, whole_at.at(j), len(self.builders))
            builder = self.builders[values[0]]
            if builder.totals is not None:
                whole_at.at(j).at("key").fail(f"a second whole-run row for key {values[0]}")
            low, high = values[5], values[6]
            figures = (*values[1:5], None if low < 0 else low, None if high < 0 else high)
            builder.totals = _Totals(figures, row[7], whole_at.at(j))
        for number, builder in enumerate(self.builders):
            if builder.totals is None:
                whole_at.fail(f"no whole-run row for key {number} ({show(builder.key)})")
        built = _finish_entries(self.builders, self.interval_s, start, stop, lazy)
        entries = tuple(e for e, t in zip(built, self.tables, strict=True) if t == "entries")
        paced_entries = tuple(e for e, t in zip(built, self.tables, strict=True) if t == "paced")
        paced = end.obj("paced", optional=True)
        return Recording(
            path=self.path,
            interval_s=self.interval_s,
            test_start_epoch=start,
            spawning_complete_epoch=end.number("spawning_complete_epoch", None),
            test_stop_epoch=stop,
            entries=tuple(sorted(entries, key=lambda e: (e.request_type, e.name))),
            users=_in_epoch_order(self.users),
            failure_rows=tuple(_parse_failure(f) for f in end.objs("failures")),
            cpu=tuple(sorted(self.cpu, key=lambda c: c.epoch)),
            paced=PacedInfo(
                user_classes=_paced_classes(paced),
                entries=tuple(sorted(paced_entries, key=lambda e: (e.request_type, e.name))),
            ),
            warnings=end.texts("warnings"),
            workers=end.texts("workers"),
            spawning_complete_epochs=end.numbers("spawning_complete_epochs"),
        )


def _fast_row(row: Any, keys: int) -> tuple[int, int, int, int, int, int, int] | None:
    """An interval or whole-run row that is as the plugin writes it, else None.

    The common case in a few comparisons (a day-long soak has hundreds of thousands of
    rows); anything unusual goes to `_checked_row`, which names what is wrong.
    """
    if type(row) is not list or len(row) != 8:
        return None
    key, count, failures, cut_off, sum_ns, low, high, text = row
    if not (
        type(key) is int
        and type(count) is int
        and type(failures) is int
        and type(cut_off) is int
        and type(sum_ns) is int
        and type(text) is str
        and 0 <= key < keys
        and 0 <= failures <= count <= MAX_INT
        and 0 <= cut_off <= MAX_INT
        and 0 <= sum_ns <= MAX_INT
        and len(text) <= MAX_RECORDING_BYTES
    ):
        return None
    if low is None:
        low = -1
    elif type(low) is not int or not 0 <= low <= MAX_INT:
        return None
    if high is None:
        high = -1
    elif type(high) is not int or not 0 <= high <= MAX_INT:
        return None
    if low >= 0 and high >= 0 and low > high:
        return None
    return key, count, failures, cut_off, sum_ns, low, high


def _checked_row(row: Any, where: Field, keys: int) -> tuple[int, int, int, int, int, int, int]:
    """`_fast_row`'s slow twin: the row checked column by column, or its error."""
    items = where.sequence(row)
    if len(items) != len(ROW_COLUMNS):
        where.fail(
            f"{len(items)} columns where a row has {len(ROW_COLUMNS)}: {', '.join(ROW_COLUMNS)}"
        )
    figures = Obj(dict(zip(ROW_COLUMNS, items, strict=True)), where)
    key = figures.whole("key")
    if key >= keys:
        where.at("key").fail(f"key {key} is not declared (keys 0 to {keys - 1} are)")
    count, failures, cut_off, sum_ns, low, high = _counts(figures)
    figures.text("histogram", max_chars=MAX_RECORDING_BYTES)
    return key, count, failures, cut_off, sum_ns, _or_none(low), _or_none(high)


# -- judging the generator -----------------------------------------------------------------


def generator_unreliable_reasons(
    source: Recording | GeneratorFacts,
    start_epoch: float | None = None,
    end_epoch: float | None = None,
    cpu_threshold_pct: float = CPU_SATURATED_PCT,
    shortfall_threshold_pct: float = PACED_SHORTFALL_PCT,
    runnable_threshold_pct: float = RUNNABLE_SATURATED_PCT,
) -> tuple[str, ...]:
    """Why the measurement cannot be trusted, or ``()`` when it can.

    * a generator process above ``cpu_threshold_pct`` CPU in an interval of the window
      (Locust's own warning threshold): latencies then include the generator's own queueing;
    * a generator process runnable (on a CPU or on the run queue) at least
      ``runnable_threshold_pct`` % of an interval while its CPU stayed at or below
      ``cpu_threshold_pct``: it wanted a whole core and other processes took part of it,
      which delays its event loop just the same (samples without ``runnable_pct`` are
      judged on their CPU alone);
    * paced users (constant_pacing / constant_throughput) that achieved less than
      ``100 - shortfall_threshold_pct`` % of their intended iterations: the load was not
      the load asked for (coordinated omission);
    * workers whose final data never reached the master (counts incomplete).
    """
    facts = (
        source.generator_facts(start_epoch, end_epoch) if isinstance(source, Recording) else source
    )
    reasons = []
    # Per process, its busiest interval: by CPU when it got the core, else by demand.
    saturated: dict[str, CpuSample] = {}
    starved: dict[str, CpuSample] = {}
    for sample in facts.cpu:
        if sample.cpu_pct > cpu_threshold_pct:
            peak = saturated.get(sample.process)
            if peak is None or sample.cpu_pct > peak.cpu_pct:
                saturated[sample.process] = sample
        elif sample.runnable_pct is not None and sample.runnable_pct >= runnable_threshold_pct:
            peak = starved.get(sample.process)
            if peak is None or sample.runnable_pct > (peak.runnable_pct or 0.0):
                starved[sample.process] = sample
    for process in sorted(saturated.keys() | starved.keys()):
        if process in saturated:
            reasons.append(
                f"load generator process {process} was saturated (CPU "
                f"{saturated[process].cpu_pct:.0f} % > {cpu_threshold_pct:.0f} %): latencies "
                "include the generator's own queueing; use more --workers or fewer users"
            )
        else:
            sample = starved[process]
            reasons.append(
                f"load generator process {process} was saturated: it was runnable "
                f"{sample.runnable_pct:.0f} % of the time (>= {runnable_threshold_pct:.0f} %) "
                f"but got {sample.cpu_pct:.0f} % of a core: the generator was starved by other "
                "processes, and latencies include its own queueing; give it a core that "
                "nothing else uses, or use fewer users"
            )
    for paced in facts.paced.user_classes:
        if paced.user_class in ARRIVAL_KINDS:  # open-model arrivals: their own limits
            reason = arrivals.shortfall_reason(
                ARRIVAL_KINDS[paced.user_class],
                paced.intended_iterations,
                round(paced.intended_iterations) - paced.achieved_iterations,
            )
            reasons.extend([reason] if reason else [])
            continue
        shortfall = paced.shortfall_pct
        if shortfall is not None and shortfall > shortfall_threshold_pct:
            reasons.append(
                f"paced users {paced.user_class} achieved {paced.achieved_pct:.1f} % of the "
                f"intended {paced.users / paced.pacing_s:.2f} iterations/s "
                f"(shortfall {shortfall:.1f} % > {shortfall_threshold_pct:.0f} %): the load "
                "was not the load asked for"
            )
    reasons.extend(facts.warnings)
    return tuple(reasons)


# -- the fixed head of a recording (used by harness.plugin) ---------------------------------


def format_header(interval_s: float, version: int = FORMAT_VERSION) -> dict[str, Any]:
    """The fixed head of a recording: the first line of version 2, the top of version 1."""
    head: dict[str, Any] = {
        "format": FORMAT,
        "format_version": version,
        "unit": UNIT,
        "lowest_trackable": LOWEST_TRACKABLE_NS,
        "highest_trackable": HIGHEST_TRACKABLE_NS,
        "significant_figures": SIGNIFICANT_FIGURES,
        "interval_s": interval_s,
    }
    if version >= 2:
        head["columns"] = list(ROW_COLUMNS)
    return head


def finite_or_none(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else value


# -- writing: the recording streamed to disk as the run goes ----------------------------------


class RecordingWriter:
    """Writes a version-2 recording line by line as the run goes.

    The lines go into a temporary file beside ``path``, created as `runfolder.write_atomic`
    creates its own (exclusively, under an unpredictable name, never through a link);
    `finish` writes the end line, syncs it to disk and renames it into place, so that no
    reader ever sees half a recording. Disk errors are `runfolder.write_error`'s.
    """

    def __init__(self, path: Path, interval_s: float) -> None:
        self.path = Path(path)
        folder = self.path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise write_error(folder, e) from None
        refuse_link(self.path)
        self._tmp = folder / f".{self.path.name}.{secrets.token_hex(8)}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            self._file: BinaryIO | None = os.fdopen(os.open(self._tmp, flags, 0o644), "wb")
        except OSError as e:
            raise write_error(self.path, e) from None
        self._keys: dict[tuple[str, str, str], int] = {}
        self._write({**format_header(interval_s)})

    def _write(self, line: Mapping[str, Any]) -> None:
        if self._file is None:
            raise ValueError(f"{self.path}: the recording is already finished")
        text = json.dumps(line, separators=(",", ":"), allow_nan=False) + "\n"
        try:
            self._file.write(text.encode("utf-8"))
        except OSError as e:
            # A line half written spoils the file: no more lines go into it.
            self.abandon()
            raise write_error(self.path, e) from None

    def key(self, table: str, request_type: str, name: str) -> int:
        """The number of a key, declared by a line of its own the first time."""
        number = self._keys.get((table, request_type, name))
        if number is None:
            number = self._keys[(table, request_type, name)] = len(self._keys)
            self._write({"key": number, "table": table, "type": request_type, "name": name})
        return number

    def interval(self, index: int, rows: Sequence[Sequence[Any]]) -> None:
        self._write({"interval": index, "rows": rows})

    def samples(self, users: Sequence[Mapping[str, Any]], cpu: Sequence[Mapping[str, Any]]) -> None:
        if users:
            self._write({"users": list(users)})
        if cpu:
            self._write({"cpu": list(cpu)})

    def flush(self) -> None:
        """Hand what was written to the operating system (a line lost in a crash, not more)."""
        if self._file is not None:
            try:
                self._file.flush()
            except OSError as e:
                self.abandon()
                raise write_error(self.path, e) from None

    def finish(self, end: Mapping[str, Any]) -> Path:
        self._write({"end": end})
        assert self._file is not None
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None
            # Checked again just before the rename, as write_atomic does.
            refuse_link(self.path)
            os.replace(self._tmp, self.path)
        except BaseException as e:
            self.abandon()
            if isinstance(e, OSError):
                raise write_error(self.path, e) from None
            raise
        return self.path

    def abandon(self) -> None:
        """Close and remove the temporary file (nothing is left behind)."""
        if self._file is not None:
            with suppress(OSError):
                self._file.close()
            self._file = None
        with suppress(FileNotFoundError):
            os.unlink(self._tmp)


# -- merging (used by harness.plugin in the master, or the only process) -----------------------
#
# A payload (``harness.plugin.Recorder.take``) is a dict: "process", "sent_epoch",
# "entries" and "paced" (rows ``[type, name, interval index, count, failures, cut_off,
# sum_ns, min_ns, max_ns, histogram]``, the histogram a `Histogram` or its encoding),
# "failures" (rows ``[type, name, message, count, first_epoch, last_epoch]``), "cpu" (rows
# ``[epoch, cpu_pct, runnable_pct or None]``) and "paced_classes" (``{class: [pacing_s,
# users, intended, achieved]}``, a snapshot that replaces the process's previous one).


@dataclass
class _Interval:
    count: int = 0
    failures: int = 0
    cut_off: int = 0
    sum_ns: int = 0
    min_ns: int | None = None
    max_ns: int | None = None
    histogram: Histogram | None = None

    def add(
        self,
        count: int,
        failures: int,
        cut_off: int,
        sum_ns: int,
        low: Any,
        high: Any,
        h: Histogram,
    ) -> None:
        self.count += count
        self.failures += failures
        self.cut_off += cut_off
        self.sum_ns += sum_ns
        if low is not None:
            self.min_ns = low if self.min_ns is None else min(self.min_ns, low)
        if high is not None:
            self.max_ns = high if self.max_ns is None else max(self.max_ns, high)
        if self.histogram is None:
            self.histogram = h
        else:
            self.histogram.add(h)

    def row(self) -> list[Any]:
        return [self.count, self.failures, self.cut_off, self.sum_ns, self.min_ns, self.max_ns]

    def to_json(self) -> dict[str, Any]:
        return dict(zip(ROW_COLUMNS[1:7], self.row(), strict=True))


@dataclass
class _Entry:
    whole: _Interval = field(default_factory=_Interval)
    intervals: dict[int, _Interval] = field(default_factory=dict)


class Aggregator:
    """Merges payloads from `Recorder.take` (any number of processes), losslessly.

    Streamed (`stream_to`), it writes every interval older than `flush`'s index to the
    recording file and forgets it, with the users and CPU samples taken so far: over a run
    of hours it holds the whole-run histograms and the last few intervals, not the run.
    `finish` writes the rest and the end line. Not streamed, it holds everything, and
    `document` gives it as one version-1 document.
    """

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.entries: dict[Key, _Entry] = {}
        self.paced_entries: dict[Key, _Entry] = {}
        self.failures: dict[tuple[str, str, str], list[float]] = {}
        self.cpu: list[dict[str, Any]] = []
        self.users: list[dict[str, Any]] = []
        self.paced_classes: dict[str, dict[str, list[float]]] = {}
        self.sent_epoch: dict[str, float] = {}
        self._writer: RecordingWriter | None = None
        self._max_cpu_pct: float | None = None
        self._flushed = False

    def apply(self, payload: dict[str, Any]) -> None:
        process = str(payload.get("process", "?"))
        self.sent_epoch[process] = float(payload.get("sent_epoch", time.time()))
        for row in payload.get("entries", ()):
            self._add(self.entries, row)
        for row in payload.get("paced", ()):
            self._add(self.paced_entries, row)
        for t, n, m, count, first, last in payload.get("failures", ()):
            row = self.failures.get((t, n, m))
            if row is None:
                self.failures[(t, n, m)] = [count, first, last]
            else:
                row[0] += count
                row[1] = min(row[1], first)
                row[2] = max(row[2], last)
        for epoch, pct, *demand in payload.get("cpu", ()):
            # An older worker sends [epoch, cpu_pct]; a kernel without schedstat, None.
            sample = {"epoch": epoch, "process": process, "cpu_pct": pct}
            if demand and demand[0] is not None:
                sample["runnable_pct"] = demand[0]
            self.cpu.append(sample)
        if payload.get("paced_classes"):
            self.paced_classes[process] = payload["paced_classes"]

    def _add(self, table: dict[Key, _Entry], row: list[Any]) -> None:
        request_type, name, index, count, fails, cut_off, sum_ns, low, high, h = row
        if isinstance(h, str):
            h = decode_histogram(h)
        entry = table.get((request_type, name))
        if entry is None:
            entry = table[(request_type, name)] = _Entry()
        entry.whole.add(count, fails, cut_off, sum_ns, low, high, h.copy())
        interval = entry.intervals.get(index)
        if interval is None:
            interval = entry.intervals[index] = _Interval()
        interval.add(count, fails, cut_off, sum_ns, low, high, h)

    def add_users(self, epoch: float, users: int) -> None:
        self.users.append({"epoch": epoch, "users": users})

    # -- streaming ---------------------------------------------------------------------------

    def stream_to(self, path: Path) -> None:
        """Write the recording to ``path`` as the run goes (PaybenchError if it cannot)."""
        if self._writer is None:
            self._writer = RecordingWriter(path, self.interval_s)

    def flush(self, before_index: int) -> int:
        """Write the intervals before ``before_index`` (and the samples) and forget them.

        Returns how many intervals were written. A worker's data for an interval already
        written (late) is written again as another line of that interval: readers add them.
        """
        writer = self._writer
        if writer is None:
            return 0
        indices = sorted(
            {
                index
                for table in (self.entries, self.paced_entries)
                for entry in table.values()
                for index in entry.intervals
                if index < before_index
            }
        )
        for index in indices:
            rows: list[list[Any]] = []
            histograms: list[Histogram] = []
            for table_name, table in zip(TABLES, (self.entries, self.paced_entries), strict=True):
                for (request_type, name), entry in sorted(table.items()):
                    interval = entry.intervals.pop(index, None)
                    if interval is not None:
                        rows.append([writer.key(table_name, request_type, name), *interval.row()])
                        histograms.append(interval.histogram or Histogram())
            for row, text in zip(rows, encode_histograms(histograms), strict=True):
                row.append(text)
            writer.interval(index, rows)
        self._flush_samples(writer)
        writer.flush()
        self._flushed = self._flushed or bool(indices)
        return len(indices)

    def _flush_samples(self, writer: RecordingWriter) -> None:
        cpu, self.cpu = self.cpu, []
        users, self.users = self.users, []
        peak = max((float(c["cpu_pct"]) for c in cpu), default=None)
        if peak is not None:
            self._max_cpu_pct = peak if self._max_cpu_pct is None else max(peak, self._max_cpu_pct)
        writer.samples(users, cpu)
        self._flushed = self._flushed or bool(cpu or users)

    def finish(self, path: Path, meta: Mapping[str, Any]) -> Path:
        """Write everything not written yet and the end line; the recording is complete.

        ``meta``: test_start_epoch, spawning_complete_epoch(s), test_stop_epoch, mode,
        workers, warnings (and users samples of its own, if any).
        """
        self.stream_to(path)
        writer = self._writer
        assert writer is not None
        for sample in meta.get("users", ()):
            self.users.append(dict(sample))
        self.flush(_AFTER_EVERY_INDEX)
        whole = []
        for table_name, table in zip(TABLES, (self.entries, self.paced_entries), strict=True):
            for (request_type, name), entry in sorted(table.items()):
                key = writer.key(table_name, request_type, name)
                whole.append([key, *entry.whole.row()])
        texts = encode_histograms(
            [
                entry.whole.histogram or Histogram()
                for table in (self.entries, self.paced_entries)
                for _, entry in sorted(table.items())
            ]
        )
        for row, text in zip(whole, texts, strict=True):
            row.append(text)
        end = {
            **{k: v for k, v in meta.items() if k != "users"},
            "whole": whole,
            "failures": self._failure_rows(),
            "generator": {"max_cpu_pct": self._max_cpu_pct},
            "paced": {"user_classes": self._paced_class_rows()},
        }
        self._writer = None
        return writer.finish(end)

    def abandon(self) -> None:
        """Remove the temporary file of a recording that will not be finished."""
        if self._writer is not None:
            self._writer.abandon()
            self._writer = None

    # -- reading while running (progress) --------------------------------------------------

    def complete_index(self, now: float, processes: list[str] | None) -> int:
        """The newest interval every process has reported in full."""
        if processes:
            seen = [self.sent_epoch.get(p) for p in processes]
            if any(s is None for s in seen):
                return int(now / self.interval_s) - 2
            now = min(s for s in seen if s is not None)
        return int(now / self.interval_s) - 1

    def progress(self, index: int) -> dict[str, Any]:
        requests = failures = cut_off = 0
        last_requests = 0
        keys = {}
        for (request_type, name), entry in sorted(self.entries.items()):
            whole = entry.whole
            if request_type != FLOW_TYPE:
                requests += whole.count
                failures += whole.failures
                cut_off += whole.cut_off
            last = entry.intervals.get(index)
            if last is not None and request_type != FLOW_TYPE:
                last_requests += last.count
            keys[f"{request_type} {name}" if request_type else name] = {
                **_summary(whole),
                "last": _summary(last) if last is not None else _summary(_Interval()),
            }
        return {
            "requests": requests,
            "failures": failures,
            "cut_off": cut_off,
            "rps": last_requests / self.interval_s,
            "interval_index": index,
            "interval_start_epoch": index * self.interval_s,
            "per_request": keys,
        }

    # -- everything at once: version 1 ---------------------------------------------------------

    def document(self, meta: dict[str, Any]) -> dict[str, Any]:
        """Everything merged, as one version-1 document (an aggregator that never streamed:
        tests, and tools that want the older format)."""
        if self._flushed:
            raise ValueError("this recording was streamed to disk: it has no document")

        def entries(table: dict[Key, _Entry]) -> list[dict[str, Any]]:
            out = []
            for (request_type, name), entry in sorted(table.items()):
                whole = entry.whole
                out.append(
                    {
                        "type": request_type,
                        "name": name,
                        **whole.to_json(),
                        "histogram": encode_histogram(whole.histogram or Histogram()),
                        "intervals": [
                            {
                                "index": index,
                                **interval.to_json(),
                                "histogram": encode_histogram(interval.histogram or Histogram()),
                            }
                            for index, interval in sorted(entry.intervals.items())
                        ],
                    }
                )
            return out

        cpu = sorted(self.cpu, key=lambda c: c["epoch"])
        doc = {
            **format_header(self.interval_s, version=1),
            **meta,
            "entries": entries(self.entries),
            "failures": self._failure_rows(),
            "generator": {
                "cpu": cpu,
                "max_cpu_pct": max((c["cpu_pct"] for c in cpu), default=None),
            },
            "paced": {
                "user_classes": self._paced_class_rows(),
                "entries": entries(self.paced_entries),
            },
        }
        if self.users:
            doc["users"] = [*self.users, *meta.get("users", ())]
        return doc

    def _failure_rows(self) -> list[dict[str, Any]]:
        return [
            {
                "type": t,
                "name": n,
                "message": m,
                "count": int(c),
                "first_epoch": f,
                "last_epoch": la,
            }
            for (t, n, m), (c, f, la) in sorted(self.failures.items())
        ]

    def _paced_class_rows(self) -> list[dict[str, Any]]:
        paced_classes: dict[str, list[float]] = {}
        for per_process in self.paced_classes.values():
            for user_class, (pacing_s, users, intended, achieved) in per_process.items():
                row = paced_classes.setdefault(user_class, [pacing_s, 0, 0.0, 0])
                row[1] += users
                row[2] += intended
                row[3] += achieved
        return [
            {
                "user_class": name,
                "pacing_s": pacing_s,
                "users": int(users),
                "intended_iterations": intended,
                "achieved_iterations": int(achieved),
            }
            for name, (pacing_s, users, intended, achieved) in sorted(paced_classes.items())
        ]


# `finish` writes every interval: any index is before this one.
_AFTER_EVERY_INDEX = _MAX_INDEX + 1


def _summary(interval: _Interval) -> dict[str, Any]:
    h = interval.histogram
    p95 = percentile_ms(h, 95) if h is not None else None
    return {
        "count": interval.count,
        "failures": interval.failures,
        "avg_ms": interval.sum_ns / interval.count / NS_PER_MS if interval.count else None,
        "p95_ms": p95,
    }
