"""A run folder on disk -> RunResult.

Two kinds of folder are understood: one written by ``paybench run`` (``run.json`` and the
exact histograms of ``paybench.hdr.json`` beside Locust's CSV files), and one written by
plain ``locust --csv PREFIX`` (only Locust's rounded figures: judged, but said to be so).
"""

from __future__ import annotations

import io
import math
import warnings
from pathlib import Path
from typing import NoReturn, cast

import pandas as pd

from harness import __version__
from harness.core.model import (
    AGGREGATE_KEY,
    FailureRecord,
    RequestStats,
    RunMeta,
    RunResult,
)
from harness.errors import ConfigError, FormatError
from harness.inputs import MAX_INT, MAX_METADATA_BYTES, Field, read_bytes, show
from harness.runfolder import HDR_FILE, LOCUST_STATS_CSV, RunRecord, load_run_record

# Locust's CSV percentile columns and the percentiles they hold.
_LOCUST_PERCENTILES = {
    "50%": 50.0,
    "66%": 66.0,
    "75%": 75.0,
    "80%": 80.0,
    "90%": 90.0,
    "95%": 95.0,
    "98%": 98.0,
    "99%": 99.0,
    "99.9%": 99.9,
    "99.99%": 99.99,
    "100%": 100.0,
}


def read_run(run_dir: Path, warmup_s: float | None = None) -> RunResult:
    """Read a run folder. ``warmup_s`` is skipped after all users have spawned."""
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: no such run folder; give a folder under reports/runs/")
    record = load_run_record(run_dir)
    meta = _meta(run_dir, record)
    locust_requests, locust_total, locust_failures = _read_locust_csv(run_dir)
    incomplete_reason = record.why_incomplete if record is not None else None
    incomplete = incomplete_reason is not None

    if (run_dir / HDR_FILE).exists():
        return _from_recording(
            run_dir, meta, warmup_s or 0.0, locust_requests, incomplete, incomplete_reason
        )
    if locust_total is None:
        stats_csv = _find_stats_csv(run_dir)
        if stats_csv is not None:
            raise FormatError(
                f"{stats_csv}: no {AGGREGATE_KEY} row, which Locust writes last; the file is "
                "cut short or damaged"
            )
        raise ConfigError(
            f"{run_dir}: neither {HDR_FILE} nor a Locust *_stats.csv found; "
            "give a folder written by `paybench run` or by `locust --csv PREFIX`"
        )
    return RunResult(
        meta=meta,
        requests=locust_requests,
        total=locust_total,
        failures=locust_failures,
        locust_requests=locust_requests,
        steady_end_s=locust_total.duration_s,
        incomplete=incomplete,
        incomplete_reason=incomplete_reason,
        exact=False,
    )


def read_meta(run_dir: Path) -> RunMeta:
    """Only the run's metadata (cheap: no histogram is decoded)."""
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: no such run folder; give a folder under reports/runs/")
    return _meta(run_dir, load_run_record(run_dir))


