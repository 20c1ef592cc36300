"""Valid run folders built from literal latencies, for the hostile-input tests to damage.

The recording is merged by the plugin's own `Aggregator` from seeded latencies, exactly as
``paybench run`` would write it; run.json carries the fields `paybench run` writes.
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.core import stats
from harness.recording import Aggregator

ROOT = Path(__file__).resolve().parents[2]
PLAIN_LOCUST = ROOT / "tests" / "fixtures" / "plain_locust"
HDR = "paybench.hdr.json"
RUN = "run.json"
SUMMARY = "summary.json"
BUDGETS = "budgets.yaml"
INTERVAL_S = 2.0
START = 1_764_146_400.0  # a multiple of INTERVAL_S: interval indices start at START / 2
RUN_ID = "20251126T083000Z-abc123"

DEFAULT_NAMES: tuple[tuple[str, str], ...] = (
    ("GET", "/api/plans"),
    ("POST", "/api/payments/v2/initiate"),
)

BUDGETS_TEXT = """\
version: 1
requests:
  "*":
    p95: "< 5s"
    error_rate: "< 50%"
run:
  error_rate: "< 50%"
"""


def _row(rng: random.Random, request_type: str, name: str, index: int, n: int, fails: int):
    """A payload row as `harness.plugin.Recorder.take` sends it."""
    values_ms = [rng.lognormvariate(3.0, 0.4) for _ in range(n)]
    ns = stats.ms_to_ns_array(values_ms)
    return [
        request_type,
        name,
        index,
        n,
        fails,
        0,
        int(ns.sum()),
        int(ns.min()),
        int(ns.max()),
        stats.histogram_from_ms(values_ms).encode(),
    ]


def recording_doc(
    names: Sequence[tuple[str, str]] = DEFAULT_NAMES,
    intervals: int = 4,
    per_interval: int = 20,
    seed: int = 1,
    paced: bool = False,
) -> dict[str, Any]:
    """A version-1 ``paybench.hdr.json`` document: every name, ``intervals`` intervals.

    The second interval of each name holds one failure; ``paced`` adds a paced user class
    whose latencies (from the intended start) are recorded for the first name.
    """
    agg, meta = _merged(names, intervals, per_interval, seed, paced)
    return agg.document(meta)


def recording_lines(
    names: Sequence[tuple[str, str]] = DEFAULT_NAMES,
    intervals: int = 4,
    per_interval: int = 20,
    seed: int = 1,
    paced: bool = False,
) -> list[Any]:
    """The recording of `recording_doc` in format version 2, streamed by the plugin's own
    writer: one JSON value per line (header, keys, intervals, samples, end)."""
    agg, meta = _merged(names, intervals, per_interval, seed, paced)
    with tempfile.TemporaryDirectory(prefix="paybench-hostile-") as tmp:
        path = agg.finish(Path(tmp) / HDR, meta)
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _merged(
    names: Sequence[tuple[str, str]], intervals: int, per_interval: int, seed: int, paced: bool
) -> tuple[Aggregator, dict[str, Any]]:
    rng = random.Random(seed)
    agg = Aggregator(INTERVAL_S)
    first = int(START / INTERVAL_S)
    stop = START + intervals * INTERVAL_S
    for request_type, name in names:
        for index in range(first, first + intervals):
            failures = 1 if index == first + 1 else 0
            payload: dict[str, Any] = {
                "process": "local",
                "sent_epoch": stop,
                "entries": [_row(rng, request_type, name, index, per_interval, failures)],
                "failures": [
                    [request_type, name, "HTTPError('500 Server Error')", 1, START + 3, START + 3]
                ]
                if failures
                else [],
                "cpu": [[START + (index - first + 1) * INTERVAL_S, 20.0]],
            }
            if paced and (request_type, name) == tuple(names[0]):
                payload["paced"] = [_row(rng, request_type, name, index, per_interval, failures)]
                payload["paced_classes"] = {"CheckoutUser": [0.5, 2, 32.0, 30]}
            agg.apply(payload)
    return agg, {
        "test_start_epoch": START,
        "spawning_complete_epoch": START + 0.5,
        "spawning_complete_epochs": [START + 0.5],
        "test_stop_epoch": stop,
        "mode": "local",
        "workers": [],
        "users": [{"epoch": START, "users": 2}, {"epoch": stop, "users": 0}],
        "warnings": [],
    }


def run_json_doc(**changes: Any) -> dict[str, Any]:
    """run.json as `paybench run` writes it once Locust has ended."""
    doc: dict[str, Any] = {
        "format": "paybench-run",
        "format_version": 1,
        "kind": "run",
        "run_id": RUN_ID,
        "profile": None,
        "users": 2,
        "spawn_rate": 2.0,
        "run_time_s": 8.0,
        "workers": 0,
        "locust_version": "2.47.0",
        "paybench_version": "0.1.0",
        "git_commit": None,
        "scenario_version": None,
        "locustfile": "locustfiles/payments.py",
        "budgets": BUDGETS,
        "host": "http://127.0.0.1:8089",
        "target": "external",
        "status": "finished",
        "incomplete_reason": None,
        "started_at": "2025-11-26T08:30:00Z",
        "ended_at": "2025-11-26T08:30:08Z",
        "locust_command": ["locust", "--headless"],
        "locust_exit_code": 0,
        "extra": {},
        "incomplete": False,
    }
    doc.update(changes)
    return doc


def write_run_folder(
    folder: Path,
    names: Sequence[tuple[str, str]] = DEFAULT_NAMES,
    recording: dict[str, Any] | list[Any] | None = None,
    run_json: dict[str, Any] | None = None,
) -> Path:
    """A run folder as ``paybench run`` leaves it before judging (no summary.json yet).

    ``recording``: a version-1 document, or the lines of a version-2 recording (a list).
    """
    folder.mkdir(parents=True, exist_ok=True)
    doc = recording if recording is not None else recording_doc(names)
    text = "".join(f"{json.dumps(line)}\n" for line in doc) if isinstance(doc, list) else None
    (folder / HDR).write_text(text if text is not None else json.dumps(doc), encoding="utf-8")
    (folder / RUN).write_text(json.dumps(run_json or run_json_doc()), encoding="utf-8")
    (folder / BUDGETS).write_text(BUDGETS_TEXT, encoding="utf-8")
    return folder


def judged_run_folder(
    folder: Path, names: Sequence[tuple[str, str]] = DEFAULT_NAMES, version: int = 1
) -> Path:
    """A run folder judged by the library: summary.json and the reports written.

    ``version`` of its recording: 1 (one document) or 2 (streamed lines).
    """
    from harness.commands.check import judge
    from harness.config import load_budgets

    write_run_folder(folder, names, recording_lines(names) if version == 2 else None)
    judge(folder, load_budgets(folder / BUDGETS))
    return folder


def plain_locust_folder(folder: Path) -> Path:
    """A copy of the committed plain ``locust --csv`` folder."""
    shutil.copytree(PLAIN_LOCUST, folder)
    return folder
