"""The machine failing under paybench, through the real CLI: a full or read-only disk is one
line naming the path and the fix, exit 3, and what could be written is kept; a damaged
history never changes a judged run's exit code."""

from __future__ import annotations

import re
import shutil
import sqlite3
from pathlib import Path

import pytest

from harness.store import APPLICATION_ID, SCHEMA_VERSION, HistoryStore
from tests.e2e.helpers import ROOT, load_summary, needs_tmpfs, only_run_dir, paybench
from tests.e2e.helpers import paybench_on_tmpfs as on_tmpfs
from tests.history.historydata import make_run, nightly_id, nightly_start

pytestmark = pytest.mark.e2e

PLAIN = ROOT / "tests" / "fixtures" / "plain_locust"
FULL_FIX = "No space left on device; free space on that disk or write elsewhere"
RO_FIX = "Read-only file system; remount it read-write or write elsewhere"


def _one_error_line(r) -> str:
    assert "Traceback" not in r.stderr, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.startswith("paybench: error: ")]
    assert len(lines) == 1, r.stderr
    # Progress lines may come before it; nothing comes after the error.
    assert r.stderr.rstrip("\n").endswith(lines[0]), r.stderr
    return lines[0]


def _history_with_runs(path: Path, n: int = 3) -> Path:
    store = HistoryStore(path)
    for i in range(n):
        store.add_run(make_run(nightly_id(i), seed=i, started_at=nightly_start(i)), None)
    return path


# -- a full or read-only disk ---------------------------------------------------------------


@needs_tmpfs
def test_run_on_a_read_only_out_is_one_line_and_exit_3(tmp_path: Path) -> None:
    m = tmp_path / "m"
    r = on_tmpfs(m, "run", "--out", str(m), "--no-history", disk="read-only")
    assert r.returncode == 3, r.stdout + r.stderr
    line = _one_error_line(r)
    assert re.fullmatch(
        rf"paybench: error: cannot write {m}/runs/\d{{8}}T\d{{6}}Z-[0-9a-f]{{6}}: {RO_FIX}"
        r" \(--out\)",
        line,
    ), line


@needs_tmpfs
def test_run_on_a_full_out_is_one_line_and_exit_3_and_keeps_its_folder(tmp_path: Path) -> None:
    m, kept = tmp_path / "m", tmp_path / "kept"
    r = on_tmpfs(m, "run", "--out", str(m), "--no-history", disk="full", keep=kept)
    assert r.returncode == 3, r.stdout + r.stderr
    line = _one_error_line(r)
    assert line.startswith(f"paybench: error: cannot write {m}/runs/"), line
    assert line.endswith(f"/budgets.yaml: {FULL_FIX}"), line
    (run_dir,) = (kept / "runs").iterdir()  # the run folder stays, for the record
    assert not [p for p in run_dir.iterdir() if p.name.endswith(".tmp")]


@needs_tmpfs
def test_check_on_a_full_disk_keeps_the_run_folder_as_it_was(tmp_path: Path) -> None:
    m, kept = tmp_path / "m", tmp_path / "kept"
    before = f'cp -r "{PLAIN}" "$M/run"'
    r = on_tmpfs(
        m, "check", str(m / "run"), "--budgets", str(m / "run" / "budgets.yaml"),
        disk="full", before=before, keep=kept,
    )  # fmt: skip
    assert r.returncode == 3, r.stdout + r.stderr
    assert _one_error_line(r) == f"paybench: error: cannot write {m}/run/summary.json: {FULL_FIX}"
    assert sorted(p.name for p in (kept / "run").iterdir()) == sorted(
        p.name for p in PLAIN.iterdir()
    )


@needs_tmpfs
@pytest.mark.parametrize("disk", ["full", "read-only"])
def test_history_import_onto_a_disk_that_refuses_is_exit_3(tmp_path: Path, disk: str) -> None:
    m = tmp_path / "m"
    history = m / "history.sqlite"
    r = on_tmpfs(m, "history", "import", str(PLAIN), "--history", str(history), disk=disk)
    assert r.returncode == 3, r.stdout + r.stderr
    line = _one_error_line(r)
    assert line.startswith(f"paybench: error: cannot write the history {history} ("), line
    assert line.endswith(
        "free space on its disk or make it and its folder writable, or give another --history"
    ), line


@needs_tmpfs
def test_trend_into_a_read_only_folder_is_exit_3(tmp_path: Path) -> None:
    history = _history_with_runs(tmp_path / "history.sqlite")
    m = tmp_path / "m"
    r = on_tmpfs(m, "trend", "--history", str(history), "--out", str(m / "trend"), disk="read-only")
    assert r.returncode == 3, r.stdout + r.stderr
    assert _one_error_line(r) == (f"paybench: error: cannot write {m}/trend: {RO_FIX} (--out)")