def _from_recording(
    run_dir: Path,
    meta: RunMeta,
    warmup_s: float,
    locust_requests: tuple[RequestStats, ...],
    incomplete: bool,
    incomplete_reason: str | None,
) -> RunResult:
    from harness.recording import generator_unreliable_reasons, load_recording

    # Lazy: each interval is checked as the windows decode it (once), the rest by timeline.
    rec = load_recording(run_dir / HDR_FILE, lazy=True)
    start = rec.test_start_epoch
    if start is None:
        raise FormatError(
            f"{run_dir / HDR_FILE}: test_start_epoch: missing, so no steady state can be "
            "found; the file is damaged or was edited"
        )
    stop = rec.test_stop_epoch
    if stop is None:
        # The plugin always records the stop: without it the window would be empty and
        # every budget "never ran" (exit 1) when the file is what is wrong.
        raise FormatError(
            f"{run_dir / HDR_FILE}: test_stop_epoch: missing, so the steady state has no "
            "end; the file is damaged or was edited"
        )
    spawned = rec.spawning_complete_epoch
    if spawned is None:
        # Never finished spawning (a load shape, or stopped early): judge the whole run.
        steady_start = start
    else:
        steady_start = min(spawned + warmup_s, stop)
    if stop - steady_start < rec.interval_s:
        # Too short a steady state to stand on its own: judge everything after the ramp.
        steady_start = (
            spawned if spawned is not None and stop - spawned >= rec.interval_s else start
        )
    ramp: tuple[RequestStats, ...] = ()
    if steady_start > start:
        ramp = rec.request_stats(start_epoch=start, end_epoch=steady_start)
    return RunResult(
        meta=meta,
        requests=rec.request_stats(start_epoch=steady_start, end_epoch=stop),
        total=rec.aggregate(start_epoch=steady_start, end_epoch=stop),
        ramp=ramp,
        steady_start_s=steady_start - start,
        steady_end_s=stop - start,
        timeline=rec.timeline(),
        failures=rec.failures(),
        locust_requests=locust_requests,
        incomplete=incomplete,
        incomplete_reason=incomplete_reason,
        unreliable_reasons=tuple(generator_unreliable_reasons(rec, steady_start, stop)),
        exact=True,
        # Its figures only (summary.json): no interval of a soak is decoded again for it.
        whole_run=rec.aggregate(intervals=False),
    )


def _meta(run_dir: Path, record: RunRecord | None) -> RunMeta:
    """The run's metadata from its checked run.json (a plain Locust folder has none: the
    folder name stands for the id)."""
    if record is None:
        return RunMeta(
            run_id=run_dir.name,
            profile=None,
            host="unknown",
            target="unknown",
            paybench_version=__version__,
        )
    return RunMeta(
        run_id=record.run_id,
        profile=record.profile,
        host=record.host,
        target=record.target,
        users=record.users,
        spawn_rate=record.spawn_rate,
        run_time_s=record.run_time_s,
        workers=record.workers,
        started_at=record.started_at,
        ended_at=record.ended_at,
        locust_version=record.locust_version,
        paybench_version=record.paybench_version,
        git_commit=record.git_commit,
        scenario_version=record.scenario_version,
        extra=dict(record.extra),
    )


def _find_stats_csv(run_dir: Path) -> Path | None:
    preferred = run_dir / LOCUST_STATS_CSV
    if preferred.exists():
        return preferred
    found = sorted(run_dir.glob("*_stats.csv"))
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise ConfigError(f"{run_dir}: several Locust stats files ({names}); keep one per folder")
    return found[0] if found else None


