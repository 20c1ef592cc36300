"""Fuzz: damaged run folders are read, or refused in one line (exit 2), never a traceback.

Thousands of mutations of valid files (paybench.hdr.json in both formats, run.json,
Locust's CSV files, summary.json, baseline.json) go through the library functions the CLI
calls: `read_run`, the report renderers, `HistoryStore.import_run_dir`, `load_baseline`.
Each call ends in a value or in a `PaybenchError` of exit code 2 whose one line names the
run folder; any other exception fails the test. Derandomized: the same examples on every
run.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.core.model import RunResult, Verdict
from harness.report import build_report_context, render_html, render_junit, render_markdown
from harness.results import read_run
from harness.runfolder import load_baseline
from harness.store import HistoryStore
from tests.fuzz.mutate import (
    fuzz_settings,
    mutated_csv,
    mutated_json,
    mutated_text,
    mutated_value,
    refused_in_one_line,
)
from tests.hostile.runfolders import (
    HDR,
    PLAIN_LOCUST,
    RUN,
    SUMMARY,
    judged_run_folder,
    recording_doc,
    recording_lines,
    run_json_doc,
    write_run_folder,
)

NAMES = (("GET", "/api/plans"), ("FLOW", "checkout"))
STATS_CSV = "loadtest_stats.csv"
FAILURES_CSV = "loadtest_failures.csv"


@dataclass(frozen=True)
class Valid:
    """The valid files every mutation starts from, and a scratch folder per kind."""

    root: Path
    recording: dict[str, Any]
    streamed: list[Any]  # the same recording in format version 2: one value per line
    run_json: dict[str, Any]
    summary: dict[str, Any]
    baseline: dict[str, Any]
    stats_csv: str
    failures_csv: str


@pytest.fixture(scope="module")
def valid(tmp_path_factory: pytest.TempPathFactory) -> Valid:
    root = tmp_path_factory.mktemp("fuzz")
    judged = judged_run_folder(root / "judged", NAMES)
    return Valid(
        root=root,
        recording=recording_doc(NAMES, intervals=3, per_interval=6, paced=True),
        streamed=recording_lines(NAMES, intervals=3, per_interval=6, paced=True),
        run_json=run_json_doc(extra={"target_overrides": {"slowdown": 2.0}}),
        summary=json.loads((judged / SUMMARY).read_text(encoding="utf-8")),
        baseline={
            "format": "paybench-baseline",
            "format_version": 1,
            "description": "median of the last 3 runs of profile nightly",
            "run_ids": ["20251125T020000Z-aaaaaa", "20251124T020000Z-bbbbbb"],
            "values": {"GET /api/plans": {"p95": [30.5, 31.0], "error_rate": [0.0, 0.5]}},
        },
        stats_csv=(PLAIN_LOCUST / STATS_CSV).read_text(encoding="utf-8"),
        failures_csv="Method,Name,Error,Occurrences\nPOST,/api/x,HTTPError('500'),3\n",
    )


def _folder(valid: Valid, name: str) -> Path:
    """A scratch run folder, emptied for each example."""
    folder = valid.root / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    return folder


def _rendered(result: RunResult) -> None:
    """What the reports make of an accepted run (charts apart: the CLI sample draws them)."""
    ctx = build_report_context(result, Verdict("PASS", ()), None)
    assert render_markdown(ctx).startswith("## paybench")
    assert "<html" in render_html(ctx, ())
    assert render_junit(ctx).startswith("<?xml")


@given(data=st.data())
@fuzz_settings(max_examples=700)
def test_a_damaged_recording_is_read_or_refused_in_one_line(valid: Valid, data) -> None:
    folder = _folder(valid, "recording")
    (folder / RUN).write_text(json.dumps(valid.run_json), encoding="utf-8")
    (folder / HDR).write_bytes(mutated_json(data, valid.recording))
    result = refused_in_one_line(lambda: read_run(folder, warmup_s=0.5), str(folder))
    if result is not None:
        _rendered(result)


@given(data=st.data())
@fuzz_settings(max_examples=500)
def test_a_damaged_streamed_recording_is_read_or_refused_in_one_line(valid: Valid, data) -> None:
    """The streamed format (version 2): any line's values mutated, lines dropped or
    repeated, the text cut short or a byte changed."""
    folder = _folder(valid, "streamed")
    (folder / RUN).write_text(json.dumps(valid.run_json), encoding="utf-8")
    lines = mutated_value(data, valid.streamed)
    text = "".join(json.dumps(line, allow_nan=True) + "\n" for line in lines)
    (folder / HDR).write_bytes(mutated_text(data, text).encode("utf-8", "surrogatepass"))
    result = refused_in_one_line(lambda: read_run(folder, warmup_s=0.5), str(folder))
    if result is not None:
        _rendered(result)


@given(data=st.data())
@fuzz_settings(max_examples=300)
def test_a_damaged_run_json_is_read_or_refused_in_one_line(valid: Valid, data) -> None:
    folder = _folder(valid, "run-json")
    write_run_folder(folder, NAMES, recording=valid.recording)
    (folder / RUN).write_bytes(mutated_json(data, valid.run_json))
    result = refused_in_one_line(lambda: read_run(folder), str(folder))
    if result is not None:
        _rendered(result)


@given(data=st.data(), which=st.sampled_from([STATS_CSV, FAILURES_CSV]))
@fuzz_settings(max_examples=400)
def test_a_damaged_locust_csv_is_read_or_refused_in_one_line(
    valid: Valid, data, which: str
) -> None:
    folder = _folder(valid, "plain")
    (folder / STATS_CSV).write_text(valid.stats_csv, encoding="utf-8")
    (folder / FAILURES_CSV).write_text(valid.failures_csv, encoding="utf-8")
    original = valid.stats_csv if which == STATS_CSV else valid.failures_csv
    (folder / which).write_bytes(mutated_csv(data, original))
    result = refused_in_one_line(lambda: read_run(folder), str(folder))
    if result is not None:
        _rendered(result)


@pytest.fixture(scope="module")
def history(valid: Valid) -> HistoryStore:
    return HistoryStore(valid.root / "history.sqlite")


@given(data=st.data())
@fuzz_settings(max_examples=200)
def test_history_import_of_a_damaged_summary_stores_or_refuses_in_one_line(
    valid: Valid, history: HistoryStore, data
) -> None:
    folder = _folder(valid, "import")
    # A run id of its own, so that every accepted example is stored anew.
    run_id = f"20251126T083000Z-{data.draw(st.integers(0, 2**40)):010x}"
    write_run_folder(
        folder, NAMES, recording=valid.recording, run_json={**valid.run_json, "run_id": run_id}
    )
    (folder / SUMMARY).write_bytes(mutated_json(data, valid.summary))
    imported = refused_in_one_line(lambda: history.import_run_dir(folder), str(folder))
    if imported is not None:
        # What was stored reads back: the run and the reasons of its verdict.
        stored = history.get_run(imported.run_id)
        assert stored.result.meta.run_id == run_id
        assert all(isinstance(r, str) for r in stored.verdict_reasons)


@given(data=st.data())
@fuzz_settings(max_examples=200)
def test_a_damaged_baseline_is_read_or_refused_in_one_line(valid: Valid, data) -> None:
    folder = _folder(valid, "baseline")
    (folder / "baseline.json").write_bytes(mutated_json(data, valid.baseline))
    baseline = refused_in_one_line(lambda: load_baseline(folder), str(folder))
    if baseline is not None:
        series = [s for ms in baseline.values.values() for s in ms.values()]
        assert all(isinstance(v, float) for s in series for v in s)
