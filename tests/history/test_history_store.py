"""The history store on real SQLite files: round trip, idempotence, schema versions, baselines."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from harness.commands.compare import load_run
from harness.commands.history import (
    format_imported,
    history_export,
    history_import,
    history_list,
)
from harness.core.model import AGGREGATE_KEY, Verdict
from harness.errors import ConfigError, FormatError
from harness.store import APPLICATION_ID, EXPORT_COLUMNS, SCHEMA_VERSION, HistoryStore
from tests.history.historydata import INITIATE, PLANS, make_run, nightly_id, nightly_start

HERE = Path(__file__).parent


def _count(path: Path, table: str) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_round_trip_keeps_metadata_metrics_and_histograms(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "reports" / "history.sqlite")
    run = make_run("20251101T020000Z-aaaaaa", seed=1)
    verdict = Verdict(outcome="PASS", results=(), reasons=())

    assert store.add_run(run, verdict) is True

    stored = store.get_run("20251101T020000Z-aaaaaa")
    assert stored.outcome == "PASS"
    assert stored.result.meta == run.meta
    assert stored.result.steady_start_s == run.steady_start_s
    for original in (*run.requests, run.total):
        back = stored.result.find(original.key)
        assert back is not None
        assert (back.count, back.failures, back.duration_s) == (
            original.count,
            original.failures,
            original.duration_s,
        )
        assert back.avg_ms == pytest.approx(original.avg_ms)
        # The histograms come back bucket for bucket: every percentile is recomputable.
        assert back.histogram == original.histogram
        assert back.interval_histograms == original.interval_histograms
        for p in (50.0, 90.0, 95.0, 99.0, 99.9):
            assert back.percentile_ms(p) == original.percentile_ms(p)

    [row] = store.list_runs()
    assert (row.run_id, row.profile, row.users, row.outcome) == (
        "20251101T020000Z-aaaaaa",
        "nightly",
        10,
        "PASS",
    )
    assert row.requests == run.total.count
    assert row.p95_ms == pytest.approx(run.total.percentile_ms(95.0))
    by_key = {m.request_key: m for m in store.request_metrics([row.run_id])}
    assert set(by_key) == {PLANS, INITIATE, AGGREGATE_KEY}
    assert by_key[PLANS].value("p99.9") == run.find(PLANS).percentile_ms(99.9)
    assert by_key[PLANS].value("rps") == pytest.approx(run.find(PLANS).rps)


def test_adding_the_same_run_twice_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    store = HistoryStore(path)
    run = make_run("20251101T020000Z-aaaaaa", seed=1)
    assert store.add_run(run, None) is True
    before = [_count(path, t) for t in ("runs", "request_metrics", "histograms")]

    slower = make_run("20251101T020000Z-aaaaaa", seed=2, scale=2.0)
    assert store.add_run(slower, Verdict("FAIL", ())) is False

    assert [_count(path, t) for t in ("runs", "request_metrics", "histograms")] == before
    assert before == [1, 3, 3]
    kept = store.get_run("20251101T020000Z-aaaaaa").result
    assert kept.find(PLANS).percentile_ms(95) == run.find(PLANS).percentile_ms(95)


def test_file_is_in_wal_mode_with_our_application_id(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    HistoryStore(path).add_run(make_run("r1", seed=1), None)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


# -- schema versions -----------------------------------------------------------------------

V1_SQL = f"""
PRAGMA application_id = {APPLICATION_ID};
CREATE TABLE runs (
    run_id TEXT PRIMARY KEY, started_at TEXT, profile TEXT, host TEXT NOT NULL,
    target TEXT NOT NULL, users INTEGER, spawn_rate REAL, run_time_s REAL,
    workers INTEGER NOT NULL, locust_version TEXT, paybench_version TEXT NOT NULL,
    git_commit TEXT, scenario_version TEXT, outcome TEXT, incomplete INTEGER NOT NULL,
    exact INTEGER NOT NULL, added_at TEXT NOT NULL);
