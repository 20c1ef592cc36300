"""Small run folders from literal latencies, for the unit tests.

The recording is merged by the plugin's own `Aggregator` and written with the run folder's
atomic writer; run.json goes through `RunRecord` and `write_run_record`, as `paybench run`
writes it. Epochs are literal: with ``INTERVAL_S`` = 1 s and ``START`` a whole second,
interval ``n`` of a folder is ``[START + n, START + n + 1)`` and its middle ``START + n + 0.5``.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.core import stats
from harness.recording import Aggregator
from harness.runfolder import (
    HDR_FILE,
    LOCUST_STATS_CSV,
    RunRecord,
    write_json_atomically,
    write_run_record,
)

INTERVAL_S = 1.0
START = 1_000_000.0  # a whole second: interval indices are START + n
FIRST_INDEX = int(START // INTERVAL_S)
RUN_ID = "20251126T083000Z-abc123"
HOST = "http://127.0.0.1:8321"

PLANS = ("GET", "/api/plans")
INITIATE = ("POST", "/api/payments/v2/initiate")
STATUS = ("GET", "/api/payments/v2/status/[merchant_order_id]")
FLOW = ("FLOW", "checkout: initiate -> confirmed")


@dataclass(frozen=True)
class Requests:
    """Requests of one key that ended in interval ``interval`` of the run (0: the first)."""

    key: tuple[str, str]
    interval: int
    latencies_ms: tuple[float, ...] = ()
    failures: int = 0
    cut_off: int = 0  # in flight at stop: counted in this interval, with no latency


@dataclass(frozen=True)
class Failure:
    key: tuple[str, str]
    message: str
    count: int
    first_epoch: float
    last_epoch: float


def _row(r: Requests) -> list[Any]:
    # A payload row as harness.plugin's Recorder.take sends it.
    ns = stats.ms_to_ns_array(list(r.latencies_ms))
    return [
        r.key[0],
        r.key[1],
        FIRST_INDEX + r.interval,
        len(r.latencies_ms),
        r.failures,
        r.cut_off,
        int(ns.sum()),
        int(ns.min()) if ns.size else None,
        int(ns.max()) if ns.size else None,
        stats.histogram_from_ms(r.latencies_ms).encode(),
    ]


def recording_doc(
    requests: Iterable[Requests],
    *,
    start: float = START,
    spawned: Sequence[float] = (START + 2.0,),
    stop: float | None = START + 10.0,
    failures: Iterable[Failure] = (),
    cpu: Iterable[tuple[float, float]] = (),
    warnings: Sequence[str] = (),
) -> dict[str, Any]:
    """A version-1 ``paybench.hdr.json`` document.

    ``spawned``: the spawning_complete epochs (the first one is ``spawning_complete_epoch``;
    none: spawning never completed); ``cpu``: (epoch, CPU %) samples of the one process.
    """
    agg = Aggregator(INTERVAL_S)
    agg.apply(
        {
            "process": "local",
            "sent_epoch": stop or start,
            "entries": [_row(r) for r in requests],
            "failures": [
                [f.key[0], f.key[1], f.message, f.count, f.first_epoch, f.last_epoch]
                for f in failures
            ],
            "cpu": [[epoch, pct] for epoch, pct in cpu],
        }
    )
    return agg.document(
        {
            "test_start_epoch": start,
            "spawning_complete_epoch": spawned[0] if spawned else None,
            "spawning_complete_epochs": list(spawned),
            "test_stop_epoch": stop,
            "mode": "local",
            "workers": [],
            "users": [{"epoch": start, "users": 0}]
            + [{"epoch": epoch, "users": 4} for epoch in spawned],
            "warnings": list(warnings),
        }
    )


def write_recording(run_dir: Path, requests: Iterable[Requests], **kwargs: Any) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    return write_json_atomically(run_dir / HDR_FILE, recording_doc(requests, **kwargs))


def run_record(**changes: Any) -> RunRecord:
    """run.json's record as `paybench run` leaves it after a finished run."""
    fields: dict[str, Any] = {
        "run_id": RUN_ID,
        "kind": "run",
        "profile": "smoke",
        "users": 4,
        "spawn_rate": 2.0,
        "run_time_s": 10.0,
        "workers": 0,
        "locust_version": "2.47.0",
        "paybench_version": "0.1.0",
        "git_commit": "0123456789abcdef0123456789abcdef01234567",
        "scenario_version": "1",
        "locustfile": "locustfiles/payments.py",
        "budgets": "budgets.yaml",
        "host": HOST,
        "target": "reference",
        "status": "finished",
        "started_at": "2025-11-26T08:30:00Z",
        "ended_at": "2025-11-26T08:30:10Z",
        "locust_command": ("python", "-m", "locust"),
        "locust_exit_code": 0,
        "extra": {"target_overrides": {}},
    }
    fields.update(changes)
    return RunRecord(**fields)


def write_run_json(run_dir: Path, **changes: Any) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    return write_run_record(run_dir, run_record(**changes))


# Locust's stats CSV header (2.47), in its order.
LOCUST_COLUMNS = (
    "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,"
    "Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,"
    "50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%"
).split(",")


def write_locust_stats(
    run_dir: Path, rows: Sequence[Mapping[str, Any]], name: str = LOCUST_STATS_CSV
) -> Path:
    """A Locust ``_stats.csv``; each row names some columns, the rest are ``N/A``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / name
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(LOCUST_COLUMNS)
        for row in rows:
            writer.writerow([row.get(c, "N/A") for c in LOCUST_COLUMNS])
    return path


def paybench_folder(run_dir: Path, requests: Iterable[Requests], **kwargs: Any) -> Path:
    """run.json and the recording: a folder `paybench run` wrote."""
    write_run_json(run_dir)
    write_recording(run_dir, requests, **kwargs)
    return run_dir
