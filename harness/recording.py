"""Read ``paybench.hdr.json``, the exact recording ``harness.plugin`` writes, into values.

IO at the edge: this module reads the file (``harness.runfolder`` writes it, for the
plugin); it never imports Locust. The format is described in docs/ARCHITECTURE.md and
docs/measurement.md.

Format history (``format_version``):
  1  entries with whole-run and per-interval HdrHistograms of nanoseconds (V2 compressed,
     base64), cut-offs, failures, users, generator CPU, paced users. A CPU sample's
     ``runnable_pct`` came later, optional: files without it read as before.
"""

from __future__ import annotations

import base64
import binascii
import math
import struct
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

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
    NS_PER_MS,
    SIGNIFICANT_FIGURES,
    UNIT,
    Histogram,
    decode_histogram,
    encode_histogram,
    merge_histograms,
    percentile_ms,
)
from harness.errors import FormatError
from harness.inputs import MAX_RECORDING_BYTES, Field, Obj, parse_json, read_bytes, show
from harness.runfolder import HDR_FILE as HDR_FILE  # the names live there; kept importable here
from harness.runfolder import LIVE_FILE as LIVE_FILE

FORMAT = "paybench-histograms"
FORMAT_VERSION = 1
FLOW_TYPE = "FLOW"  # request_type of a flow entry (a journey, not a request)

# Locust warns when a generator process is above this; so do we.
CPU_SATURATED_PCT = 90.0
# A process whose event loop was on a CPU or waiting for one this much of an interval was
# CPU-bound, whatever share of a core the other processes of the machine left it.
RUNNABLE_SATURATED_PCT = 90.0
# Paced users that achieved less than (100 - this) % of their intended iterations.
PACED_SHORTFALL_PCT = 10.0
TIMELINE_PERCENTILES = {"p50": 50.0, "p95": 95.0, "p99": 99.0}

Key = tuple[str, str]  # (request_type, name)


@dataclass(frozen=True)
class IntervalData:
    """One request key over one interval ``[index * interval_s, (index + 1) * interval_s)``."""

    index: int
    count: int
    failures: int
    cut_off: int
    sum_ns: int
    min_ns: int | None
    max_ns: int | None
    encoded: str = field(repr=False)
    source: str = field(default="", repr=False)  # the file, for messages
    where: str = field(default="", repr=False, compare=False)  # its key path in the file

    @cached_property
    def histogram(self) -> Histogram:
        return _histogram(self, f"interval {self.index}")


@dataclass(frozen=True)
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
    encoded: str = field(repr=False)
    intervals: tuple[IntervalData, ...] = ()
    source: str = field(default="", repr=False)
    where: str = field(default="", repr=False, compare=False)

    @property
    def key(self) -> str:
        return request_key(self.request_type, self.name)

    @property
    def is_flow(self) -> bool:
        return self.request_type == FLOW_TYPE

    @cached_property
    def histogram(self) -> Histogram:
        return _histogram(self, self.key)


