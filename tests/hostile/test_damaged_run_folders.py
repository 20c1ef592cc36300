"""A run folder may come from anywhere (a CI artefact): damage ends in one line and exit 2.

Each case damages one file of a valid run folder the way a broken tool, a truncated copy or
a hand edit would, and runs the real CLI on it: `paybench check`, `paybench report` and
`paybench history import`. Every one must refuse with exit code 2 and one line that names
the file and the field, never judge impossible numbers (a negative failure count read as
an error rate of -100 % and a PASS) and never store them in the history.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness.core import stats
from harness.inputs import MAX_METADATA_BYTES, MAX_RECORDING_BYTES
from tests.e2e.helpers import paybench
from tests.hostile.runfolders import (
    BUDGETS,
    HDR,
    RUN,
    RUN_ID,
    SUMMARY,
    judged_run_folder,
    plain_locust_folder,
)

Damage = Callable[[Path], None]


def _edit_json(name: str, edit: Callable[[Any], Any]) -> Damage:
    def damage(folder: Path) -> None:
        doc = json.loads((folder / name).read_text(encoding="utf-8"))
        edit(doc)
        (folder / name).write_text(json.dumps(doc), encoding="utf-8")

    return damage


def _hdr(edit: Callable[[dict[str, Any]], Any]) -> Damage:
    return _edit_json(HDR, edit)


def _set(path: tuple[Any, ...], value: Any) -> Callable[[Any], None]:
    def edit(doc: Any) -> None:
        for key in path[:-1]:
            doc = doc[key]
        doc[path[-1]] = value(doc[path[-1]]) if callable(value) else value

    return edit


def _raw(name: str, old: str, new: str) -> Damage:
    """Replace text in the file as written: what json.dumps itself would never write."""

    def damage(folder: Path) -> None:
        text = (folder / name).read_text(encoding="utf-8")
        assert old in text, old
        (folder / name).write_text(text.replace(old, new, 1), encoding="utf-8")

    return damage


def _huge(name: str, size: int) -> Damage:
    def damage(folder: Path) -> None:
        with open(folder / name, "r+b") as f:
            f.truncate(size + 1)  # sparse: nothing is written, the size is what counts

    return damage


def _zip_bomb() -> str:
    payload = zlib.compress(b"\0" * (4 * 1024 * 1024), 9)
    return base64.b64encode(struct.pack(">II", 0x1C849314, len(payload)) + payload).decode()


def _other_layout() -> str:
    from hdrh.histogram import HdrHistogram

    h = HdrHistogram(1, 3_600_000_000_000, 5)
    for _ in range(20):
        h.record_value(25_000_000)
    return h.encode().decode()


def _interval(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["entries"][0]["intervals"][0]


# (case, damage, the fragment the one line must hold)
RECORDING_CASES: list[tuple[str, Damage, str]] = [
    (
        "negative failures in an interval",
        _hdr(_set(("entries", 0, "intervals", 1, "failures"), -2)),
        f"{HDR}: entries[0].intervals[1].failures: -2 is negative; "
        "the file is damaged or was edited",
    ),
    (
        "negative failures of a whole entry",
        _hdr(_set(("entries", 1, "failures"), -4)),
        f"{HDR}: entries[1].failures: -4 is negative",
    ),
    (
        "negative count",
        _hdr(_set(("entries", 0, "count"), -80)),
        "entries[0].count: -80 is negative",
    ),
    (
        "more failures than requests",
        _hdr(_set(("entries", 0, "intervals", 0, "failures"), 21)),
        "entries[0].intervals[0].failures: 21 is more than count 20",
    ),
    (
        "negative cut-offs",
        _hdr(_set(("entries", 0, "cut_off"), -1)),
        "entries[0].cut_off: -1 is negative",
    ),
    (
        "intervals that do not add up to the whole",
        _hdr(_set(("entries", 1, "count"), lambda n: n + 1)),
        "entries[1].count: 81 is not the sum of its intervals' (80)",
    ),
    (
        "a histogram that does not hold the count",
        _hdr(
            _set(
                ("entries", 0, "intervals", 2, "histogram"),
                stats.histogram_from_ms([1.0, 2.0, 3.0]).encode(),
            )
        ),
        "entries[0].intervals[2].histogram: holds 3 latencies where count is 20",
    ),
    (
        "min above max",
        _hdr(lambda d: _interval(d).update(min_ns=_interval(d)["max_ns"] + 1)),
        "entries[0].intervals[0].min_ns: ",
    ),
    (
        "an infinite epoch",
        _raw(HDR, '"test_stop_epoch": 1764146408.0', '"test_stop_epoch": 1e999'),
        f"{HDR}: test_stop_epoch: inf is not a finite number",
    ),
    (
        "a stop before the start",
        _hdr(_set(("test_stop_epoch",), 1.0)),
        "test_stop_epoch: 1.0 is before test_start_epoch",
    ),
    (
        "an interval of 1e300 seconds",
        _hdr(_set(("interval_s",), 1e300)),
        f"{HDR}: interval_s: 1e+300 s is longer than a day",
    ),
    (
        "times that do not match the intervals",
        _hdr(lambda d: d.update(test_start_epoch=1e15, test_stop_epoch=1e15 + 8)),
        "entries[0].intervals[0].index: interval 882073200 begins at 1.76415e+09 s, outside "
        "the run (1e+15 to 1e+15 s since 1970)",
    ),
    (
        "a histogram that inflates to gigabytes (a zip bomb)",
        _hdr(_set(("entries", 0, "histogram"), _zip_bomb())),
        "entries[0].histogram: inflates to more than 1024 KiB",
    ),
    (
        "a histogram of another layout",
        _hdr(_set(("entries", 0, "intervals", 0, "histogram"), _other_layout())),
        "a histogram of 5 significant figures",
    ),
    (
        "JSON nested deeper than Python reads",
        lambda folder: (folder / HDR).write_text("[" * 100_000 + "]" * 100_000),
        f"{HDR}: not a readable paybench recording (invalid JSON: nested too deeply)",
    ),
    (
        "an integer of 5,000 digits",
        _raw(HDR, '"sum_ns": ', '"sum_ns": ' + "9" * 5000 + ', "x": '),
        "invalid JSON: Exceeds the limit (4300 digits)",
    ),
    (
        "a failures row without its message",
        _hdr(lambda d: d["failures"][0].pop("message")),
        f"{HDR}: failures[0].message: missing",
    ),
    (
        "a request name holding an unpaired surrogate",
        _hdr(_set(("entries", 0, "name"), "/api/\ud800")),
        "entries[0].name: the text '/api/\\ud800' holds an unpaired surrogate",
    ),
    (
        "a recording larger than paybench reads",
        _huge(HDR, MAX_RECORDING_BYTES),
        f"{HDR}: larger than 1024 MiB",
    ),
]

def _lines(edit: Callable[[list[Any]], Any]) -> Damage:
    """An edit of a streamed recording (format version 2): its lines as JSON values."""

    def damage(folder: Path) -> None:
        path = folder / HDR
        lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        edit(lines)
        path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")

    return damage


def _line(lines: list[Any], kind: str) -> dict[str, Any]:
    """The first line of a kind ("interval", "key", "users", "cpu", "end")."""
    return next(line for line in lines if kind in line)


def _row_column(column: int, value: Any) -> Callable[[list[Any]], None]:
    def edit(lines: list[Any]) -> None:
        row = _line(lines, "interval")["rows"][0]
        row[column] = value(row[column]) if callable(value) else value

    return edit


# A streamed recording's damage names its line: (case, damage, the fragment of the line).
STREAMED_CASES: list[tuple[str, Damage, str]] = [
    (
        "negative failures in an interval row",
        _lines(_row_column(2, -2)),
        "rows[0].failures: -2 is negative; the file is damaged or was edited",
    ),
    (
        "more failures than requests in a row",
        _lines(_row_column(2, 21)),
        "rows[0].failures: 21 is more than count 20",
    ),
    (
        "a row's histogram that does not hold its count",
        _lines(_row_column(7, stats.histogram_from_ms([1.0, 2.0, 3.0]).encode())),
        "rows[0].histogram: holds 3 latencies where count is 20",
    ),
    (
        "a row's histogram that inflates to gigabytes (a zip bomb)",
        _lines(_row_column(7, _zip_bomb())),
        "rows[0].histogram: inflates to more than 1024 KiB",
    ),
    (
        "a row's histogram of another layout",
        _lines(_row_column(7, _other_layout())),
        "rows[0].histogram: a histogram of 5 significant figures",
    ),
    (
        "a whole-run count that is not the sum of its intervals",
        _lines(lambda ls: _line(ls, "end")["end"]["whole"][0].__setitem__(1, 81)),
        "end.whole[0].count: 81 is not the sum of its intervals' (80)",
    ),
    (
        "a row of a key never declared",
        _lines(_row_column(0, 7)),
        "rows[0].key: key 7 is not declared",
    ),
    (
        "an interval outside the run",
        _lines(lambda ls: _line(ls, "interval").__setitem__("interval", 10**9)),
        "interval: interval 1000000000 begins at 2e+09 s, outside the run",
    ),
    (
        "a recording cut short before its end line",
        _lines(lambda ls: ls.pop()),
        f"{HDR}: cut short: no end line (the recording was not finished)",
    ),
    (
        "a line after the end line",
        _lines(lambda ls: ls.append(_line(ls, "users"))),
        "a line after the end line",
    ),
    (
        "a line nested deeper than Python reads",
        lambda folder: (folder / HDR).write_text(
            (folder / HDR).read_text(encoding="utf-8").replace(
                '{"users"', "[" * 100_000 + "]" * 100_000 + "\n" + '{"users"', 1
            ),
            encoding="utf-8",
        ),
        "not a line of a paybench recording (invalid JSON: nested too deeply)",
    ),
    (
        "a streamed recording of a newer format",
        _lines(lambda ls: ls[0].__setitem__("format_version", 3)),
        f"{HDR}: format version 3 is newer than this paybench understands (2); upgrade paybench",
    ),
]

RUN_JSON_CASES: list[tuple[str, Damage, str]] = [
    (
        "users given as a word",
        _edit_json(RUN, _set(("users",), "six")),
        f"{RUN}: users: expected a whole number, got the text 'six'",
    ),
    (
        "a start time given as a number",
        _edit_json(RUN, _set(("started_at",), 12345)),
        f"{RUN}: started_at: expected a text, got 12345",
    ),
    (
        "a start time that is not a time",
        _edit_json(RUN, _set(("ended_at",), "yesterday")),
        f"{RUN}: ended_at: the text 'yesterday' is not an ISO-8601 time",
    ),
    (
        "extra nested without end",
        _edit_json(RUN, _set(("extra",), {"a": [[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]})),
        f"{RUN}: extra.a",
    ),
    (
        "a run.json larger than paybench reads",
        _huge(RUN, MAX_METADATA_BYTES),
        f"{RUN}: larger than 64 MiB",
    ),
    (
        "a run.json that is a link to a device",
        lambda folder: ((folder / RUN).unlink(), os.symlink("/dev/zero", folder / RUN)),
        f"{RUN}: not a regular file",
    ),
]

COMMANDS = ("check", "report", "history import")


@pytest.fixture(scope="module")
def judged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return judged_run_folder(tmp_path_factory.mktemp("hostile") / "judged")


@pytest.fixture(scope="module")
def streamed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return judged_run_folder(tmp_path_factory.mktemp("hostile") / "streamed", version=2)


def _damaged(judged: Path, tmp_path: Path, damage: Damage) -> Path:
    folder = tmp_path / "run"
    shutil.copytree(judged, folder)
    damage(folder)
    return folder


def _run(command: str, folder: Path, history: Path) -> Any:
    if command == "check":
        return paybench("check", str(folder), "--budgets", str(folder / BUDGETS), timeout=120)
    if command == "report":
        return paybench("report", str(folder), timeout=120)
    return paybench("history", "import", str(folder), "--history", str(history), timeout=120)


def _assert_refused(r: Any, folder: Path, fragment: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"paybench: error: {folder}"), lines[0]
    assert fragment in lines[0], lines[0]


def _assert_not_stored(history: Path) -> None:
    listed = paybench("history", "list", "--history", str(history), timeout=60)
    assert listed.returncode in (0, 2), listed.stderr
    assert RUN_ID not in listed.stdout


# Every case through one command, the commands in turn; the first cases through all three.
PLAN = [
    pytest.param(command, damage, fragment, id=f"{case} ({command})")
    for i, (case, damage, fragment) in enumerate(RECORDING_CASES + RUN_JSON_CASES)
    for command in (COMMANDS if i in (0, len(RECORDING_CASES)) else (COMMANDS[i % 3],))
]


@pytest.mark.parametrize(("command", "damage", "fragment"), PLAN)
def test_a_damaged_run_folder_is_refused_in_one_line(
    judged: Path, tmp_path: Path, command: str, damage: Damage, fragment: str
) -> None:
    """Guards: impossible numbers, wrong types, hostile sizes and nesting in a recording or
    run.json are refused with exit 2 and one line naming the file and the field; nothing
    is judged or stored."""
    folder = _damaged(judged, tmp_path, damage)
    history = tmp_path / "history.sqlite"
    _assert_refused(_run(command, folder, history), folder, fragment)
    if command == "history import":
        _assert_not_stored(history)


@pytest.mark.parametrize(
    ("command", "damage", "fragment"),
    [
        pytest.param(command, damage, fragment, id=f"{case} ({command})")
        for i, (case, damage, fragment) in enumerate(STREAMED_CASES)
        for command in (COMMANDS if i == 0 else (COMMANDS[i % 2],))
    ],
)
def test_a_damaged_streamed_recording_is_refused_in_one_line(
    streamed: Path, tmp_path: Path, command: str, damage: Damage, fragment: str
) -> None:
    """Guards the streamed format (version 2) as the one-document one: impossible numbers,
    hostile histograms, a file cut short or edited after its end are refused with exit 2
    and one line naming the file, the line and the field; nothing is judged or stored."""
    folder = _damaged(streamed, tmp_path, damage)
    history = tmp_path / "history.sqlite"
    _assert_refused(_run(command, folder, history), folder, fragment)
    if command == "history import":
        _assert_not_stored(history)


def _all_failures_negative(doc: dict[str, Any]) -> None:
    for entry in doc["entries"]:
        entry["failures"] = -entry["count"]
        for interval in entry["intervals"]:
            interval["failures"] = -interval["count"]


def test_a_negative_failure_count_is_not_judged_as_a_pass(judged: Path, tmp_path: Path) -> None:
    """Guards: negative failures once gave an error rate of -100 % and a PASS (exit 0)."""
    folder = _damaged(judged, tmp_path, _hdr(_all_failures_negative))
    r = _run("check", folder, tmp_path / "history.sqlite")
    _assert_refused(r, folder, "entries[0].failures: -80 is negative")
    assert "PASS" not in r.stdout


@pytest.mark.parametrize(
    ("damage", "fragment"),
    [
        pytest.param(
            _edit_json(SUMMARY, _set(("verdict",), "PASS")),
            f"{SUMMARY}: verdict: expected an object, got the text 'PASS'",
            id="a verdict given as a word",
        ),
        pytest.param(
            _edit_json(SUMMARY, _set(("verdict", "outcome"), "WIN")),
            f"{SUMMARY}: verdict.outcome: the text 'WIN' is not one of PASS, FAIL",
            id="an outcome that is none",
        ),
        pytest.param(
            _edit_json(SUMMARY, _set(("verdict", "reasons"), [1, 2])),
            f"{SUMMARY}: verdict.reasons[0]: expected a text, got 1",
            id="reasons that are not texts",
        ),
        pytest.param(
            lambda folder: (folder / SUMMARY).write_text('{"a":' * 50_000 + "1" + "}" * 50_000),
            f"{SUMMARY}: not a readable JSON file (invalid JSON: nested too deeply)",
            id="nested deeper than Python reads",
        ),
    ],
)
def test_history_import_refuses_a_damaged_summary(
    judged: Path, tmp_path: Path, damage: Damage, fragment: str
) -> None:
    """Guards: a summary.json verdict of the wrong type is refused (exit 2), not stored;
    its outcome decides whether the run may become a baseline."""
    folder = _damaged(judged, tmp_path, damage)
    history = tmp_path / "history.sqlite"
    _assert_refused(_run("history import", folder, history), folder, fragment)
    _assert_not_stored(history)


def test_report_refuses_a_baseline_of_the_wrong_types(judged: Path, tmp_path: Path) -> None:
    """Guards: baseline.json values that are not lists of numbers end in one line, exit 2."""

    def damage(folder: Path) -> None:
        values = {"GET /api/plans": {"p95": "abc"}}
        doc = {"description": "median of 5 runs", "run_ids": [], "values": values}
        (folder / "baseline.json").write_text(json.dumps(doc), encoding="utf-8")

    folder = _damaged(judged, tmp_path, damage)
    r = _run("report", folder, tmp_path / "history.sqlite")
    _assert_refused(r, folder, 'baseline.json: values["GET /api/plans"].p95: expected a list')


def _cut(marker: str, keep_marker: bool) -> Damage:
    """loadtest_stats.csv cut short just before, or just after, ``marker``."""

    def damage(folder: Path) -> None:
        path = folder / "loadtest_stats.csv"
        text = path.read_text(encoding="utf-8")
        end = text.index(marker) + (len(marker) if keep_marker else 0)
        path.write_text(text[:end], encoding="utf-8")

    return damage


@pytest.mark.parametrize(
    ("command", "damage", "fragment"),
    [
        pytest.param(
            "check",
            _cut("\n,Aggregated,", keep_marker=False),
            "loadtest_stats.csv: no Aggregated row, which Locust writes last",
            id="cut before the Aggregated row",
        ),
        pytest.param(
            "history import",
            _cut("\n,Aggregated,", keep_marker=True),
            "loadtest_stats.csv: line ",
            id="cut inside the Aggregated row",
        ),
        pytest.param(
            "check",
            _raw("loadtest_stats.csv", "GET,/api/health,2,0,", "GET,/api/health,two,0,"),
            "loadtest_stats.csv: line 2, column 'Request Count': expected a count, got the "
            "text 'two'",
            id="a count that is a word",
        ),
        pytest.param(
            "history import",
            _raw("loadtest_stats.csv", "GET,/api/health,2,0,", "GET,/api/health,2,3,"),
            "loadtest_stats.csv: line 2, column 'Failure Count': 3 is more than the request "
            "count 2",
            id="more failures than requests",
        ),
    ],
)
def test_a_damaged_plain_locust_folder_is_refused_in_one_line(
    tmp_path: Path, command: str, damage: Damage, fragment: str
) -> None:
    """Guards: a truncated or edited `locust --csv` stats file (read with pandas) ends in
    one line naming the file, line and column, exit 2; never a traceback."""
    folder = plain_locust_folder(tmp_path / "plain")
    damage(folder)
    history = tmp_path / "history.sqlite"
    if command == "check":
        r = paybench("check", str(folder), "--budgets", str(folder / "budgets.yaml"), timeout=120)
    else:
        r = _run(command, folder, history)
    _assert_refused(r, folder, fragment)
