"""The history of runs: an embedded SQLite database (``reports/history.sqlite`` by default).

Each run is stored once (keyed by its run id) with its metadata, its verdict, per request
name the steady-state metrics, and the encoded HDR histograms of the steady-state window
and of each interval, so that any percentile or confidence interval can be recomputed
later. Several processes may add runs at once (two CI jobs finishing together): the
database is in WAL mode, waits for locks (``busy_timeout``) and every write is one
``BEGIN IMMEDIATE`` transaction, so nothing is lost and no reader sees half a run.

Schema history (``PRAGMA user_version``; ``PRAGMA application_id`` marks our files):

1: ``runs`` and ``request_metrics`` (p50, p95, p99 only).
2: ``runs`` gains ended_at, steady_start_s, steady_end_s, incomplete_reason,
   unreliable_json, extra_json, verdict_json; ``request_metrics`` gains cut_off, p90_ms,
   p99_9_ms; new table ``histograms``. Runs migrated from 1 have no histograms: their
   percentiles are the stored ones and comparisons of them carry no confidence interval.
3: new tables ``regressions`` (the regression budgets each run broke, or rose beyond without
   significance, so that neither is ever a baseline) and ``baseline_decisions``
   (``paybench baseline accept|pin``). Runs migrated from 2 get them from their stored
   verdict.

A database of a newer schema is refused, never modified.

Which runs a regression budget compares with is ``harness.core.levels``' to say; the store
reads the comparable runs and decisions for it and answers with a ``Baseline``.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, get_args

from harness.core import levels
from harness.core import metrics as registry
from harness.core.evaluate import CANNOT_DETECT
from harness.core.model import (
    AGGREGATE_KEY,
    Baseline,
    BaselineDecision,
    OpenRegression,
    Outcome,
    RequestStats,
    RunMeta,
    RunResult,
    Verdict,
)
from harness.errors import ConfigError, FormatError, StorageError
from harness.inputs import Field, Obj, show
from harness.runfolder import write_error

DEFAULT_HISTORY = Path("reports/history.sqlite")
# Where a run an abort rule stopped says so in runs.extra_json (run.json's extra.abort).
ABORTED_PATH = "$.abort.aborted"
SCHEMA_VERSION = 4
APPLICATION_ID = 0x50424831  # "PBH1": a paybench history database
BUSY_TIMEOUT_MS = 60_000

# What the history keeps per request name and run is the metric registry's to say
# (harness.core.metrics: a metric with a column); the schema below holds each column, and
# a new stored metric comes with a migration. Stored percentiles, by budget metric name:
PERCENTILE_COLUMNS = {
    registry.percentile_name(p): str(registry.metric(registry.percentile_name(p)).column)
    for p in registry.STORED_PERCENTILES
}
# Every metric the history can give per request, by budget metric name -> column.
METRIC_COLUMNS = {m.name: str(m.column) for m in registry.stored_metrics()}
BASELINE_METRICS = tuple(METRIC_COLUMNS)
# Outcomes whose measurements do not stand for the system: never a baseline.
UNTRUSTED_OUTCOMES = ("INCOMPLETE", "UNRELIABLE")

_RUNS_V1 = """
CREATE TABLE runs (
    run_id TEXT PRIMARY KEY,
    started_at TEXT,
    profile TEXT,
    host TEXT NOT NULL,
    target TEXT NOT NULL,
    users INTEGER,
    spawn_rate REAL,
    run_time_s REAL,
    workers INTEGER NOT NULL,
    locust_version TEXT,
    paybench_version TEXT NOT NULL,
    git_commit TEXT,
    scenario_version TEXT,
    outcome TEXT,
    incomplete INTEGER NOT NULL,
    exact INTEGER NOT NULL,
    added_at TEXT NOT NULL
);
CREATE TABLE request_metrics (
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    request_key TEXT NOT NULL,
    request_type TEXT NOT NULL,
    name TEXT NOT NULL,
    count INTEGER NOT NULL,
    failures INTEGER NOT NULL,
    duration_s REAL NOT NULL,
    rps REAL NOT NULL,
    error_rate_pct REAL,
    avg_ms REAL,
    min_ms REAL,
    max_ms REAL,
    p50_ms REAL,
    p95_ms REAL,
    p99_ms REAL,
    PRIMARY KEY (run_id, request_key)
);
"""

_V1_TO_V2 = """
ALTER TABLE runs ADD COLUMN ended_at TEXT;
ALTER TABLE runs ADD COLUMN steady_start_s REAL NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN steady_end_s REAL NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN incomplete_reason TEXT;
ALTER TABLE runs ADD COLUMN unreliable_json TEXT NOT NULL DEFAULT '[]';
ALTER TABLE runs ADD COLUMN extra_json TEXT NOT NULL DEFAULT '{}';
ALTER TABLE runs ADD COLUMN verdict_json TEXT;
ALTER TABLE request_metrics ADD COLUMN cut_off INTEGER NOT NULL DEFAULT 0;
ALTER TABLE request_metrics ADD COLUMN p90_ms REAL;
ALTER TABLE request_metrics ADD COLUMN p99_9_ms REAL;
UPDATE runs SET steady_end_s = COALESCE((SELECT duration_s FROM request_metrics m
    WHERE m.run_id = runs.run_id AND m.request_key = 'Aggregated'), 0);