def _decoded(encoded: str, source: str, what: str) -> Histogram:
    # Histograms are decoded on first use; a damaged one is still the file's fault.
    try:
        return decode_histogram(encoded)
    except ValueError as e:
        raise FormatError(f"{source}: damaged recording (histogram of {what}: {e})") from e


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
    """A ``paybench.hdr.json`` read into values (histograms decoded on first use)."""

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

    # -- request statistics ------------------------------------------------------------

    def request_stats(
        self, start_epoch: float | None = None, end_epoch: float | None = None
    ) -> tuple[RequestStats, ...]:
        """Per request key (flows included) over the window, or the whole run.

        A window takes the intervals whose middle lies in ``[start_epoch, end_epoch)``; a
        window that reaches the test's start or stop takes the edge intervals too (so the
        cut-offs counted at stop belong to it). ``duration_s`` is the window's length.
        """
        return tuple(self._stats_of(e, start_epoch, end_epoch) for e in self.entries)

    def paced_request_stats(
        self, start_epoch: float | None = None, end_epoch: float | None = None
    ) -> tuple[RequestStats, ...]:
        """Like `request_stats`, with latencies measured from the intended start."""
        return tuple(self._stats_of(e, start_epoch, end_epoch) for e in self.paced.entries)

    def aggregate(
        self, start_epoch: float | None = None, end_epoch: float | None = None
    ) -> RequestStats:
        """Every request together (flow entries excluded: they are not requests)."""
        requests = [e for e in self.entries if not e.is_flow]
        parts = [self._stats_of(e, start_epoch, end_epoch) for e in requests]
        # The aggregate's interval histograms: every request key's, merged index by index.
        by_index: dict[int, list[Histogram]] = {}
        for entry in requests:
            for interval in entry.intervals:
                if self._in_window(interval.index, start_epoch, end_epoch):
                    by_index.setdefault(interval.index, []).append(interval.histogram)
        intervals = tuple(merge_histograms(by_index[i]) for i in sorted(by_index))
        return combine_stats(parts, self._window_duration(start_epoch, end_epoch), intervals)

    def _window_duration(self, start_epoch: float | None, end_epoch: float | None) -> float:
        start = self.test_start_epoch if start_epoch is None else start_epoch
        end = self.test_stop_epoch if end_epoch is None else end_epoch
        if start is None or end is None:
            return 0.0
        return max(0.0, end - start)

    def _in_window(self, index: int, start_epoch: float | None, end_epoch: float | None) -> bool:
        middle = (index + 0.5) * self.interval_s
        if start_epoch is not None and not (
            self.test_start_epoch is not None and start_epoch <= self.test_start_epoch
        ):
            if middle < start_epoch:
                return False
        if end_epoch is not None and not (
            self.test_stop_epoch is not None and end_epoch >= self.test_stop_epoch
        ):
            if middle >= end_epoch:
                return False
        return True

    def _stats_of(
        self, entry: EntryData, start_epoch: float | None, end_epoch: float | None
    ) -> RequestStats:
        duration_s = self._window_duration(start_epoch, end_epoch)
        if start_epoch is None and end_epoch is None:
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
                tuple(i.histogram for i in entry.intervals),
                duration_s,
            )
        chosen = [i for i in entry.intervals if self._in_window(i.index, start_epoch, end_epoch)]
        histograms = tuple(i.histogram for i in chosen)
        mins = [i.min_ns for i in chosen if i.min_ns is not None]
        maxs = [i.max_ns for i in chosen if i.max_ns is not None]
        return _request_stats(
            entry.request_type,
            entry.name,
            sum(i.count for i in chosen),
            sum(i.failures for i in chosen),
            sum(i.cut_off for i in chosen),
            sum(i.sum_ns for i in chosen),
            min(mins) if mins else None,
            max(maxs) if maxs else None,
            merge_histograms(histograms),
            histograms,
            duration_s,
        )

    # -- timeline, failures, generator -------------------------------------------------

    def timeline(self) -> tuple[IntervalPoint, ...]:
        """One point per interval that saw a request, flows' percentiles included."""
        by_index: dict[int, list[tuple[EntryData, IntervalData]]] = {}
        for entry in self.entries:
            for interval in entry.intervals:
                by_index.setdefault(interval.index, []).append((entry, interval))
        origin = self.test_start_epoch
        points = []
        for index in sorted(by_index):
            start_epoch = index * self.interval_s
            pairs = by_index[index]
            requests = [(e, i) for e, i in pairs if not e.is_flow]
            percentiles = {
                e.key: {
                    label: percentile_ms(i.histogram, p) or 0.0
                    for label, p in TIMELINE_PERCENTILES.items()
                }
                for e, i in pairs
                if i.count
            }
            points.append(
                IntervalPoint(
                    start_s=start_epoch - origin if origin is not None else start_epoch,
                    duration_s=self.interval_s,
                    users=self.users_during(start_epoch, start_epoch + self.interval_s),
                    requests=sum(i.count for _, i in requests),
                    failures=sum(i.failures for _, i in requests),
                    percentiles_ms=percentiles,
                )
            )
        return tuple(points)

    def users_during(self, start_epoch: float, end_epoch: float) -> int:
        """The most users running at any sampled moment of ``[start_epoch, end_epoch)``."""
        inside = [s.users for s in self.users if start_epoch <= s.epoch < end_epoch]
        return max([self.users_at(start_epoch), *inside])

    def users_at(self, epoch: float) -> int:
        """The user count last sampled at or before ``epoch`` (0 before the first sample)."""
        users = 0
        for sample in self.users:
            if sample.epoch > epoch:
                break
            users = sample.users
        return users

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


# -- reading --------------------------------------------------------------------------------
#
# A recording may come from anywhere (a CI artefact): every field is checked for its type
# and for what the plugin could have written (counts that add up, min <= max, finite
# times), and a file that breaks any of it is refused with the file and the field named.

# Our layout's decoded counts (about 30,000 of them) take under 300 kB even uncompressed
# varint by varint; a histogram that inflates to more is a zip bomb, not a recording.
MAX_HISTOGRAM_PAYLOAD_BYTES = 1024 * 1024
_V2_HEADER = struct.Struct(">IIIIQQ")  # cookie, length, offset, digits, lowest, highest