CREATE TABLE request_metrics (
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    request_key TEXT NOT NULL, request_type TEXT NOT NULL, name TEXT NOT NULL,
    count INTEGER NOT NULL, failures INTEGER NOT NULL, duration_s REAL NOT NULL,
    rps REAL NOT NULL, error_rate_pct REAL, avg_ms REAL, min_ms REAL, max_ms REAL,
    p50_ms REAL, p95_ms REAL, p99_ms REAL, PRIMARY KEY (run_id, request_key));
INSERT INTO runs VALUES ('20251001T020000Z-0000v1', '2025-10-01T02:00:00Z', 'nightly',
    'http://127.0.0.1:9000', 'reference', 10, 5.0, 20.0, 0, '2.47.0', '0.0.9', 'feed123',
    '1', 'PASS', 0, 1, '2025-10-01T02:01:00Z');
INSERT INTO request_metrics VALUES ('20251001T020000Z-0000v1', 'GET /api/plans', 'GET',
    '/api/plans', 600, 3, 20.0, 30.0, 0.5, 41.5, 12.0, 180.0, 40.0, 95.0, 140.0);
INSERT INTO request_metrics VALUES ('20251001T020000Z-0000v1', 'Aggregated', '',
    'Aggregated', 600, 3, 20.0, 30.0, 0.5, 41.5, 12.0, 180.0, 40.0, 95.0, 140.0);