CREATE TABLE histograms (
    run_id TEXT NOT NULL,
    request_key TEXT NOT NULL,
    histogram TEXT NOT NULL,
    intervals_json TEXT NOT NULL,
    PRIMARY KEY (run_id, request_key),
    FOREIGN KEY (run_id, request_key) REFERENCES request_metrics(run_id, request_key)
        ON DELETE CASCADE
);
CREATE INDEX runs_by_profile ON runs(profile, started_at);
"""

# What SQLite says when the disk, not the database, is the problem (full, read-only, no
# permission to create the file or its journal).
_STORAGE_SIGNS = ("disk is full", "readonly database", "unable to open", "disk I/O error")
_HISTORY_OPTION = "--history"

_V2_TO_V3 = """
CREATE TABLE regressions (
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    request_key TEXT NOT NULL,
    metric TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('broken', 'rose')),
    PRIMARY KEY (run_id, request_key, metric)
);
CREATE TABLE baseline_decisions (
    decision_id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('accept', 'pin')),
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    from_run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    reason TEXT,
    decided_at TEXT NOT NULL,
    recorded_through INTEGER NOT NULL
);
"""


# Schema 4: the server metrics of a run, each server budget's measured value over the
# steady state (or the whole run, ``.run``), so that the history, trends and compare show
# them; one row per source and metric. IF NOT EXISTS: a file whose user_version was set
# back by hand may hold it already.
_V3_TO_V4 = """
CREATE TABLE IF NOT EXISTS server_metrics (
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    source TEXT NOT NULL,
    metric TEXT NOT NULL,
    unit TEXT NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (run_id, source, metric)
);
"""
SERVER_SUFFIX = " (server)"  # harness.core.server_eval.server_request_key
SERVER_KEY_PATHS = ("server.", "regressions.server.")  # where server budgets are written


def server_metric_rows(budget_rows: Sequence[Any]) -> list[tuple[str, str, str, float]]:
    """(source, metric, unit, value) of a verdict's server budgets that measured a value
    (``summary.budget_row`` rows); a metric budgeted twice (two limits) is one row. A server
    regression budget (``regressions.server.``) measures the same value, and gives it too."""
    out: dict[tuple[str, str], tuple[str, str, str, float]] = {}
    for row in budget_rows:
        if not isinstance(row, dict) or not str(row.get("key_path") or "").startswith(
            SERVER_KEY_PATHS
        ):
            continue
        key, metric, measured = row.get("request"), row.get("metric"), row.get("measured")
        if not isinstance(key, str) or not key.endswith(SERVER_SUFFIX):
            continue
        if not isinstance(metric, str):
            continue
        if not isinstance(measured, int | float) or isinstance(measured, bool):
            continue
        found = registry.lookup(metric)
        source = key[: -len(SERVER_SUFFIX)]
        out.setdefault(
            (source, metric), (source, metric, found.unit if found else "", float(measured))
        )
    return list(out.values())


def _server_from_verdicts(conn: sqlite3.Connection) -> None:
    """Schema 3 kept each verdict as JSON: its server budgets' values become rows."""
    rows = conn.execute("SELECT run_id, verdict_json FROM runs WHERE verdict_json IS NOT NULL")
    found: list[tuple[str, str, str, str, float]] = []
    for run_id, text in rows.fetchall():
        try:
            budgets = json.loads(text).get("budgets") or []
        except (ValueError, AttributeError):
            continue
        found.extend((run_id, *row) for row in server_metric_rows(budgets))
    conn.executemany("INSERT OR IGNORE INTO server_metrics VALUES (?, ?, ?, ?, ?)", found)


def _regressions_from_verdicts(conn: sqlite3.Connection) -> None:
    """Schema 2 kept each verdict as JSON: what its regression budgets said become rows."""
    rows = conn.execute("SELECT run_id, verdict_json FROM runs WHERE verdict_json IS NOT NULL")
    found: list[tuple[str, str, str, str]] = []
    for run_id, text in rows.fetchall():
        try:
            budgets = json.loads(text).get("budgets") or []
        except (ValueError, AttributeError):
            continue  # a verdict that is not ours to read keeps the run a plain one
        found.extend((run_id, *row) for row in _regression_rows(budgets))
    conn.executemany("INSERT OR IGNORE INTO regressions VALUES (?, ?, ?, ?)", found)


# Each entry takes the schema from version i + 1 to i + 2 (index 0: 1 -> 2): a script, or
# a function for what SQL alone cannot read (JSON written by an older paybench).
_MIGRATIONS: tuple[tuple[str | Callable[[sqlite3.Connection], None], ...], ...] = (
    (_V1_TO_V2,),
    (_V2_TO_V3, _regressions_from_verdicts),
    (_V3_TO_V4, _server_from_verdicts),
)


@dataclass(frozen=True)
class RunRow:
    """One line of ``paybench history list``: a run and its whole-run (aggregate) figures."""

    run_id: str
    started_at: str | None
    profile: str | None
    users: int | None
    target: str
    host: str
    scenario_version: str | None
    git_commit: str | None
    paybench_version: str
    outcome: str | None
    incomplete: bool
    duration_s: float
    requests: int
    failures: int
    error_rate_pct: float | None
    rps: float
    p95_ms: float | None
    regression: bool = False  # it broke a regression budget (harness.core.levels)
    seq: int = 0  # the order it was recorded in (BaselineDecision.recorded_through)
    rose: bool = False  # it rose beyond a regression budget, not significantly


@dataclass(frozen=True)
class RequestMetrics:
    """The stored steady-state metrics of one request name in one run."""

    run_id: str
    request_key: str
    count: int
    failures: int
    duration_s: float
    rps: float
    error_rate_pct: float | None
    avg_ms: float | None
    min_ms: float | None
    max_ms: float | None
    p50_ms: float | None
    p90_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    p99_9_ms: float | None

    def value(self, metric: str) -> float | None:
        """The value of a budget metric name (``p95``, ``error_rate``, ``rps`` ...)."""
        v = getattr(self, _column(metric))
        return None if v is None else float(v)


@dataclass(frozen=True)
class ServerMetric:
    """One server metric of one run: a server budget's measured value (``cpu_percent`` of
    ``target_process``, in ``%``)."""

    run_id: str
    source: str
    metric: str
    unit: str
    value: float

    @property
    def request_key(self) -> str:
        """As the verdict table names it: ``target_process (server)``."""
        return f"{self.source}{SERVER_SUFFIX}"


@dataclass(frozen=True)
class StoredRun:
    """A run read back from the history: the RunResult (histograms decoded) and its verdict."""

    result: RunResult
    outcome: str | None
    verdict_reasons: tuple[str, ...] = ()
    server: tuple[ServerMetric, ...] = ()

    @property
    def run_id(self) -> str:
        return self.result.meta.run_id