def load_recording(path: Path) -> Recording:
    """Read a ``paybench.hdr.json``; FormatError (naming the file) when it cannot be used."""
    path = Path(path)
    if not path.exists():
        raise FormatError(f"{path}: cannot read the recording: no such file")
    doc = parse_json(
        read_bytes(path, MAX_RECORDING_BYTES), str(path), "a readable paybench recording"
    )
    return parse_recording(doc, path)


def parse_recording(doc: Any, path: Path) -> Recording:
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise FormatError(f'{path}: not a paybench recording (no "format": "{FORMAT}")')
    version = doc.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise FormatError(f"{path}: format_version must be an integer, got {show(version)}")
    if version > FORMAT_VERSION:
        raise FormatError(
            f"{path}: format version {_brief(version)} is newer than this paybench understands "
            f"({FORMAT_VERSION}); upgrade paybench"
        )
    if version < 1:
        raise FormatError(f"{path}: format version {_brief(version)} is not a known version")
    if doc.get("unit") != UNIT or doc.get("significant_figures") != SIGNIFICANT_FIGURES:
        raise FormatError(
            f"{path}: histograms in unit {_brief(doc.get('unit'))} with "
            f"{_brief(doc.get('significant_figures'))} significant figures; expected {UNIT!r} "
            f"and {SIGNIFICANT_FIGURES}"
        )
    return _parse_v1(doc, path)


def _brief(value: Any) -> str:
    """A scalar as Python writes it, anything else as `show` names it (a list, an object)."""
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return repr(value)[:40]
    return show(value)


def _parse_v1(doc: Mapping[str, Any], path: Path) -> Recording:
    top = Obj(doc, Field(str(path)))
    interval_s = top.number("interval_s", positive=True)
    if interval_s > _MAX_INTERVAL_S:
        top.where.at("interval_s").fail(f"{interval_s} s is longer than a day")
    start = top.number("test_start_epoch", None)
    stop = top.number("test_stop_epoch", None)
    if start is not None and stop is not None and stop < start:
        top.where.at("test_stop_epoch").fail(f"{stop} is before test_start_epoch {start}")
    generator = top.obj("generator", optional=True)
    paced = top.obj("paced", optional=True)
    entries = _parse_entries(top, "entries", optional=False)
    paced_entries = _parse_entries(paced, "entries")
    if start is not None and stop is not None:
        _check_intervals_in_run((*entries, *paced_entries), interval_s, start, stop)
    return Recording(
        path=path,
        interval_s=interval_s,
        test_start_epoch=start,
        spawning_complete_epoch=top.number("spawning_complete_epoch", None),
        test_stop_epoch=stop,
        entries=entries,
        users=tuple(
            UsersSample(u.number("epoch"), u.whole("users", high=_MAX_USERS))
            for u in top.objs("users")
        ),
        failure_rows=tuple(_parse_failure(f) for f in top.objs("failures")),
        cpu=tuple(
            CpuSample(
                c.number("epoch"),
                c.text("process"),
                c.number("cpu_pct"),
                c.number("runnable_pct", None),
            )
            for c in generator.objs("cpu")
        ),
        paced=PacedInfo(
            user_classes=tuple(
                PacedUserClass(
                    user_class=u.text("user_class"),
                    pacing_s=u.number("pacing_s", positive=True),
                    users=u.whole("users", high=_MAX_USERS),
                    intended_iterations=u.number("intended_iterations"),
                    achieved_iterations=u.whole("achieved_iterations"),
                )
                for u in paced.objs("user_classes")
            ),
            entries=paced_entries,
        ),
        warnings=top.texts("warnings"),
        workers=top.texts("workers"),
        spawning_complete_epochs=top.numbers("spawning_complete_epochs"),
    )


# The plugin's interval is seconds long; a day is past any setting that makes sense.
_MAX_INTERVAL_S = 86_400.0
# Requests still ending after the stop, and workers' clocks, place intervals a little
# outside [test_start_epoch, test_stop_epoch]; an hour outside is another run's, or damage.
_INTERVAL_SLACK_S = 3_600.0


def _check_intervals_in_run(
    entries: Sequence[EntryData], interval_s: float, start: float, stop: float
) -> None:
    for entry in entries:
        for interval in entry.intervals:
            begins = interval.index * interval_s
            if not start - _INTERVAL_SLACK_S <= begins <= stop + _INTERVAL_SLACK_S:
                Field(interval.source, interval.where).at("index").fail(
                    f"interval {interval.index} begins at {begins:.6g} s, outside the run "
                    f"({start:.6g} to {stop:.6g} s since 1970)"
                )


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