def _read_csv(path: Path, what: str) -> list[dict[str, str]]:
    """Every row of a Locust CSV as text, or FormatError: cell types are ours to check."""
    data = read_bytes(path, MAX_METADATA_BYTES)
    try:
        with warnings.catch_warnings():
            # pandas warns (rather than fails) on some damage, e.g. a row too long.
            warnings.simplefilter("error")
            df = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, encoding="utf-8")
    except (Warning, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        detail = " ".join(str(e).split())[:120]
        raise FormatError(f"{path}: not a Locust {what} CSV ({detail})") from None
    # dtype=str and a header row: every label and every cell is text, which pandas-stubs
    # cannot know from read_csv's signature.
    return cast(list[dict[str, str]], df.to_dict("records"))


class _Cells:
    """One row of a Locust CSV: cells read as the numbers Locust writes, or refused."""

    def __init__(self, path: Path, line: int, row: dict[str, str]) -> None:
        self.path, self.line, self.row = path, line, row

    def fail(self, column: str, what: str) -> NoReturn:
        raise FormatError(
            f"{self.path}: line {self.line}, column {column!r}: {what}; "
            "the file is damaged or was edited"
        )

    def _cell(self, column: str) -> str:
        value = self.row.get(column)
        # pandas fills the cells of a row cut short with NaN, whatever the dtype.
        return value if isinstance(value, str) else ""

    def text(self, column: str, required: bool = False) -> str:
        value = self._cell(column)
        if required and not value:
            self.fail(column, "empty")
        return Field(str(self.path), f"line {self.line}, column {column!r}").text(value)

    def count(self, column: str) -> int:
        value = self._cell(column)
        try:
            number = float(value)
        except ValueError:
            self.fail(column, f"expected a count, got {show(value)}")
        if not (math.isfinite(number) and number.is_integer() and 0 <= number <= MAX_INT):
            self.fail(column, f"{show(value)} is not a count")
        return int(number)

    def number(self, column: str) -> float | None:
        """A non-negative figure; Locust writes N/A (or nothing) where there is none."""
        value = self._cell(column).strip()
        if value in ("", "N/A"):
            return None
        try:
            number = float(value)
        except ValueError:
            self.fail(column, f"expected a number, got {show(value)}")
        if not math.isfinite(number) or number < 0:
            self.fail(column, f"{show(value)} is not a figure Locust writes")
        return number


def _read_locust_csv(
    run_dir: Path,
) -> tuple[tuple[RequestStats, ...], RequestStats | None, tuple[FailureRecord, ...]]:
    path = _find_stats_csv(run_dir)
    if path is None:
        return (), None, ()
    records = _read_csv(path, "stats")
    needed = {"Type", "Name", "Request Count", "Failure Count", "Average Response Time"}
    if missing := needed - set(records[0] if records else _csv_columns(path)):
        raise FormatError(f"{path}: not a Locust stats CSV; missing columns {sorted(missing)}")
    rows: list[RequestStats] = []
    total: RequestStats | None = None
    for line, rec in enumerate(records, start=2):
        cells = _Cells(path, line, rec)
        name = cells.text("Name", required=True)
        count = cells.count("Request Count")
        failures = cells.count("Failure Count")
        if failures > count:
            cells.fail("Failure Count", f"{failures} is more than the request count {count}")
        rps = cells.number("Requests/s") or 0.0
        stats = RequestStats(
            request_type="" if name == AGGREGATE_KEY else cells.text("Type"),
            name=name,
            count=count,
            failures=failures,
            duration_s=count / rps if rps > 0 else 0.0,
            avg_ms=cells.number("Average Response Time") if count else None,
            min_ms=cells.number("Min Response Time") if count else None,
            max_ms=cells.number("Max Response Time") if count else None,
            locust_percentiles_ms={
                p: v
                for col, p in _LOCUST_PERCENTILES.items()
                if (v := cells.number(col)) is not None and count
            },
            source="locust",
        )
        if stats.name == AGGREGATE_KEY:
            total = stats
        else:
            rows.append(stats)
    return tuple(rows), total, _read_locust_failures(path)


def _csv_columns(path: Path) -> list[str]:
    # A stats file with a header and no row: pandas gives no records to take the names from.
    first = read_bytes(path, MAX_METADATA_BYTES).decode("utf-8", "replace").partition("\n")[0]
    return [c.strip() for c in first.split(",")]


def _read_locust_failures(stats_csv: Path) -> tuple[FailureRecord, ...]:
    path = stats_csv.with_name(stats_csv.name.replace("_stats.csv", "_failures.csv"))
    if not path.exists():
        return ()
    records = _read_csv(path, "failures")
    if not records or not {"Method", "Name", "Error", "Occurrences"} <= set(records[0]):
        return ()
    failures = []
    for line, rec in enumerate(records, start=2):
        cells = _Cells(path, line, rec)
        failures.append(
            FailureRecord(
                request_key=f"{cells.text('Method')} {cells.text('Name')}",
                message=cells.text("Error"),
                count=cells.count("Occurrences"),
            )
        )
    return tuple(failures)