@dataclass(frozen=True)
class Series:
    """One metric of one request name across runs, oldest first (None: not measured)."""

    request_key: str
    metric: str
    run_ids: tuple[str, ...]
    values: tuple[float | None, ...]


@dataclass(frozen=True)
class ImportedRun:
    run_id: str
    path: Path
    added: bool  # False: the run was already in the history


def _regression_rows(budget_rows: Sequence[Any]) -> list[tuple[str, str, str]]:
    """(request key, metric, kind) of what a verdict's regression budgets say of the level.

    Rows of summary.json's verdict (``summary.budget_row``) of regression budgets (written
    ``+...``, always) with a measured value: ``broken`` when the budget failed, ``rose``
    when it held (or was inconclusive) with the value above its limit, the baseline plus
    the allowed rise: a rise that was not significant. A budget that could not be measured
    breaks the run, but says nothing of a level; nor does a run too short to resolve the
    allowed rise (``CANNOT_DETECT``): its rise is as likely its own noise.
    """
    out = []
    for row in budget_rows:
        # A server metric that is better higher (cache hit rate) regresses by a fall: "-5 points".
        if not isinstance(row, dict) or not str(row.get("budget") or "").startswith(("+", "-")):
            continue
        key, metric, measured = row.get("request"), row.get("metric"), row.get("measured")
        if not isinstance(key, str) or not isinstance(metric, str):
            continue
        if not isinstance(measured, int | float) or isinstance(measured, bool):
            continue
        limit = row.get("limit")
        found = registry.lookup(metric)
        lower = found is not None and not found.higher_is_worse
        if row.get("status") == "fail":
            out.append((key, metric, "broken"))
        elif (
            row.get("status") in ("pass", "inconclusive")
            and isinstance(limit, int | float)
            and (measured < limit if lower else measured > limit)
            and CANNOT_DETECT not in str(row.get("message") or "")
        ):
            out.append((key, metric, "rose"))
    return out


def _column(metric: str) -> str:
    try:
        return METRIC_COLUMNS[metric]
    except KeyError:
        known = ", ".join(METRIC_COLUMNS)
        raise ConfigError(f"unknown metric {metric!r}; the history keeps {known}") from None


def _encode(histogram: Any) -> str:
    from harness.core.stats import encode_histogram

    return encode_histogram(histogram)


