"""Read ``paybench.hdr.json``, the exact recording ``harness.plugin`` writes, into values.

IO at the edge: this module reads (and, for the plugin, atomically writes) the file; it never
imports Locust. The format is described in docs/ARCHITECTURE.md and docs/measurement.md.

Format history (``format_version``):
  1  entries with whole-run and per-interval HdrHistograms of nanoseconds (V2 compressed,
     base64), cut-offs, failures, users, generator CPU, paced users.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

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

FORMAT = "paybench-histograms"
FORMAT_VERSION = 1
HDR_FILE = "paybench.hdr.json"
LIVE_FILE = "paybench.live.jsonl"
FLOW_TYPE = "FLOW"  # request_type of a flow entry (a journey, not a request)

# Locust warns when a generator process is above this; so do we.
CPU_SATURATED_PCT = 90.0
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

    @cached_property
    def histogram(self) -> Histogram:
        return _decoded(self.encoded, self.source, f"interval {self.index}")


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

    @property
    def key(self) -> str:
        return request_key(self.request_type, self.name)

    @property
    def is_flow(self) -> bool:
        return self.request_type == FLOW_TYPE

    @cached_property
    def histogram(self) -> Histogram:
        return _decoded(self.encoded, self.source, self.key)


def _decoded(encoded: str, source: str, what: str) -> Histogram:
    # Histograms are decoded on first use; a damaged one is still the file's fault.
    try:
        return decode_histogram(encoded)
    except ValueError as e:
        raise FormatError(f"{source}: damaged recording (histogram of {what}: {e})") from e


@dataclass(frozen=True)
class CpuSample:
    epoch: float
    process: str  # "master", "local" or a worker's name
    cpu_pct: float


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
    parts: Sequence[RequestStats], duration_s: float, intervals: tuple[Histogram, ...] = ()
) -> RequestStats:
    """The aggregate of several request keys' statistics (histograms merged losslessly).

    ``intervals`` are the aggregate's interval histograms when the caller has them (they
    must be merged by interval, which ``parts`` alone cannot tell).
    """
    count = sum(p.count for p in parts)
    histogram = merge_histograms(p.histogram for p in parts if p.histogram is not None)
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
        source="paybench",
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


def load_recording(path: Path) -> Recording:
    """Read a ``paybench.hdr.json``; FormatError (naming the file) when it cannot be used."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise FormatError(f"{path}: cannot read the recording: {e.strerror or e}") from e
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FormatError(f"{path}: not a readable paybench recording (invalid JSON: {e})") from e
    return parse_recording(doc, path)


def parse_recording(doc: Any, path: Path) -> Recording:
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise FormatError(f'{path}: not a paybench recording (no "format": "{FORMAT}")')
    version = doc.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise FormatError(f"{path}: format_version must be an integer, got {version!r}")
    if version > FORMAT_VERSION:
        raise FormatError(
            f"{path}: format version {version} is newer than this paybench understands "
            f"({FORMAT_VERSION}); upgrade paybench"
        )
    if version < 1:
        raise FormatError(f"{path}: format version {version} is not a known version")
    if doc.get("unit") != UNIT or doc.get("significant_figures") != SIGNIFICANT_FIGURES:
        raise FormatError(
            f"{path}: histograms in unit {doc.get('unit')!r} with "
            f"{doc.get('significant_figures')!r} significant figures; expected {UNIT!r} and "
            f"{SIGNIFICANT_FIGURES}"
        )
    try:
        return _parse_v1(doc, path)
    except (KeyError, TypeError, ValueError) as e:
        raise FormatError(f"{path}: damaged recording ({type(e).__name__}: {e})") from e