def _parse_entries(parent: Obj, key: str, optional: bool = True) -> tuple[EntryData, ...]:
    entries = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(parent.objs(key, optional=optional)):
        entry = _parse_entry(raw.value, raw.where.source, raw.where)
        if entry.key in seen:
            raw.where.fail(
                f"a second entry for {show(entry.key)} (the first: {key}[{seen[entry.key]}])"
            )
        seen[entry.key] = i
        entries.append(entry)
    return tuple(entries)


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


def _parse_entry(raw: Mapping[str, Any], source: str, where: Field | None = None) -> EntryData:
    entry = Obj(raw, where or Field(source))
    request_type = entry.text("type")
    name = entry.text("name")
    count, failures, cut_off, sum_ns, min_ns, max_ns = _counts(entry)
    intervals = []
    indices: set[int] = set()
    for item in entry.objs("intervals"):
        index = item.whole("index", high=_MAX_INDEX)
        if index in indices:
            item.where.at("index").fail(f"interval {index} appears twice")
        indices.add(index)
        i_count, i_failures, i_cut_off, i_sum_ns, i_min, i_max = _counts(item)
        intervals.append(
            IntervalData(
                index=index,
                count=i_count,
                failures=i_failures,
                cut_off=i_cut_off,
                sum_ns=i_sum_ns,
                min_ns=i_min,
                max_ns=i_max,
                encoded=item.text("histogram", max_chars=MAX_RECORDING_BYTES),
                source=source,
                where=item.where.path,
            )
        )
    if intervals:
        # The plugin adds every request to its interval and to the whole run alike.
        for label, whole, part in (
            ("count", count, sum(i.count for i in intervals)),
            ("failures", failures, sum(i.failures for i in intervals)),
            ("cut_off", cut_off, sum(i.cut_off for i in intervals)),
            ("sum_ns", sum_ns, sum(i.sum_ns for i in intervals)),
        ):
            if whole != part:
                entry.where.at(label).fail(f"{whole} is not the sum of its intervals' ({part})")
    return EntryData(
        request_type=request_type,
        name=name,
        count=count,
        failures=failures,
        cut_off=cut_off,
        sum_ns=sum_ns,
        min_ns=min_ns,
        max_ns=max_ns,
        encoded=entry.text("histogram", max_chars=MAX_RECORDING_BYTES),
        intervals=tuple(sorted(intervals, key=lambda i: i.index)),
        source=source,
        where=entry.where.path,
    )


def _checked_encoding(encoded: str, where: Field) -> None:
    """Refuse a histogram that is not our layout, or that would inflate without bound.

    hdrh inflates the whole payload and sizes its counts from the header: a few bytes of a
    hostile file could otherwise take gigabytes or minutes.
    """
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        where.fail("not an HdrHistogram V2 encoding (not base64)")
    inflater = zlib.decompressobj()
    try:
        payload = inflater.decompress(raw[8:], MAX_HISTOGRAM_PAYLOAD_BYTES)
    except zlib.error:
        where.fail("not an HdrHistogram V2 encoding (not compressed)")
    full = len(payload) == MAX_HISTOGRAM_PAYLOAD_BYTES and not inflater.eof
    if inflater.unconsumed_tail or full:
        where.fail(f"inflates to more than {MAX_HISTOGRAM_PAYLOAD_BYTES // 1024} KiB")
    if len(raw) < 8 or len(payload) < _V2_HEADER.size:
        where.fail("not an HdrHistogram V2 encoding (too short)")
    _cookie, _length, _offset, digits, lowest, highest = _V2_HEADER.unpack_from(payload)
    ours = (SIGNIFICANT_FIGURES, LOWEST_TRACKABLE_NS, HIGHEST_TRACKABLE_NS)
    if (digits, lowest, highest) != ours:
        where.fail(
            f"a histogram of {digits} significant figures from {lowest} to {highest}; "
            f"recordings hold {SIGNIFICANT_FIGURES} from {LOWEST_TRACKABLE_NS} to "
            f"{HIGHEST_TRACKABLE_NS} ns"
        )


def _histogram(data: EntryData | IntervalData, what: str) -> Histogram:
    """The decoded histogram of an entry or interval, once its encoding is known safe."""
    where = Field(data.source, data.where).at("histogram")
    _checked_encoding(data.encoded, where)
    h = _decoded(data.encoded, data.source, what)
    if h.count != data.count:
        where.fail(f"holds {h.count} latencies where count is {data.count}")
    return h


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


