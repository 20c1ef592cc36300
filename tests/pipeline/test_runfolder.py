"""The run folder's one writer and its versioned formats (run.json, baseline.json, live lines)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from harness.core.model import Baseline
from harness.errors import ConfigError, FormatError
from harness.runfolder import (
    BASELINE_FILE,
    LIVE_FILE,
    RUN_FILE,
    RunRecord,
    append_live_line,
    load_baseline,
    load_run_record,
    read_live,
    read_run_doc,
    write_atomic,
    write_baseline,
    write_run_record,
)

RECORD = RunRecord(
    run_id="20251126T083000Z-abc123",
    kind="capacity",
    profile="capacity",
    users=40,
    spawn_rate=None,
    run_time_s=30.0,
    workers=0,
    locust_version="2.47.0",
    paybench_version="0.1.0",
    git_commit="0123456789abcdef0123456789abcdef01234567",
    scenario_version="1",
    locustfile="locustfiles/payments.py",
    budgets="budgets.yaml",
    host="http://127.0.0.1:8089",
    target="reference",
    status="finished",
    started_at="2025-11-26T08:30:00Z",
    ended_at="2025-11-26T08:30:31Z",
    locust_command=("python", "-m", "locust"),
    locust_exit_code=0,
    extra={"capacity": {"steps": [10, 20, 30, 40]}, "stop": {"reason": "budgets broken"}},
)


def test_write_atomic_replaces_whole_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "summary.json"
    write_atomic(target, "first\n")
    write_atomic(target, b"second\n")
    assert target.read_text() == "second\n"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


@pytest.mark.parametrize("planted", ["summary.json", "summary.json.tmp"])
def test_a_planted_link_is_never_written_through(tmp_path: Path, planted: str) -> None:
    """Regression: writing summary.json through summary.json.tmp (or summary.json itself)
    as a symbolic link overwrote whatever file the link pointed at."""
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me\n")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / planted).symlink_to(outside)
    if planted == "summary.json":
        with pytest.raises(ConfigError) as err:
            write_atomic(run_dir / "summary.json", "{}\n")
        assert err.value.message.startswith(f"{run_dir / 'summary.json'}: is a symbolic link")
    else:
        write_atomic(run_dir / "summary.json", "{}\n")
        assert not (run_dir / "summary.json").is_symlink()
        assert (run_dir / "summary.json").read_text() == "{}\n"
    assert outside.read_text() == "keep me\n"
    assert sorted(p.name for p in run_dir.iterdir()) == sorted({planted, "summary.json"})


def test_a_folder_in_the_way_is_a_one_line_refusal(tmp_path: Path) -> None:
    (tmp_path / "report.html").mkdir()
    with pytest.raises(ConfigError, match=r"report\.html: exists and is not a regular file"):
        write_atomic(tmp_path / "report.html", "<html>")


def test_run_json_round_trip_keeps_every_field(tmp_path: Path) -> None:
    write_run_record(tmp_path, RECORD)
    doc = json.loads((tmp_path / RUN_FILE).read_text())
    assert (doc["format"], doc["format_version"], doc["kind"]) == ("paybench-run", 1, "capacity")
    assert doc["incomplete"] is False
    assert load_run_record(tmp_path) == RECORD


def test_an_older_run_json_is_read_and_a_newer_one_refused(tmp_path: Path) -> None:
    # Before versioning a capacity run kept its plan and stop at the top level.
    (tmp_path / RUN_FILE).write_text(
        json.dumps(
            {
                "run_id": "r0",
                "host": "http://127.0.0.1:1",
                "target": "reference",
                "workers": 0,
                "paybench_version": "0.1.0",
                "status": "finished",
                "capacity": {"steps": [5, 10]},
                "stop": {"reason": "max users"},
                "incomplete": False,
                "incomplete_reason": None,
            }
        )
    )
    old = load_run_record(tmp_path)
    assert old is not None
    assert old.kind == "capacity" and old.extra == {
        "capacity": {"steps": [5, 10]},
        "stop": {"reason": "max users"},
    }
    newer = {"format": "paybench-run", "format_version": 2, "run_id": "r2"}
    (tmp_path / RUN_FILE).write_text(json.dumps(newer))
    with pytest.raises(FormatError, match=r"format version 2 is newer .*; upgrade paybench"):
        load_run_record(tmp_path)


def test_a_run_json_left_running_reads_as_incomplete(tmp_path: Path) -> None:
    """A run whose paybench was killed mid-run never finished its run.json: incomplete."""
    write_run_record(tmp_path, replace(RECORD, status="running"))
    doc = read_run_doc(tmp_path)
    assert doc is not None and doc["incomplete"] is True
    assert doc["incomplete_reason"] == "the run never finished (run.json says 'running')"


def test_run_json_fields_of_the_wrong_type_name_the_key(tmp_path: Path) -> None:
    write_run_record(tmp_path, RECORD)
    doc = json.loads((tmp_path / RUN_FILE).read_text())
    (tmp_path / RUN_FILE).write_text(json.dumps({**doc, "users": "six"}))
    with pytest.raises(FormatError, match=r"run\.json: users: expected a whole number"):
        load_run_record(tmp_path)


def test_baseline_json_is_versioned_and_read_back(tmp_path: Path) -> None:
    baseline = Baseline(
        description="the last 2 comparable runs",
        run_ids=("a", "b"),
        values={"GET /api/plans": {"p95": (10.0, 12.5)}},
    )
    write_baseline(tmp_path, baseline)
    assert json.loads((tmp_path / BASELINE_FILE).read_text())["format_version"] == 2
    assert load_baseline(tmp_path) == baseline
    # Written before versioning: no "format" key.
    (tmp_path / BASELINE_FILE).write_text(
        json.dumps({"description": "d", "run_ids": ["a"], "values": {"k": {"avg": [1]}}})
    )
    assert load_baseline(tmp_path) == Baseline("d", ("a",), {"k": {"avg": (1.0,)}})
    (tmp_path / BASELINE_FILE).write_text(
        json.dumps({"format": "paybench-baseline", "format_version": 9})
    )
    with pytest.raises(FormatError, match="upgrade paybench"):
        load_baseline(tmp_path)


def test_the_live_file_starts_with_its_header_and_reads_back(tmp_path: Path) -> None:
    path = tmp_path / LIVE_FILE
    append_live_line(path, {"epoch": 100.0, "elapsed_s": 1.0, "users": 2, "requests": 5})
    append_live_line(path, {"epoch": 102.0, "elapsed_s": 3.0, "users": 4, "requests": 9})
    raw = path.read_text().splitlines()
    assert json.loads(raw[0]) == {"format": "paybench-live", "format_version": 1}
    lines, offset = read_live(path, 0)
    assert [(line.epoch, line.users, line.requests) for line in lines] == [
        (100.0, 2, 5),
        (102.0, 4, 9),
    ]
    assert offset == os.path.getsize(path)
    # A line still being written is left for the next read.
    with path.open("a") as f:
        f.write('{"epoch": 104.0, "users"')
    assert read_live(path, offset) == ([], offset)


def test_a_live_file_of_a_newer_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / LIVE_FILE
    path.write_text('{"format": "paybench-live", "format_version": 5}\n{"epoch": 1.0}\n')
    with pytest.raises(FormatError, match="upgrade paybench"):
        read_live(path, 0)


def test_a_live_file_without_a_header_is_read_as_before(tmp_path: Path) -> None:
    path = tmp_path / LIVE_FILE
    path.write_text('{"epoch": 1.0, "elapsed_s": 0.5, "users": 3, "keys": {"GET /": {}}}\n')
    (line,), _ = read_live(path, 0)
    assert (line.users, dict(line.per_request)) == (3, {"GET /": {}})


def test_the_run_folder_module_imports_nothing_heavy() -> None:
    """harness.plugin imports it inside every Locust process: no pandas, numpy, httpx ..."""
    code = (
        "import sys, harness.runfolder; "
        "print(sorted(m for m in ('pandas', 'numpy', 'matplotlib', 'httpx', 'jinja2', 'hdrh', "
        "'yaml', 'click', 'scipy', 'locust') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]"