@needs_tmpfs
def test_history_export_to_a_full_disk_is_exit_3_and_leaves_nothing(tmp_path: Path) -> None:
    history = _history_with_runs(tmp_path / "history.sqlite")
    m, kept = tmp_path / "m", tmp_path / "kept"
    output = m / "runs.csv"
    r = on_tmpfs(
        m, "history", "export", "--history", str(history), "--output", str(output),
        disk="full", keep=kept,
    )  # fmt: skip
    assert r.returncode == 3, r.stdout + r.stderr
    assert _one_error_line(r) == (f"paybench: error: cannot write {output}: {FULL_FIX} (--output)")
    assert list(kept.iterdir()) == []  # no half file, no temporary file


@needs_tmpfs
def test_a_history_on_a_full_disk_keeps_the_judged_run_and_exits_3(tmp_path: Path) -> None:
    """The run folder (its own roomy tmpfs) is written in full; the history beside it, on a
    full one, cannot be: exit 3, one line naming it, the verdict and reports kept."""
    m, kept = tmp_path / "m", tmp_path / "kept"
    before = 'mkdir "$M/runs" && mount -t tmpfs -o size=64m paybench-runs "$M/runs"'
    r = on_tmpfs(
        m, "run", "--run-time", "5s", "--out", str(m), disk="full", before=before, keep=kept
    )
    assert r.returncode == 3, r.stdout + r.stderr
    line = _one_error_line(r)
    assert line.startswith(f"paybench: error: cannot write the history {m}/history.sqlite ("), line
    assert "or give another --history; the run is not recorded in the history," in line, line
    run_dir = only_run_dir(kept)
    assert line.endswith(f"its verdict (PASS) and reports are in {m}/runs/{run_dir.name}"), line
    assert load_summary(run_dir)["verdict"]["outcome"] == "PASS"
    for name in ("report.html", "summary.md", "junit.xml", "run.json"):
        assert (run_dir / name).is_file(), name


# -- a damaged history ----------------------------------------------------------------------


def _not_sqlite(path: Path) -> str:
    path.write_text("these are my notes, not a database\n", encoding="utf-8")
    return (
        f"{path}: not a paybench history database (file is not a database); move it away "
        "or give another history file"
    )


def _newer_schema(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute("PRAGMA user_version = 99")
    conn.close()
    return (
        f"{path}: history schema 99 is newer than this paybench ({SCHEMA_VERSION}); "
        "upgrade paybench"
    )


@pytest.mark.parametrize(
    ("damage", "budget", "code"),
    [
        pytest.param(_not_sqlite, None, 0, id="not-sqlite-pass"),
        pytest.param(_newer_schema, '    avg: "< 0.001ms"\n', 1, id="newer-schema-fail"),
    ],
)
def test_a_damaged_history_does_not_change_the_verdicts_exit_code(
    tmp_path: Path, damage, budget: str | None, code: int
) -> None:
    """Regression: a history that was not SQLite (or of a newer schema) turned a judged
    run's exit code into 2 and left it without its reports."""
    out = tmp_path / "reports"
    out.mkdir()
    why = damage(out / "history.sqlite")
    args = ["run", "--run-time", "5s", "--out", str(out)]
    if budget is not None:
        budgets = tmp_path / "budgets.yaml"
        budgets.write_text(f'version: 1\nrequests:\n  "GET /api/plans":\n{budget}')
        args += ["--budgets", str(budgets)]
    r = paybench(*args)
    assert r.returncode == code, r.stdout + r.stderr
    assert "Traceback" not in r.stderr and "paybench: error" not in r.stderr
    assert f"history:    not recorded: {why}" in r.stdout.splitlines()
    run_dir = only_run_dir(out)
    assert load_summary(run_dir)["verdict"]["exit_code"] == code
    assert (run_dir / "report.html").is_file() and (run_dir / "junit.xml").is_file()


def test_history_import_into_a_file_that_is_not_a_history_is_exit_2(tmp_path: Path) -> None:
    """`history import` into a file that is not a history: exit 2 naming it, nothing added."""
    folder = tmp_path / "run"
    shutil.copytree(PLAIN, folder)
    history = tmp_path / "history.sqlite"
    why = _not_sqlite(history)
    r = paybench("history", "import", str(folder), "--history", str(history), timeout=60)
    assert r.returncode == 2, r.stdout + r.stderr
    assert _one_error_line(r) == f"paybench: error: {why}"
    assert history.read_text(encoding="utf-8") == "these are my notes, not a database\n"