def _decode(text: str) -> Any:
    from harness.core.stats import decode_histogram

    try:
        return decode_histogram(text)
    except ValueError as e:
        raise FormatError(f"history holds a damaged histogram ({e})") from None


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class HistoryStore:
    """The history database at ``path`` (created with its folder when missing).

    Every method opens its own short connection: a store object can be kept for a whole
    command, used from several processes at once, and needs no closing.
    """

    def __init__(self, path: Path = DEFAULT_HISTORY, *, create: bool = True) -> None:
        self.path = Path(path)
        if not create and not self.path.exists():
            raise ConfigError(
                f"{self.path}: no history here yet; `paybench run` records runs in it, "
                "`paybench history import RUN_DIR` adds copied run folders"
            )
        self._ready = False

    # -- connection and schema -----------------------------------------------------------

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        if self.path.is_dir():
            raise ConfigError(f"{self.path}: is a folder, not a history database; pass a file")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise write_error(self.path.parent, e, _HISTORY_OPTION) from None
        try:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        except sqlite3.OperationalError as e:
            raise self._storage_error(e) from None
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA foreign_keys = ON")
            if not self._ready:
                self._ensure_schema(conn)
                self._ready = True
            yield conn
        except sqlite3.DatabaseError as e:
            if "not a database" in str(e) or "malformed" in str(e):
                raise FormatError(
                    f"{self.path}: not a paybench history database ({e}); move it away "
                    "or give another history file"
                ) from None
            if any(sign in str(e) for sign in _STORAGE_SIGNS):
                raise self._storage_error(e) from None
            raise
        finally:
            conn.close()

    def _storage_error(self, e: sqlite3.Error) -> StorageError:
        return StorageError(
            f"cannot write the history {self.path} ({e}); free space on its disk or make "
            f"it and its folder writable, or give another {_HISTORY_OPTION}"
        )

    def _ensure_schema(self, conn: sqlite3.Connection) -> None:
        version = self._check_version(conn)
        if version == SCHEMA_VERSION:
            return
        # WAL lets readers go on while one process writes; it is a property of the file.
        self._set_wal(conn)
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have created or migrated the file while we waited.
            version = self._check_version(conn)
            if version == 0:
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                self._run_script(conn, _RUNS_V1)
                version = 1
            for steps in _MIGRATIONS[version - 1 :]:
                for step in steps:
                    if callable(step):
                        step(conn)
                    else:
                        self._run_script(conn, step)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    @staticmethod
    def _set_wal(conn: sqlite3.Connection) -> None:
        """Switching to WAL takes the file's exclusive lock, and SQLite does not wait on
        busy_timeout for it: while another process creates the same history it answers
        "database is locked" at once. Try again, within the same bound as every wait."""
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        while True:
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def _check_version(self, conn: sqlite3.Connection) -> int:
        # One statement, so one snapshot: read one by one, the three could straddle another
        # process creating the schema (no application id yet, but its tables already).
        version, app_id, tables = conn.execute(
            "SELECT (SELECT user_version FROM pragma_user_version),"
            " (SELECT application_id FROM pragma_application_id),"
            " (SELECT count(*) FROM sqlite_master)"
        ).fetchone()
        if app_id != APPLICATION_ID and (tables or version):
            raise FormatError(
                f"{self.path}: not a paybench history database (it holds other tables); "
                "give another history file"
            )
        if version > SCHEMA_VERSION:
            raise FormatError(
                f"{self.path}: history schema {version} is newer than this paybench "
                f"({SCHEMA_VERSION}); upgrade paybench"
            )
        return int(version)

    @staticmethod
    def _run_script(conn: sqlite3.Connection, script: str) -> None:
        # executescript() would COMMIT the open transaction; run statement by statement.
        for statement in script.split(";"):
            if statement.strip():
                conn.execute(statement)

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as conn:
            # IMMEDIATE takes the write lock up front: a deferred transaction that upgrades
            # later can fail with SQLITE_BUSY without waiting on busy_timeout.
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @property
    def schema_version(self) -> int:
        with self._connect() as conn:
            return int(conn.execute("PRAGMA user_version").fetchone()[0])

    # -- writing ---------------------------------------------------------------------------

    def add_run(self, result: RunResult, verdict: Verdict | None) -> bool:
        """Record a run; False (and nothing changed) when its run id is already stored."""
        outcome = None
        verdict_json = None
        rows: list[dict[str, Any]] = []
        if verdict is not None:
            from harness.summary import budget_row

            outcome = verdict.outcome
            rows = [budget_row(b) for b in verdict.results]
            verdict_json = json.dumps(
                {"outcome": verdict.outcome, "reasons": list(verdict.reasons), "budgets": rows},
                default=str,
            )
        return self._add(
            result, outcome, verdict_json, _regression_rows(rows), server=server_metric_rows(rows)
        )

    def _add(
        self,
        result: RunResult,
        outcome: str | None,
        verdict_json: str | None,
        regressions: Sequence[tuple[str, str, str]] = (),
        *,
        server: Sequence[tuple[str, str, str, float]] = (),
    ) -> bool:
        m = result.meta
        if outcome is None and result.incomplete:
            outcome = "INCOMPLETE"
        rows = [result.total, *(r for r in result.requests if r.key != AGGREGATE_KEY)]
        # Encode before taking the write lock: the lock is held for the inserts only.
        encoded = [
            (r.key, _encode(r.histogram), json.dumps([_encode(h) for h in r.interval_histograms]))
            for r in rows
            if r.histogram is not None
        ]
        with self._write() as conn:
            cur = conn.execute(
                """INSERT OR IGNORE INTO runs (run_id, started_at, ended_at, profile, host,
                   target, users, spawn_rate, run_time_s, workers, locust_version,
                   paybench_version, git_commit, scenario_version, outcome, incomplete,
                   incomplete_reason, exact, steady_start_s, steady_end_s, unreliable_json,
                   extra_json, verdict_json, added_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,
                           ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    m.run_id,
                    m.started_at,
                    m.ended_at,
                    m.profile,
                    m.host,
                    m.target,
                    m.users,
                    m.spawn_rate,
                    m.run_time_s,
                    m.workers,
                    m.locust_version,
                    m.paybench_version,
                    m.git_commit,
                    m.scenario_version,
                    outcome,
                    int(result.incomplete),
                    result.incomplete_reason,
                    int(result.exact),
                    result.steady_start_s,
                    result.steady_end_s,
                    json.dumps(list(result.unreliable_reasons)),
                    json.dumps(dict(m.extra), default=str),
                    verdict_json,
                    _now_iso(),
                ),
            )
            if cur.rowcount == 0:
                return False
            conn.executemany(
                f"""INSERT INTO request_metrics (run_id, request_key, request_type, name,
                   count, failures, cut_off, duration_s, rps, error_rate_pct, avg_ms, min_ms,
                   max_ms, {", ".join(PERCENTILE_COLUMNS.values())})
                   VALUES ({", ".join("?" * (13 + len(PERCENTILE_COLUMNS)))})""",
                [
                    (
                        m.run_id,
                        r.key,
                        r.request_type,
                        r.name,
                        r.count,
                        r.failures,
                        r.cut_off,
                        r.duration_s,
                        r.rps,
                        r.error_rate_pct,
                        r.avg_ms,
                        r.min_ms,
                        r.max_ms,
                        *(r.percentile_ms(p) for p in registry.STORED_PERCENTILES),
                    )
                    for r in rows
                ],
            )
            conn.executemany(
                "INSERT INTO histograms (run_id, request_key, histogram, intervals_json) "
                "VALUES (?, ?, ?, ?)",
                [(m.run_id, key, h, iv) for key, h, iv in encoded],
            )
            conn.executemany(
                "INSERT OR IGNORE INTO regressions (run_id, request_key, metric, kind) "
                "VALUES (?, ?, ?, ?)",
                [(m.run_id, *row) for row in regressions],
            )
            conn.executemany(
                "INSERT OR IGNORE INTO server_metrics (run_id, source, metric, unit, value) "
                "VALUES (?, ?, ?, ?, ?)",
                [(m.run_id, *row) for row in server],
            )
        return True

    def import_run_dir(self, run_dir: Path, warmup_s: float | None = None) -> ImportedRun:
        """Add a run folder (a CI artefact copied here); its verdict from summary.json."""
        from harness.results import read_run
        from harness.summary import SUMMARY_FILE

        result = read_run(run_dir, warmup_s=warmup_s)
        outcome = verdict_json = None
        said: list[tuple[str, str, str]] = []
        server: list[tuple[str, str, str, float]] = []
        if (run_dir / SUMMARY_FILE).exists():
            outcome, verdict = _imported_verdict(run_dir / SUMMARY_FILE)
            verdict_json = json.dumps(verdict, default=str)
            said = _regression_rows(verdict.get("budgets") or [])
            server = server_metric_rows(verdict.get("budgets") or [])
        added = self._add(result, outcome, verdict_json, said, server=server)
        return ImportedRun(run_id=result.meta.run_id, path=run_dir, added=added)

    # -- reading ---------------------------------------------------------------------------

    def list_runs(self, profile: str | None = None, last: int | None = None) -> list[RunRow]:
        """Runs oldest first; ``last``: only the most recent ``last`` of them."""
        args: list[str | int]
        where, args = ("WHERE r.profile = ?", [profile]) if profile is not None else ("", [])
        query = f"""
            SELECT r.run_id, r.started_at, r.profile, r.users, r.target, r.host,
                   r.scenario_version, r.git_commit, r.paybench_version, r.outcome,
                   r.incomplete, COALESCE(m.duration_s, r.steady_end_s - r.steady_start_s),
                   COALESCE(m.count, 0), COALESCE(m.failures, 0), m.error_rate_pct,
                   COALESCE(m.rps, 0), m.p95_ms,
                   EXISTS (SELECT 1 FROM regressions g
                           WHERE g.run_id = r.run_id AND g.kind = 'broken'), r.rowid,
                   EXISTS (SELECT 1 FROM regressions g
                           WHERE g.run_id = r.run_id AND g.kind = 'rose')
            FROM runs r LEFT JOIN request_metrics m
              ON m.run_id = r.run_id AND m.request_key = '{AGGREGATE_KEY}'
            {where}
            ORDER BY r.started_at DESC, r.run_id DESC
        """
        if last is not None:
            if last < 1:
                raise ConfigError(f"--last must be at least 1, got {last}")
            query += " LIMIT ?"
            args.append(last)
        with self._connect() as conn:
            rows = conn.execute(query, args).fetchall()
        return [
            # One tuple: mypy would spread a star argument over every field.
            RunRow(
                *(*row[:10], bool(row[10]), *row[11:-3], bool(row[-3]), int(row[-2]), bool(row[-1]))
            )
            for row in reversed(rows)
        ]

    def profiles(self) -> list[str]:
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT DISTINCT profile FROM runs WHERE profile IS NOT NULL ORDER BY profile"
            ).fetchall()
        return [r[0] for r in rows]

    def resolve_run_id(self, ref: str) -> str:
        """A run id, or a unique prefix of one (like git); ConfigError otherwise."""
        with self._connect() as conn:
            exact = conn.execute("SELECT run_id FROM runs WHERE run_id = ?", (ref,)).fetchone()
            if exact:
                return str(exact[0])
            like = ref.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            found = [
                r[0]
                for r in conn.execute(
                    "SELECT run_id FROM runs WHERE run_id LIKE ? ESCAPE '\\' ORDER BY run_id "
                    "LIMIT 6",
                    (like,),
                )
            ]
        if not found:
            raise ConfigError(
                f"no run {ref!r} in {self.path}; `paybench history list` shows the run ids"
            )
        if len(found) > 1:
            shown = ", ".join(found[:5]) + (", ..." if len(found) > 5 else "")
            raise ConfigError(
                f"run id {ref!r} is ambiguous in {self.path} ({shown}); give more of it"
            )
        return str(found[0])

    def get_run(self, run_id: str) -> StoredRun:
        """The stored run ``run_id`` (or a unique prefix), histograms decoded."""
        run_id = self.resolve_run_id(run_id)
        with self._connect() as conn:
            conn.row_factory = sqlite3.Row
            run = conn.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            metrics = conn.execute(
                "SELECT * FROM request_metrics WHERE run_id = ? ORDER BY rowid", (run_id,)
            ).fetchall()
            hists = {
                r["request_key"]: (r["histogram"], r["intervals_json"])
                for r in conn.execute("SELECT * FROM histograms WHERE run_id = ?", (run_id,))
            }
        meta = RunMeta(
            run_id=run["run_id"],
            profile=run["profile"],
            host=run["host"],
            target=run["target"],
            users=run["users"],
            spawn_rate=run["spawn_rate"],
            run_time_s=run["run_time_s"],
            workers=run["workers"],
            started_at=run["started_at"],
            ended_at=run["ended_at"],
            locust_version=run["locust_version"],
            paybench_version=run["paybench_version"],
            git_commit=run["git_commit"],
            scenario_version=run["scenario_version"],
            extra=json.loads(run["extra_json"]),
        )
        requests: list[RequestStats] = []
        total: RequestStats | None = None
        for m in metrics:
            stats = _request_stats(m, hists.get(m["request_key"]))
            if m["request_key"] == AGGREGATE_KEY:
                total = stats
            else:
                requests.append(stats)
        if total is None:  # a run with no requests at all
            total = RequestStats("", AGGREGATE_KEY, 0, 0, 0.0, None, None, None)
        reasons = ()
        if run["verdict_json"]:
            reasons = tuple(json.loads(run["verdict_json"]).get("reasons") or ())
        result = RunResult(
            meta=meta,
            requests=tuple(requests),
            total=total,
            steady_start_s=run["steady_start_s"],
            steady_end_s=run["steady_end_s"],
            incomplete=bool(run["incomplete"]),
            incomplete_reason=run["incomplete_reason"],
            unreliable_reasons=tuple(json.loads(run["unreliable_json"])),
            exact=bool(run["exact"]),
        )
        return StoredRun(
            result=result,
            outcome=run["outcome"],
            verdict_reasons=reasons,
            server=tuple(self.server_metrics([run_id])),
        )

    def request_metrics(self, run_ids: Sequence[str]) -> list[RequestMetrics]:
        """The stored metrics of every request name of the given runs."""
        names = [f.name for f in fields(RequestMetrics)]
        out: list[RequestMetrics] = []
        with self._connect() as conn:
            # Chunks stay below SQLite's limit on host parameters.
            for i in range(0, len(run_ids), 500):
                chunk = list(run_ids[i : i + 500])
                marks = ",".join("?" * len(chunk))
                out.extend(
                    RequestMetrics(*row)
                    for row in conn.execute(
                        f"SELECT {', '.join(names)} FROM request_metrics WHERE run_id IN ({marks})",
                        chunk,
                    )
                )
        return out

    def server_metrics(self, run_ids: Sequence[str]) -> list[ServerMetric]:
        """The stored server metrics of the given runs, by run, source and metric."""
        out: list[ServerMetric] = []
        with self._connect() as conn:
            for i in range(0, len(run_ids), 500):
                chunk = list(run_ids[i : i + 500])
                marks = ",".join("?" * len(chunk))
                out.extend(
                    ServerMetric(*row)
                    for row in conn.execute(
                        "SELECT run_id, source, metric, unit, value FROM server_metrics "
                        f"WHERE run_id IN ({marks}) ORDER BY run_id, rowid",
                        chunk,
                    )
                )
        return out

    def server_series(
        self, profile: str | None, source: str, metric: str, last: int | None = None
    ) -> Series:
        """A server metric (``cpu_percent`` of ``target_process``) over the runs of
        ``profile``, oldest first; its ``request_key`` is ``target_process (server)``."""
        runs = self.list_runs(profile=profile, last=last)
        ids = [r.run_id for r in runs]
        by_run = {
            m.run_id: m.value
            for m in self.server_metrics(ids)
            if (m.source, m.metric) == (source, metric)
        }
        return Series(
            request_key=f"{source}{SERVER_SUFFIX}",
            metric=metric,
            run_ids=tuple(ids),
            values=tuple(by_run.get(i) for i in ids),
        )

    def series(
        self, profile: str | None, request_key: str, metric: str, last: int | None = None
    ) -> Series:
        """``metric`` of ``request_key`` over the runs of ``profile``, oldest first."""
        column = _column(metric)
        runs = self.list_runs(profile=profile, last=last)
        ids = [r.run_id for r in runs]
        by_run = {
            m.run_id: getattr(m, column)
            for m in self.request_metrics(ids)
            if m.request_key == request_key
        }
        return Series(
            request_key=request_key,
            metric=metric,
            run_ids=tuple(ids),
            values=tuple(None if by_run.get(i) is None else float(by_run[i]) for i in ids),
        )

    def _comparable(
        self,
        conn: sqlite3.Connection,
        *,
        profile: str | None,
        users: int | None,
        scenario_version: str | None,
        exclude_run_id: str | None = None,
        target: str | None = None,
        host: str | None = None,
        before: str | None = None,
    ) -> list[levels.LevelRun]:
        """The comparable runs a baseline may come from, oldest first, with what each broke.

        Incomplete and unreliable runs are left out: their figures do not stand for the
        system, so they are neither a baseline nor a regression; nor are runs an abort rule
        stopped (run.json's ``extra.abort.aborted``): they measured a system in gross breach
        for part of a run.
        """
        clauses = [
            "r.profile IS ?",
            "r.users IS ?",
            "r.scenario_version IS ?",
            "r.incomplete = 0",
            f"COALESCE(json_extract(r.extra_json, '{ABORTED_PATH}'), 0) = 0",
            f"COALESCE(r.outcome, '') NOT IN ({','.join('?' * len(UNTRUSTED_OUTCOMES))})",
        ]
        args: list[Any] = [profile, users, scenario_version, *UNTRUSTED_OUTCOMES]
        if exclude_run_id is not None:
            clauses.append("r.run_id != ?")
            args.append(exclude_run_id)
        if target is not None:
            clauses.append("r.target = ?")
            args.append(target)
            if target == "external" and host is not None:
                clauses.append("r.host = ?")
                args.append(host)
        if before is not None:
            clauses.append("r.started_at < ?")
            args.append(before)
        query = (
            f"SELECT r.run_id, r.rowid FROM runs r WHERE {' AND '.join(clauses)} "
            "ORDER BY r.started_at, r.run_id"
        )
        rows = conn.execute(query, args).fetchall()
        said: dict[tuple[str, str], set[tuple[str, str]]] = {}  # (run, kind) -> budgets
        ids = [row[0] for row in rows]
        # Chunks stay below SQLite's limit on host parameters.
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            for run_id, key, metric, kind in conn.execute(
                "SELECT run_id, request_key, metric, kind FROM regressions "
                f"WHERE run_id IN ({marks})",
                chunk,
            ):
                said.setdefault((run_id, kind), set()).add((key, metric))
        return [
            levels.LevelRun(
                run_id,
                int(seq),
                frozenset(said.get((run_id, "broken"), ())),
                frozenset(said.get((run_id, "rose"), ())),
            )
            for run_id, seq in rows
        ]

    @staticmethod
    def _decisions(conn: sqlite3.Connection) -> list[BaselineDecision]:
        rows = conn.execute(
            "SELECT decision_id, kind, run_id, from_run_id, reason, decided_at, "
            "recorded_through FROM baseline_decisions ORDER BY decision_id"
        ).fetchall()
        return [BaselineDecision(*row) for row in rows]

    def decisions(self, profile: str | None = None) -> list[BaselineDecision]:
        """Every accept and pin, oldest first; ``profile``: only those on its runs."""
        with self._connect() as conn:
            found = self._decisions(conn)
            if profile is None:
                return found
            ids = {
                row[0]
                for row in conn.execute("SELECT run_id FROM runs WHERE profile IS ?", (profile,))
            }
        return [d for d in found if d.from_run_id in ids]

    def level_history(
        self, result: RunResult
    ) -> tuple[list[levels.LevelRun], list[BaselineDecision]]:
        """The comparable runs before ``result`` (oldest first) and the decisions on them."""
        m = result.meta
        with self._connect() as conn:
            runs = self._comparable(
                conn,
                profile=m.profile,
                users=m.users,
                scenario_version=m.scenario_version,
                exclude_run_id=m.run_id,
                target=m.target,
                host=m.host,
                before=m.started_at,
            )
            ids = {r.run_id for r in runs}
            found = [d for d in self._decisions(conn) if d.from_run_id in ids]
        return runs, found

    def baseline(
        self,
        *,
        profile: str | None,
        users: int | None,
        scenario_version: str | None,
        n: int = 5,
        exclude_run_id: str | None = None,
        target: str | None = None,
        host: str | None = None,
        before: str | None = None,
    ) -> Baseline | None:
        """The baseline of the next comparable run; None when there is none yet.

        Comparable: the same profile, user count and scenario version, and, when given,
        the same target kind (``reference``/``external``) and, for an external target, the
        same host. ``before`` (ISO time) keeps runs started earlier. Incomplete and
        unreliable runs never serve. Of the rest, ``harness.core.levels.select_baseline``
        picks: the last ``n`` that broke no regression budget, since the level someone
        accepted (or the pinned run and the first runs after the pin); and it names the
        regressions still open, whose runs' values come with the Baseline.
        """
        if n < 1:
            raise ConfigError(f"baseline_runs must be at least 1, got {n}")
        with self._connect() as conn:
            runs = self._comparable(
                conn,
                profile=profile,
                users=users,
                scenario_version=scenario_version,
                exclude_run_id=exclude_run_id,
                target=target,
                host=host,
                before=before,
            )
            comparable = {r.run_id for r in runs}
            decisions = [d for d in self._decisions(conn) if d.from_run_id in comparable]
        chosen = levels.select_baseline(runs, decisions, n)
        decision = chosen.decision
        ids = list(chosen.run_ids)
        if not ids:
            return None
        streaks = {
            run_id
            for found in (chosen.open, chosen.rising)
            for stretch in found.values()
            for run_id in stretch
        }
        stored = self.request_metrics(sorted(set(ids) | streaks))
        by_run: dict[str, dict[str, RequestMetrics]] = {}
        for row in stored:
            by_run.setdefault(row.run_id, {})[row.request_key] = row
        per_key: dict[str, dict[str, list[float]]] = {}
        for run_id in ids:
            for key, row in by_run.get(run_id, {}).items():
                metrics = per_key.setdefault(key, {})
                for metric in BASELINE_METRICS:
                    v = row.value(metric)
                    if v is not None:
                        metrics.setdefault(metric, []).append(v)
        # Server regression budgets (harness.core.server_regressions) read the server
        # metrics, keyed as the verdict names them: ("target_process (server)", metric).
        server_by_run: dict[str, dict[tuple[str, str], float]] = {}
        for sm in self.server_metrics(sorted(set(ids) | streaks)):
            server_by_run.setdefault(sm.run_id, {})[sm.request_key, sm.metric] = sm.value
        for run_id in ids:
            for (key, metric), value in server_by_run.get(run_id, {}).items():
                per_key.setdefault(key, {}).setdefault(metric, []).append(value)

        def stored_value(run_id: str, key: str, metric: str) -> float | None:
            if metric not in METRIC_COLUMNS:
                return server_by_run.get(run_id, {}).get((key, metric))
            rm = by_run.get(run_id, {}).get(key)
            return None if rm is None else rm.value(metric)

        open_regressions: dict[str, dict[str, OpenRegression]] = {}
        for (key, metric), stretch in chosen.open.items():
            values = [
                v for run_id in stretch if (v := stored_value(run_id, key, metric)) is not None
            ]
            if values:
                open_regressions.setdefault(key, {})[metric] = OpenRegression(
                    stretch[0], tuple(values)
                )
        rising: dict[str, dict[str, tuple[float, ...]]] = {}
        for (key, metric), stretch in chosen.rising.items():
            rose = tuple(
                v for run_id in stretch if (v := stored_value(run_id, key, metric)) is not None
            )
            if rose:
                rising.setdefault(key, {})[metric] = rose
        left_out = sum(
            1
            for r in runs
            if (r.regressions or r.rising)
            and r.run_id not in chosen.run_ids
            and r.seq > (decision.recorded_through if decision is not None else -1)
        )
        where = [f"profile {profile}", f"{users} users", f"scenario {scenario_version}"]
        if target is not None:
            where.append(f"{target} target")
            if target == "external" and host is not None:
                where.append(f"host {host}")
        return Baseline(
            description=_describe(ids, n, where, decision, left_out),
            run_ids=tuple(ids),
            values={k: {m: tuple(v) for m, v in ms.items()} for k, ms in per_key.items()},
            open_regressions=open_regressions,
            rising=rising,
        )

    def baseline_for(self, result: RunResult, n: int = 5) -> Baseline | None:
        """The baseline of ``result``: earlier comparable runs (see ``baseline``)."""
        m = result.meta
        return self.baseline(
            profile=m.profile,
            users=m.users,
            scenario_version=m.scenario_version,
            n=n,
            exclude_run_id=m.run_id,
            target=m.target,
            host=m.host,
            before=m.started_at,
        )

    def decide(
        self, kind: Literal["accept", "pin"], run_ref: str, reason: str | None = None
    ) -> tuple[BaselineDecision, int]:
        """Record ``paybench baseline accept|pin``: the decision and how many regression runs
        of the accepted level it covers (harness.core.levels says what each one means)."""
        run_id = self.resolve_run_id(run_ref)
        with self._write() as conn:
            row = conn.execute(
                "SELECT profile, users, scenario_version, target, host, incomplete, outcome, "
                f"COALESCE(json_extract(extra_json, '{ABORTED_PATH}'), 0) "
                "FROM runs WHERE run_id = ?",
                (run_id,),
            ).fetchone()
            profile, users, scenario, target, host, incomplete, outcome, aborted = row
            if incomplete or aborted or outcome in UNTRUSTED_OUTCOMES:
                state = "incomplete" if incomplete else "aborted" if aborted else outcome
                raise ConfigError(
                    f"run {run_id} is {state}: its figures do not stand for the system, so "
                    f"its level cannot be {'accepted' if kind == 'accept' else 'pinned'}; "
                    "name a judged run (`paybench history list` shows them)"
                )
            runs = self._comparable(
                conn,
                profile=profile,
                users=users,
                scenario_version=scenario,
                target=target,
                host=host,
            )
            ids = {r.run_id for r in runs}
            decisions = [d for d in self._decisions(conn) if d.from_run_id in ids]
            start = run_id
            if kind == "accept":
                start = levels.regression_start(runs, run_id, decisions)
            through = int(conn.execute("SELECT COALESCE(MAX(rowid), 0) FROM runs").fetchone()[0])
            decided_at = _now_iso()
            cur = conn.execute(
                "INSERT INTO baseline_decisions (kind, run_id, from_run_id, reason, decided_at, "
                "recorded_through) VALUES (?, ?, ?, ?, ?, ?)",
                (kind, run_id, start, reason, decided_at, through),
            )
            decision = BaselineDecision(
                int(cur.lastrowid or 0), kind, run_id, start, reason, decided_at, through
            )
        index = next(i for i, r in enumerate(runs) if r.run_id == start)
        covered = sum(1 for r in runs[index:] if r.regressions and r.seq <= through)
        return decision, covered

    def export(
        self,
        fmt: Literal["csv", "jsonl"] = "csv",
        profile: str | None = None,
        last: int | None = None,
    ) -> str:
        """Runs x request names, one row each: CSV with a header, or JSON lines.

        Columns: ``EXPORT_COLUMNS`` (run metadata, then the request's metrics).
        """
        runs = {r.run_id: r for r in self.list_runs(profile=profile, last=last)}
        metrics = self.request_metrics(list(runs))
        order = {run_id: i for i, run_id in enumerate(runs)}
        metrics.sort(key=lambda m: (order[m.run_id], m.request_key != AGGREGATE_KEY, m.request_key))
        rows = [_export_row(runs[m.run_id], m) for m in metrics]
        if fmt == "jsonl":
            return "".join(json.dumps(row) + "\n" for row in rows)
        if fmt != "csv":
            raise ConfigError(f"unknown export format {fmt!r}; use csv or jsonl")
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=EXPORT_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buf.getvalue()


def _describe(
    ids: Sequence[str],
    n: int,
    where: Sequence[str],
    decision: BaselineDecision | None,
    left_out: int,
) -> str:
    """What the baseline is, in words: which runs, and the decision it stands on."""
    settings = ", ".join(where)
    span = ids[0] if len(ids) == 1 else f"{ids[0]} .. {ids[-1]}"
    when = decision.decided_at[:16].replace("T", " ") + " UTC" if decision else ""
    because = f": {decision.reason}" if decision is not None and decision.reason else ""
    if decision is not None and decision.kind == "pin":
        more = len(ids) - 1
        level = f" and {more} comparable run{'s' if more > 1 else ''} of its level" if more else ""
        return f"the pinned run {decision.run_id}{level} ({settings}; pinned {when}): {span}"
    plural = "s" if len(ids) > 1 else ""
    short = "" if len(ids) == n else f", {n} wanted"
    text = f"the last {len(ids)} comparable run{plural} ({settings}{short}): {span}"
    if left_out:
        text += f"; {left_out} regression run{'s' if left_out > 1 else ''} left out"
    if decision is not None:
        text += f"; level accepted {when} from {decision.from_run_id}{because}"
    return text


EXPORT_COLUMNS = (
    "run_id",
    "started_at",
    "profile",
    "users",
    "target",
    "host",
    "scenario_version",
    "git_commit",
    "paybench_version",
    "outcome",
    "request",
    "count",
    "failures",
    "error_rate_pct",
    "rps",
    "avg_ms",
    "min_ms",
    "max_ms",
    "p50_ms",
    "p90_ms",
    "p95_ms",
    "p99_ms",
    "p99_9_ms",
)


def _export_row(run: RunRow, m: RequestMetrics) -> dict[str, Any]:
    row: dict[str, Any] = {
        "run_id": run.run_id,
        "started_at": run.started_at,
        "profile": run.profile,
        "users": run.users,
        "target": run.target,
        "host": run.host,
        "scenario_version": run.scenario_version,
        "git_commit": run.git_commit,
        "paybench_version": run.paybench_version,
        "outcome": run.outcome,
        "request": m.request_key,
        "count": m.count,
        "failures": m.failures,
    }
    for column in EXPORT_COLUMNS[13:]:
        v = getattr(m, column)
        row[column] = None if v is None else round(float(v), 4)
    return row


def _request_stats(row: sqlite3.Row, hist: tuple[str, str] | None) -> RequestStats:
    histogram = None
    intervals: tuple[Any, ...] = ()
    if hist is not None:
        histogram = _decode(hist[0])
        intervals = tuple(_decode(s) for s in json.loads(hist[1]))
    stored = {
        p: row[c]
        for p, c in zip(registry.STORED_PERCENTILES, PERCENTILE_COLUMNS.values(), strict=True)
        if row[c] is not None
    }
    return RequestStats(
        request_type=row["request_type"],
        name=row["name"],
        count=row["count"],
        failures=row["failures"],
        duration_s=row["duration_s"],
        avg_ms=row["avg_ms"],
        min_ms=row["min_ms"],
        max_ms=row["max_ms"],
        cut_off=row["cut_off"],
        histogram=histogram,
        interval_histograms=intervals,
        # Without histograms (a run migrated from schema 1) the stored percentiles answer.
        locust_percentiles_ms=stored if histogram is None else {},
    )


def run_dir_server_metrics(run_dir: Path) -> tuple[ServerMetric, ...]:
    """The server metrics a run folder's summary.json holds (its server budgets' values);
    () without a summary.json (the run was not judged) or server budgets."""
    from harness.summary import SUMMARY_FILE

    if not (run_dir / SUMMARY_FILE).exists():
        return ()
    _, verdict = _imported_verdict(run_dir / SUMMARY_FILE)
    run_id = run_dir.name
    return tuple(
        ServerMetric(run_id, *row) for row in server_metric_rows(verdict.get("budgets") or [])
    )


def _imported_verdict(path: Path) -> tuple[str | None, dict[str, Any]]:
    """summary.json's verdict, checked field by field: its outcome decides baselines."""
    from harness.summary import load_summary

    summary = Obj(load_summary(path), Field(str(path)))
    if not summary.has("verdict"):
        return None, {}
    verdict = summary.obj("verdict")
    outcome = verdict.text("outcome", None)
    if outcome is not None and outcome not in get_args(Outcome):
        verdict.where.at("outcome").fail(
            f"{show(outcome)} is not one of {', '.join(get_args(Outcome))}"
        )
    verdict.whole("exit_code", None, high=255)
    verdict.texts("reasons")
    list(verdict.objs("budgets"))  # refuses a budget row that is not an object
    verdict.where.free(verdict.value)
    return outcome, dict(verdict.value)
