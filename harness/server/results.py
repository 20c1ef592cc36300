"""server.jsonl -> samples per source -> the server budgets' results for the verdict.

The file may come from anywhere (a CI artefact): it is read through ``harness.inputs``,
bounded, and any line that is not what paybench writes ends in one FormatError line naming
the file, the line and the field (exit 2).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeGuard

from harness.core.model import BudgetResult, Budgets, RunResult
from harness.core.server_eval import (
    Sample,
    ServerTimeline,
    SourceData,
    Window,
    judge_server,
    server_timelines,
)
from harness.errors import FormatError
from harness.inputs import DAMAGED, MAX_RECORDING_BYTES, MAX_TEXT_CHARS, open_bounded, parse_json
from harness.runfolder import HDR_FILE, SERVER_FILE
from harness.server import SERVER_FORMAT, SERVER_FORMAT_VERSION
from harness.server.scraper import DEFAULT_INTERVAL_S

MAX_LINE_BYTES = 16 * 1024 * 1024


def _fail(path: Path, line: int, what: str) -> FormatError:
    return FormatError(f"{path}: line {line}: {what}; {DAMAGED}")


def _number(value: Any) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def load_server_file(path: Path) -> tuple[float, dict[str, SourceData]]:
    """(the scrape interval, source name -> what was scraped from it)."""
    header: Mapping[str, Any] | None = None
    samples: dict[str, list[Sample]] = {}
    with open_bounded(path, MAX_RECORDING_BYTES) as f:
        for number, raw in enumerate(f, start=1):
            if len(raw) > MAX_LINE_BYTES:
                raise _fail(path, number, f"longer than {MAX_LINE_BYTES // 2**20} MiB")
            if not raw.endswith(b"\n"):
                break  # the last line of a run cut short: what came before stands
            doc = parse_json(raw, f"{path}: line {number}", "a line of JSON")
            if not isinstance(doc, dict):
                raise _fail(path, number, "not a JSON object")
            if header is None:
                header = _header(path, doc)
                samples = {name: [] for name in header["sources"]}
                continue
            source = doc.get("source")
            if source not in samples:
                raise _fail(path, number, f"source: {source!r} is not in the header's sources")
            epoch = doc.get("epoch")
            if not _number(epoch):
                raise _fail(path, number, f"epoch: {epoch!r} is not a time")
            if doc.get("ok") is True:
                values = doc.get("values")
                if not isinstance(values, dict) or not all(
                    isinstance(k, str) and len(k) <= MAX_TEXT_CHARS and _number(v)
                    for k, v in values.items()
                ):
                    raise _fail(path, number, "values: not an object of series -> number")
                samples[source].append(Sample(float(epoch), values))
            elif doc.get("ok") is False:
                error = doc.get("error")
                if not isinstance(error, str):
                    raise _fail(path, number, "error: not a text")
                samples[source].append(Sample(float(epoch), None, error[:MAX_TEXT_CHARS]))
            else:
                raise _fail(path, number, f"ok: {doc.get('ok')!r} is neither true nor false")
    if header is None:
        raise FormatError(f"{path}: empty, no header line; {DAMAGED}")
    data = {}
    for name, info in header["sources"].items():
        series = info.get("series")
        data[name] = SourceData(
            name=name,
            kind=str(info.get("kind", "")),
            where=str(info.get("where", "")),
            samples=tuple(sorted(samples[name], key=lambda s: s.epoch)),
            series=tuple(str(s) for s in series) if isinstance(series, list) else None,
        )
    return float(header["interval_s"]), data


def _header(path: Path, doc: Mapping[str, Any]) -> Mapping[str, Any]:
    if doc.get("format") != SERVER_FORMAT:
        raise _fail(path, 1, f"not a {SERVER_FORMAT} header")
    version = doc.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _fail(path, 1, f"format_version: {version!r} is not a positive whole number")
    if version > SERVER_FORMAT_VERSION:
        raise FormatError(
            f"{path}: format version {version} is newer than this paybench reads "
            f"({SERVER_FORMAT_VERSION}); upgrade paybench"
        )
    interval = doc.get("interval_s")
    if not _number(interval) or interval <= 0:
        raise _fail(path, 1, f"interval_s: {interval!r} is not a number of seconds")
    sources = doc.get("sources")
    if not isinstance(sources, dict) or not all(isinstance(v, dict) for v in sources.values()):
        raise _fail(path, 1, "sources: not an object of source -> description")
    return doc


def recording_start_epoch(run_dir: Path) -> float | None:
    """When the test started (the recording's test_start_epoch), without reading it whole.

    A recording of format 2 ends with its end line: read backwards from the end. A format 1
    recording is one document (written for tests and tools): read whole.
    """
    path = run_dir / HDR_FILE
    if not path.is_file():
        return None
    with open_bounded(path, MAX_RECORDING_BYTES) as f:
        f.seek(0, 2)
        size = f.tell()
        chunk, tail = 1 << 20, b""
        pos = size
        while pos > 0 and tail.count(b"\n") < 2 and len(tail) <= MAX_LINE_BYTES:
            step = min(chunk, pos)
            pos -= step
            f.seek(pos)
            tail = f.read(step) + tail
        last = tail.rstrip(b"\n").rsplit(b"\n", 1)[-1]
        try:
            doc = json.loads(last)
        except ValueError:
            doc = None
        if isinstance(doc, dict) and isinstance(doc.get("end"), dict):
            start = doc["end"].get("test_start_epoch")
            return float(start) if _number(start) else None
        f.seek(0)
        whole = parse_json(f.read(MAX_RECORDING_BYTES), str(path))
    start = whole.get("test_start_epoch") if isinstance(whole, dict) else None
    return float(start) if _number(start) else None


def server_results(run_dir: Path, result: RunResult, budgets: Budgets) -> tuple[BudgetResult, ...]:
    """The server budgets of ``budgets`` judged on the run folder's server.jsonl over the
    steady state of ``result``; () when there are none."""
    section = budgets.server
    if section is None or not section.budgets:
        return ()
    path = run_dir / SERVER_FILE
    start = recording_start_epoch(run_dir)
    interval, data = DEFAULT_INTERVAL_S, None
    if path.exists() and start is not None:
        interval, data = load_server_file(path)
    origin = start or 0.0
    window = Window(origin + result.steady_start_s, origin + result.steady_end_s, interval)
    return judge_server(section, data, window, builtin_target=result.meta.target == "reference")


def load_run_server_data(run_dir: Path) -> tuple[float, Mapping[str, SourceData]] | None:
    """The run folder's server.jsonl: the scrape interval and what each source gave; None
    when the run has none (no server budgets, or a run by an older paybench)."""
    path = run_dir / SERVER_FILE
    if not path.exists():
        return None
    return load_server_file(path)


def run_timelines(run_dir: Path, budgets: Budgets) -> tuple[tuple[ServerTimeline, ...], float]:
    """The server metrics over the run for the report's charts, and the test's start epoch
    (their time origin); nothing when the run has no server.jsonl."""
    section = budgets.server
    path = run_dir / SERVER_FILE
    start = recording_start_epoch(run_dir)
    if section is None or not section.budgets or not path.exists() or start is None:
        return (), 0.0
    interval, data = load_server_file(path)
    return server_timelines(section, data, interval), start