def format_header(interval_s: float) -> dict[str, Any]:
    """The fixed head of a version-1 recording."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "unit": UNIT,
        "lowest_trackable": LOWEST_TRACKABLE_NS,
        "highest_trackable": HIGHEST_TRACKABLE_NS,
        "significant_figures": SIGNIFICANT_FIGURES,
        "interval_s": interval_s,
    }


def finite_or_none(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else value


# -- merging and writing (used by harness.plugin in the master, or the only process) -------
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
    encoded: str | None = None

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
            self.histogram = decode_histogram(self.encoded) if self.encoded else None
            self.encoded = None
        if self.histogram is None:
            self.histogram = h
        else:
            self.histogram.add(h)

    def encode(self) -> str:
        if self.encoded is None:
            self.encoded = encode_histogram(self.histogram or Histogram())
            self.histogram = None
        return self.encoded

    def to_json(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "failures": self.failures,
            "cut_off": self.cut_off,
            "sum_ns": self.sum_ns,
            "min_ns": self.min_ns,
            "max_ns": self.max_ns,
        }


@dataclass
class _Entry:
    whole: _Interval = field(default_factory=_Interval)
    intervals: dict[int, _Interval] = field(default_factory=dict)


class Aggregator:
    """Merges payloads from `Recorder.take` (any number of processes), losslessly."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.entries: dict[Key, _Entry] = {}
        self.paced_entries: dict[Key, _Entry] = {}
        self.failures: dict[tuple[str, str, str], list[float]] = {}
        self.cpu: list[dict[str, Any]] = []
        self.paced_classes: dict[str, dict[str, list[float]]] = {}
        self.sent_epoch: dict[str, float] = {}

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

    def compact(self, before_index: int) -> None:
        """Encode old intervals' histograms (small text instead of arrays)."""
        for table in (self.entries, self.paced_entries):
            for entry in table.values():
                for index, interval in entry.intervals.items():
                    if index < before_index and interval.histogram is not None:
                        interval.encode()

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
            if last is not None and last.encoded is not None:
                last = None  # compacted: too old to be the last interval
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

    # -- the file ----------------------------------------------------------------------------

    def document(self, meta: dict[str, Any]) -> dict[str, Any]:
        def entries(table: dict[Key, _Entry]) -> list[dict[str, Any]]:
            out = []
            for (request_type, name), entry in sorted(table.items()):
                whole = entry.whole
                out.append(
                    {
                        "type": request_type,
                        "name": name,
                        **whole.to_json(),
                        "histogram": whole.encode(),
                        "intervals": [
                            {"index": index, **interval.to_json(), "histogram": interval.encode()}
                            for index, interval in sorted(entry.intervals.items())
                        ],
                    }
                )
            return out

        paced_classes: dict[str, list[float]] = {}
        for per_process in self.paced_classes.values():
            for user_class, (pacing_s, users, intended, achieved) in per_process.items():
                row = paced_classes.setdefault(user_class, [pacing_s, 0, 0.0, 0])
                row[1] += users
                row[2] += intended
                row[3] += achieved
        cpu = sorted(self.cpu, key=lambda c: c["epoch"])
        return {
            **format_header(self.interval_s),
            **meta,
            "entries": entries(self.entries),
            "failures": [
                {
                    "type": t,
                    "name": n,
                    "message": m,
                    "count": int(c),
                    "first_epoch": f,
                    "last_epoch": la,
                }
                for (t, n, m), (c, f, la) in sorted(self.failures.items())
            ],
            "generator": {
                "cpu": cpu,
                "max_cpu_pct": max((c["cpu_pct"] for c in cpu), default=None),
            },
            "paced": {
                "user_classes": [
                    {
                        "user_class": name,
                        "pacing_s": pacing_s,
                        "users": int(users),
                        "intended_iterations": intended,
                        "achieved_iterations": int(achieved),
                    }
                    for name, (pacing_s, users, intended, achieved) in sorted(paced_classes.items())
                ],
                "entries": entries(self.paced_entries),
            },
        }


def _summary(interval: _Interval) -> dict[str, Any]:
    h = interval.histogram
    p95 = percentile_ms(h, 95) if h is not None else None
    return {
        "count": interval.count,
        "failures": interval.failures,
        "avg_ms": interval.sum_ns / interval.count / NS_PER_MS if interval.count else None,
        "p95_ms": p95,
    }
