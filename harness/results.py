"""A run folder on disk -> RunResult.

Two kinds of folder are understood: one written by ``paybench run`` (``run.json`` and the
exact histograms of ``paybench.hdr.json`` beside Locust's CSV files), and one written by
plain ``locust --csv PREFIX`` (only Locust's rounded figures: judged, but said to be so).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from harness import __version__
from harness.core.model import AGGREGATE_KEY, FailureRecord, RequestStats, RunMeta, RunResult
from harness.errors import ConfigError, FormatError

HDR_FILE = "paybench.hdr.json"
RUN_FILE = "run.json"

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
    meta_raw = _read_json(run_dir / RUN_FILE) if (run_dir / RUN_FILE).exists() else {}
    meta = _meta(run_dir, meta_raw)
    locust_requests, locust_total, locust_failures = _read_locust_csv(run_dir)
    incomplete = bool(meta_raw.get("incomplete", False))
    incomplete_reason = meta_raw.get("incomplete_reason")

    if (run_dir / HDR_FILE).exists():
        return _from_recording(
            run_dir, meta, warmup_s or 0.0, locust_requests, incomplete, incomplete_reason
        )
    if locust_total is None:
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
    raw = _read_json(run_dir / RUN_FILE) if (run_dir / RUN_FILE).exists() else {}
    return _meta(run_dir, raw)


def _from_recording(
    run_dir: Path,
    meta: RunMeta,
    warmup_s: float,
    locust_requests: tuple[RequestStats, ...],
    incomplete: bool,
    incomplete_reason: str | None,
) -> RunResult:
    from harness.recording import generator_unreliable_reasons, load_recording

    rec = load_recording(run_dir / HDR_FILE)
    start = rec.test_start_epoch
    stop = rec.test_stop_epoch or start
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
        whole_run=rec.aggregate(),
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise FormatError(f"{path}: unreadable ({e}); the run folder is damaged") from None
    if not isinstance(data, dict):
        raise FormatError(f"{path}: not a JSON object; the run folder is damaged")
    return data


def _meta(run_dir: Path, raw: dict[str, Any]) -> RunMeta:
    def opt(key: str, kind: type) -> Any:
        v = raw.get(key)
        return kind(v) if v is not None else None

    return RunMeta(
        run_id=str(raw.get("run_id", run_dir.name)),
        profile=raw.get("profile"),
        host=str(raw.get("host", "unknown")),
        target=raw.get("target", "unknown"),
        users=opt("users", int),
        spawn_rate=opt("spawn_rate", float),
        run_time_s=opt("run_time_s", float),
        workers=int(raw.get("workers", 0)),
        started_at=raw.get("started_at"),
        ended_at=raw.get("ended_at"),
        locust_version=raw.get("locust_version"),
        paybench_version=str(raw.get("paybench_version", __version__)),
        git_commit=raw.get("git_commit"),
        scenario_version=raw.get("scenario_version"),
        extra=raw.get("extra", {}),
    )


def _find_stats_csv(run_dir: Path) -> Path | None:
    preferred = run_dir / "locust_stats.csv"
    if preferred.exists():
        return preferred
    found = sorted(run_dir.glob("*_stats.csv"))
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise ConfigError(f"{run_dir}: several Locust stats files ({names}); keep one per folder")
    return found[0] if found else None


def _num(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def _read_locust_csv(
    run_dir: Path,
) -> tuple[tuple[RequestStats, ...], RequestStats | None, tuple[FailureRecord, ...]]:
    path = _find_stats_csv(run_dir)
    if path is None:
        return (), None, ()
    try:
        df = pd.read_csv(path, keep_default_na=False, na_values=["N/A", ""])
    except (OSError, ValueError, pd.errors.ParserError) as e:
        raise FormatError(f"{path}: not a Locust stats CSV ({e})") from None
    needed = {"Type", "Name", "Request Count", "Failure Count", "Average Response Time"}
    if missing := needed - set(df.columns):
        raise FormatError(f"{path}: not a Locust stats CSV; missing columns {sorted(missing)}")
    rows: list[RequestStats] = []
    total: RequestStats | None = None
    for rec in df.to_dict("records"):
        count = int(rec["Request Count"])
        rps = _num(rec.get("Requests/s")) or 0.0
        stats = RequestStats(
            request_type="" if rec["Name"] == AGGREGATE_KEY else str(rec["Type"]),
            name=str(rec["Name"]),
            count=count,
            failures=int(rec["Failure Count"]),
            duration_s=count / rps if rps > 0 else 0.0,
            avg_ms=_num(rec.get("Average Response Time")) if count else None,
            min_ms=_num(rec.get("Min Response Time")) if count else None,
            max_ms=_num(rec.get("Max Response Time")) if count else None,
            locust_percentiles_ms={
                p: v
                for col, p in _LOCUST_PERCENTILES.items()
                if (v := _num(rec.get(col))) is not None and count
            },
            source="locust",
        )
        if stats.name == AGGREGATE_KEY:
            total = stats
        else:
            rows.append(stats)
    return tuple(rows), total, _read_locust_failures(path)


def _read_locust_failures(stats_csv: Path) -> tuple[FailureRecord, ...]:
    path = stats_csv.with_name(stats_csv.name.replace("_stats.csv", "_failures.csv"))
    if not path.exists():
        return ()
    try:
        df = pd.read_csv(path, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as e:
        raise FormatError(f"{path}: not a Locust failures CSV ({e})") from None
    if not {"Method", "Name", "Error", "Occurrences"} <= set(df.columns):
        return ()
    return tuple(
        FailureRecord(
            request_key=f"{r['Method']} {r['Name']}",
            message=str(r["Error"]),
            count=int(r["Occurrences"]),
        )
        for r in df.to_dict("records")
    )