def _parse_v1(doc: Mapping[str, Any], path: Path) -> Recording:
    interval_s = float(doc["interval_s"])
    if not interval_s > 0:
        raise ValueError(f"interval_s must be positive, got {interval_s}")
    generator = doc.get("generator") or {}
    paced = doc.get("paced") or {}
    return Recording(
        path=path,
        interval_s=interval_s,
        test_start_epoch=_opt_float(doc.get("test_start_epoch")),
        spawning_complete_epoch=_opt_float(doc.get("spawning_complete_epoch")),
        test_stop_epoch=_opt_float(doc.get("test_stop_epoch")),
        entries=tuple(_parse_entry(e, str(path)) for e in doc.get("entries", ())),
        users=tuple(UsersSample(float(u["epoch"]), int(u["users"])) for u in doc.get("users", ())),
        failure_rows=tuple(dict(f) for f in doc.get("failures", ())),
        cpu=tuple(
            CpuSample(float(c["epoch"]), str(c["process"]), float(c["cpu_pct"]))
            for c in generator.get("cpu", ())
        ),
        paced=PacedInfo(
            user_classes=tuple(
                PacedUserClass(
                    user_class=str(u["user_class"]),
                    pacing_s=float(u["pacing_s"]),
                    users=int(u["users"]),
                    intended_iterations=float(u["intended_iterations"]),
                    achieved_iterations=int(u["achieved_iterations"]),
                )
                for u in paced.get("user_classes", ())
            ),
            entries=tuple(_parse_entry(e, str(path)) for e in paced.get("entries", ())),
        ),
        warnings=tuple(str(w) for w in doc.get("warnings", ())),
        workers=tuple(str(w) for w in doc.get("workers", ())),
        spawning_complete_epochs=tuple(float(x) for x in doc.get("spawning_complete_epochs", ())),
    )


def _parse_entry(raw: Mapping[str, Any], source: str) -> EntryData:
    return EntryData(
        request_type=str(raw["type"]),
        name=str(raw["name"]),
        count=int(raw["count"]),
        failures=int(raw["failures"]),
        cut_off=int(raw.get("cut_off", 0)),
        sum_ns=int(raw.get("sum_ns", 0)),
        min_ns=_opt_int(raw.get("min_ns")),
        max_ns=_opt_int(raw.get("max_ns")),
        encoded=str(raw["histogram"]),
        intervals=tuple(
            IntervalData(
                index=int(i["index"]),
                count=int(i["count"]),
                failures=int(i["failures"]),
                cut_off=int(i.get("cut_off", 0)),
                sum_ns=int(i.get("sum_ns", 0)),
                min_ns=_opt_int(i.get("min_ns")),
                max_ns=_opt_int(i.get("max_ns")),
                encoded=str(i["histogram"]),
                source=source,
            )
            for i in sorted(raw.get("intervals", ()), key=lambda i: int(i["index"]))
        ),
        source=source,
    )


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


# -- judging the generator -----------------------------------------------------------------


def generator_unreliable_reasons(
    source: Recording | GeneratorFacts,
    start_epoch: float | None = None,
    end_epoch: float | None = None,
    cpu_threshold_pct: float = CPU_SATURATED_PCT,
    shortfall_threshold_pct: float = PACED_SHORTFALL_PCT,
) -> tuple[str, ...]:
    """Why the measurement cannot be trusted, or ``()`` when it can.

    * a generator process above ``cpu_threshold_pct`` CPU in an interval of the window
      (Locust's own warning threshold): latencies then include the generator's own queueing;
    * paced users (constant_pacing / constant_throughput) that achieved less than
      ``100 - shortfall_threshold_pct`` % of their intended iterations: the load was not
      the load asked for (coordinated omission);
    * workers whose final data never reached the master (counts incomplete).
    """
    facts = (
        source.generator_facts(start_epoch, end_epoch) if isinstance(source, Recording) else source
    )
    reasons = []
    saturated: dict[str, float] = {}
    for sample in facts.cpu:
        if sample.cpu_pct > cpu_threshold_pct:
            saturated[sample.process] = max(saturated.get(sample.process, 0.0), sample.cpu_pct)
    for process, peak in sorted(saturated.items()):
        reasons.append(
            f"load generator process {process} was saturated (CPU {peak:.0f} % > "
            f"{cpu_threshold_pct:.0f} %): latencies include the generator's own queueing; "
            "use more --workers or fewer users"
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


# -- writing (used by harness.plugin) -------------------------------------------------------


def write_json_atomically(path: Path, doc: Any) -> None:
    """Write ``doc`` as JSON to ``path`` via a temporary file and a rename (never half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(doc, f, separators=(",", ":"), allow_nan=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


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
# ``[epoch, cpu_pct]``) and "paced_classes" (``{class: [pacing_s, users, intended,
# achieved]}``, a snapshot that replaces the process's previous one).


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
        for epoch, pct in payload.get("cpu", ()):
            self.cpu.append({"epoch": epoch, "process": process, "cpu_pct": pct})
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