PRAGMA user_version = 1;
"""


def test_schema_1_database_is_migrated_and_keeps_its_runs(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    with sqlite3.connect(path) as conn:
        conn.executescript(V1_SQL)
    conn.close()

    store = HistoryStore(path)
    assert store.schema_version == SCHEMA_VERSION
    [old] = store.list_runs()
    assert (old.run_id, old.outcome, old.requests, old.p95_ms) == (
        "20251001T020000Z-0000v1",
        "PASS",
        600,
        95.0,
    )
    stored = store.get_run(old.run_id).result
    plans = stored.find(PLANS)
    # No histograms in schema 1: the stored percentiles answer, p90 is unknown.
    assert plans.histogram is None
    assert plans.percentile_ms(95.0) == 95.0
    assert plans.percentile_ms(90.0) is None
    assert stored.steady_end_s == 20.0  # filled from the aggregate's duration

    # The migrated file takes new runs with their histograms.
    assert store.add_run(make_run(nightly_id(1), seed=1, started_at=nightly_start(1)), None)
    assert [r.run_id for r in store.list_runs()] == ["20251001T020000Z-0000v1", nightly_id(1)]
    assert _count(path, "histograms") == 3


def test_newer_schema_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    HistoryStore(path).add_run(make_run("r1", seed=1), None)
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    before = path.read_bytes()

    with pytest.raises(FormatError) as err:
        HistoryStore(path).list_runs()

    assert err.value.message == (
        f"{path}: history schema {SCHEMA_VERSION + 1} is newer than this paybench "
        f"({SCHEMA_VERSION}); upgrade paybench"
    )
    assert err.value.exit_code == 2
    assert path.read_bytes() == before


def test_a_file_that_is_not_a_history_is_refused(tmp_path: Path) -> None:
    text = tmp_path / "notes.sqlite"
    text.write_text("hello, this is not SQLite\n" * 100)
    with pytest.raises(FormatError, match="not a paybench history database"):
        HistoryStore(text).list_runs()

    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER)")
    conn.close()
    with pytest.raises(FormatError, match="holds other tables"):
        HistoryStore(other).add_run(make_run("r1", seed=1), None)


def test_read_commands_do_not_create_a_history(tmp_path: Path) -> None:
    path = tmp_path / "reports" / "history.sqlite"
    with pytest.raises(ConfigError, match="no history here yet"):
        history_list(history=path)
    assert not path.exists()


# -- concurrent writers ----------------------------------------------------------------------


def test_two_processes_adding_50_runs_each_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"  # does not exist: both also race to create it
    go = tmp_path / "go"
    writer = HERE / "concurrent_writer.py"
    procs = [
        subprocess.Popen(
            [sys.executable, str(writer), str(path), str(go), prefix, "50", other],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for prefix, other in (("a", "b"), ("b", "a"))
    ]
    try:
        # Release both at once, when both are ready (they say so on stdout).
        for p in procs:
            assert p.stdout is not None
            assert p.stdout.readline().strip() == "ready"
        go.touch()
        outputs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, (out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
        assert out.strip() == "added 50"
    assert _count(path, "runs") == 100
    assert _count(path, "request_metrics") == 300
    assert _count(path, "histograms") == 300
    ids = {r.run_id for r in HistoryStore(path).list_runs()}
    assert ids == {f"{p}-{i:03d}" for p in "ab" for i in range(50)}
    # The writers did overlap (each waited for the other's first run before its second):
    # their runs are interleaved in insertion order.
    with sqlite3.connect(path) as conn:
        order = "".join(r[0][0] for r in conn.execute("SELECT run_id FROM runs ORDER BY rowid"))
    conn.close()
    assert "ab" in order and "ba" in order, order


# -- queries ---------------------------------------------------------------------------------


def _fill(store: HistoryStore) -> dict[str, object]:
    """Runs 0..11 of nightly/10 users/scenario 1, with others interleaved."""
    runs = {}
    for i in range(12):
        run = make_run(nightly_id(i), seed=i, started_at=nightly_start(i), scale=1.0 + i / 100)
        runs[run.meta.run_id] = run
        store.add_run(run, Verdict("PASS" if i != 7 else "FAIL", ()))
    others = [
        make_run("x-users", seed=50, started_at=nightly_start(12), users=20),
        make_run("x-scenario", seed=51, started_at=nightly_start(13), scenario_version="2"),
        make_run("x-profile", seed=52, started_at=nightly_start(14), profile="smoke"),
        make_run("x-external", seed=53, started_at=nightly_start(15), target="external"),
        make_run("x-incomplete", seed=54, started_at=nightly_start(16), incomplete=True),
    ]
    for run in others:
        store.add_run(run, None)
        runs[run.meta.run_id] = run
    unreliable = make_run("x-unreliable", seed=55, started_at=nightly_start(17))
    store.add_run(unreliable, Verdict("UNRELIABLE", (), ("generator CPU at 97 %",)))
    runs["x-unreliable"] = unreliable
    return runs


def test_baseline_is_the_last_n_comparable_runs(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "history.sqlite")
    runs = _fill(store)

    base = store.baseline(
        profile="nightly", users=10, scenario_version="1", n=5, target="reference"
    )

    assert base is not None
    assert base.run_ids == tuple(nightly_id(i) for i in range(7, 12))
    p95 = base.values[INITIATE]["p95"]
    assert p95 == tuple(runs[r].find(INITIATE).percentile_ms(95.0) for r in base.run_ids)
    assert set(base.values[AGGREGATE_KEY]) >= {
        "p50",
        "p90",
        "p95",
        "p99",
        "p99.9",
        "avg",
        "error_rate",
        "rps",
        "count",
    }
    assert base.values[PLANS]["count"] == tuple(
        float(runs[r].find(PLANS).count) for r in base.run_ids
    )
    assert "last 5 comparable runs" in base.description
    assert "profile nightly" in base.description and nightly_id(11) in base.description


def test_baseline_excludes_the_judged_run_and_says_when_short(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "history.sqlite")
    _fill(store)
    base = store.baseline(
        profile="nightly",
        users=10,
        scenario_version="1",
        n=5,
        exclude_run_id=nightly_id(11),
        target="reference",
    )
    assert base is not None and base.run_ids[-1] == nightly_id(10)
    # Without a target kind, runs against any target count (only given fields are checked).
    anywhere = store.baseline(profile="nightly", users=10, scenario_version="1", n=5)
    assert anywhere is not None and anywhere.run_ids[-1] == "x-external"

    few = store.baseline_for(make_run(nightly_id(2), seed=2, started_at=nightly_start(2)), n=5)
    assert few is not None and few.run_ids == (nightly_id(0), nightly_id(1))
    assert "5 wanted" in few.description

    assert store.baseline(profile="soak", users=10, scenario_version="1", n=5) is None
    assert store.baseline_for(make_run("first", seed=1, started_at="2025-10-01T00:00:00Z")) is None


def test_series_and_prefix_lookup(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "history.sqlite")
    runs = _fill(store)
    s = store.series("nightly", PLANS, "p95", last=4)
    assert s.run_ids == ("x-scenario", "x-external", "x-incomplete", "x-unreliable")
    assert s.values == tuple(runs[r].find(PLANS).percentile_ms(95.0) for r in s.run_ids)
    assert store.series("nightly", "GET /nothing", "p95").values[0] is None

    assert store.resolve_run_id("x-prof") == "x-profile"
    with pytest.raises(ConfigError, match=r"run id 'x-' is ambiguous .*give more of it"):
        store.resolve_run_id("x-")
    with pytest.raises(ConfigError, match=r"no run 'nope' in .*paybench history list"):
        store.get_run("nope")
    with pytest.raises(ConfigError, match="unknown metric 'p97'"):
        store.series("nightly", PLANS, "p97")


def test_export_csv_and_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    store = HistoryStore(path)
    _fill(store)

    text = history_export(history=path, fmt="csv", profile="nightly", last=3)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert tuple(rows[0]) == EXPORT_COLUMNS
    assert len(rows) == 9  # 3 runs x (2 request names + the aggregate)
    assert rows[0]["request"] == AGGREGATE_KEY
    assert [r["run_id"] for r in rows[::3]] == ["x-external", "x-incomplete", "x-unreliable"]
    assert [r["outcome"] for r in rows[::3]] == ["", "INCOMPLETE", "UNRELIABLE"]
    assert float(rows[1]["p95_ms"]) == pytest.approx(
        HistoryStore(path).get_run("x-external").result.find(rows[1]["request"]).percentile_ms(95),
        abs=1e-4,
    )
    lines = history_export(history=path, fmt="jsonl").splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 18 * 3
    first = records[0]
    assert first["run_id"] == nightly_id(0) and first["request"] == AGGREGATE_KEY
    assert isinstance(first["p95_ms"], float) and isinstance(first["count"], int)
    with pytest.raises(ConfigError, match="unknown export format 'xml'"):
        store.export(fmt="xml")  # type: ignore[arg-type]


# -- import of run folders --------------------------------------------------------------------

LOCUST_STATS = (
    (
        "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,"
        "Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,"
        "50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%\n"
    )
    + """GET,/api/plans,1000,10,42,45.5,10,400,512,50.0,0.5,42,48,52,55,70,90,120,150,300,400,400
,Aggregated,1000,10,42,45.5,10,400,512,50.0,0.5,42,48,52,55,70,90,120,150,300,400,400
"""
)


def test_import_of_a_copied_run_folder_is_idempotent(tmp_path: Path) -> None:
    run_dir = tmp_path / "artefacts" / "20251120T020000Z-c0ffee"
    run_dir.mkdir(parents=True)
    (run_dir / "locust_stats.csv").write_text(LOCUST_STATS)
    (run_dir / "run.json").write_text(
        json.dumps(
            {
                "run_id": "20251120T020000Z-c0ffee",
                "profile": "nightly",
                "host": "http://127.0.0.1:1",
                "target": "reference",
                "users": 10,
                "started_at": "2025-11-20T02:00:00Z",
                "scenario_version": "1",
                "paybench_version": "0.1.0",
            }
        )
    )
    path = tmp_path / "history.sqlite"

    first = history_import(history=path, run_dirs=[run_dir])
    again = history_import(history=path, run_dirs=[run_dir])

    assert [(r.run_id, r.added) for r in first] == [("20251120T020000Z-c0ffee", True)]
    assert [(r.run_id, r.added) for r in again] == [("20251120T020000Z-c0ffee", False)]
    assert format_imported(again) == [
        f"already in the history: 20251120T020000Z-c0ffee ({run_dir})"
    ]
    assert _count(path, "runs") == 1
    stored = load_run("20251120T020000Z-c0", history=path)
    assert stored.find("GET /api/plans").percentile_ms(95.0) == 90.0
    assert stored.exact is False


def test_load_run_explains_an_unknown_reference(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not a run folder, and there is no history"):
        load_run("20251120T0200", history=tmp_path / "none.sqlite")
